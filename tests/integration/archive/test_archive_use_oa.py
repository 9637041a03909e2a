"""Borrowing through the OA, with the hub and the generic OA simulator as real processes on
both databases: the keeper's todo is decided in the OA, whose signed webhook grants the loan;
the notices (archived, granted, expired) reach the OA simulator; a moved clock expires it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.helpers import claim_body
from sqlalchemy import select
from support.processes import stack, wait_for

from finoa.archive.borrowing import access_package, expire_borrowings
from finoa.archive.service import Archive, build_packages
from finoa.config import load_settings
from finoa.domain.errors import Forbidden
from finoa.store.tables import archive_borrowings, archive_packages
from finoa.store.uow import Database, utcnow

KEEPER = "E0003"


def test_a_borrowing_is_approved_in_the_oa_and_its_notices_reach_the_oa(
    db_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    keeper = {"FINOA_ARCHIVE_EVERY_SECONDS": "0.5"}  # the hub archives what is posted
    with (
        stack(data_dir, db_url, auto_decide=True, extra_env=keeper) as running,
        httpx.Client(timeout=30) as http,
    ):
        assert running.hub is not None
        hub_url, oa_url = running.hub.url, running.oa.url
        auth = {"authorization": f"Bearer {running.token()}"}
        claim = http.post(f"{hub_url}/api/v1/claims", json=claim_body(), headers=auth)
        assert claim.status_code == 201, claim.text
        claim_id = claim.json()["id"]

        def status() -> Any:
            got = http.get(f"{hub_url}/api/v1/claims/{claim_id}", headers=auth).json()
            return got["status"] == "posted"

        wait_for(status, what="the claim posted")
        db = Database.connect(db_url)
        try:

            def archived() -> Any:
                with db.engine.connect() as conn:
                    return conn.execute(
                        select(archive_packages.c.archive_no).where(
                            archive_packages.c.claim_id == claim_id
                        )
                    ).scalar()

            # Nobody runs `finoa archive build`: the hub's own archive round packs it.
            archive_no = wait_for(archived, what="the posted voucher archived by the hub")
            settings = load_settings(data_dir=data_dir, database_url=db_url)
            assert build_packages(db, Archive.from_settings(settings)).built == []

            def notices(recipient: str) -> list[str]:
                got = http.get(f"{oa_url}/_sim/notices", params={"recipient_id": recipient})
                return [n["title"] for n in got.json()]

            wait_for(lambda: any(archive_no in t for t in notices("E0011")), what="archived")

            bad = http.post(f"{hub_url}/api/v1/archive/borrowings", headers=auth,
                            json={"packages": [archive_no], "by": "E0011", "days": 0,
                                  "reason": "审计"})  # fmt: skip
            assert bad.status_code == 422 and "days" in bad.text
            asked = http.post(f"{hub_url}/api/v1/archive/borrowings", headers=auth,
                              json={"packages": [archive_no], "by": "E0011", "days": 7,
                                    "reason": "审计抽查"})  # fmt: skip
            assert asked.status_code == 201, asked.text
            made = asked.json()
            assert made["approver_id"] == KEEPER

            def todo() -> Any:
                rows = http.get(f"{oa_url}/_sim/todos", params={"assignee_id": KEEPER}).json()
                return [r for r in rows if r["task_id"] == made["task_id"]]

            (pushed,) = wait_for(todo, what="the keeper's todo in the OA")
            assert "档案借阅审批" in pushed["title"]

            def granted() -> Any:
                with db.engine.connect() as conn:
                    row = conn.execute(
                        select(archive_borrowings).where(
                            archive_borrowings.c.id == made["borrowing_id"]
                        )
                    ).one()
                return row if row.status == "granted" else None

            loan = wait_for(granted, what="the OA's decision to grant the loan")
            title = f"档案借阅 {made['borrowing_id']} granted"
            wait_for(lambda: title in notices("E0011"), what="the granted notice")
            seen = http.get(f"{hub_url}/api/v1/archive/borrowed/{archive_no}",
                            params={"employee_id": "E0011"}, headers=auth)  # fmt: skip
            assert seen.status_code == 200 and seen.json()["borrowing_id"] == made["borrowing_id"]
            refused = http.get(f"{hub_url}/api/v1/archive/borrowed/{archive_no}",
                               params={"employee_id": "E0012"}, headers=auth)  # fmt: skip
            assert refused.status_code == 403, refused.text

            later = utcnow() + timedelta(days=8)
            db.clock = lambda: later
            with pytest.raises(Forbidden, match="expired at"):
                access_package(db, archive_no, "E0011", "view")
            assert loan.expires_at is not None
            assert expire_borrowings(db) == [made["borrowing_id"]]
            gone = f"档案借阅 {made['borrowing_id']} 已到期"
            wait_for(lambda: gone in notices("E0011"), what="the expiry notice")
        finally:
            db.dispose()
