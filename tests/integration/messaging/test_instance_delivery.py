"""Delivery by instance against the real simulators (separate processes): vouchers reach the
ERP their org unit is mapped to, and rows queued before named instances (destinations `oa`
and `erp`, vouchers in the wire format) are still delivered to the default instances."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from support.claims import one_line_claim
from support.processes import Secrets, Server, free_port, simulators, start

from finoa.config import Settings
from finoa.runtime import build_dispatcher, new_http_client
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.queries import get_claim
from finoa.store.tables import claims, outbox


@pytest.fixture(scope="module")
def sims(
    tmp_path_factory: pytest.TempPathFactory, secrets: Secrets
) -> Iterator[tuple[Server, Server, Server]]:
    """The OA simulator and two ERP simulators."""
    directory = tmp_path_factory.mktemp("sims")
    with simulators(directory, secrets, free_port(), auto_decide=False) as (oa, erp):
        port = free_port()
        env = {**secrets.env(), "FINOA_DATA_DIR": str(directory / "second")}
        (directory / "second").mkdir()
        second = start(
            "erp2",
            ["sim", "erp", "--port", str(port)],
            env,
            "/_sim/stats",
            port,
            directory / "second",
        )
        try:
            yield oa, erp, second
        finally:
            second.stop()


def configured(
    settings: Settings,
    sims: tuple[Server, Server, Server],
    secrets: Secrets,
    connectors: dict[str, Any] | None,
) -> Iterator[Hub]:
    oa, erp, _ = sims
    extra = {**settings.extra, **({"connectors": connectors} if connectors else {})}
    hub = Hub.create(
        replace(
            settings,
            oa_base_url=oa.url,
            erp_base_url=erp.url,
            oa_api_key=secrets.oa_api_key,
            erp_api_key=secrets.erp_api_key,
            retry_base_seconds=0.05,
            retry_cap_seconds=0.2,
            extra=extra,
        )
    )
    load_masterdata(hub.db)
    yield hub
    hub.close()


def deliver(hub: Hub) -> None:
    async def run() -> None:
        http = new_http_client(hub.settings)
        try:
            await build_dispatcher(hub, http).run_until_idle(20)
        finally:
            await http.aclose()

    asyncio.run(run())


def submit_and_approve(hub: Hub, applicant_id: str, department_id: str) -> str:
    submission = one_line_claim(
        f"I-{uuid.uuid4().hex[:8]}",
        applicant_id=applicant_id,
        department_id=department_id,
        category="travel",
        amount="88.00",
    )
    claim_id = submit_claim(hub, submission, source="t", actor="t").claim_id
    (task,) = get_claim(hub.db, claim_id).tasks
    decide_task(hub, task.id, task.assignee_id, True, "同意", actor="t")
    return claim_id


def erp_refs(erp: Server) -> list[str]:
    listing = httpx.get(f"{erp.url}/_sim/vouchers").json()
    items = listing["vouchers"] if isinstance(listing, dict) else listing
    return [v["source_ref"] for v in items]


def undelivered(hub: Hub) -> list[Any]:
    with hub.db.engine.connect() as conn:
        return conn.execute(select(outbox).where(outbox.c.status != "done")).all()


def test_each_voucher_reaches_the_erp_of_its_org_unit(
    settings: Settings,
    sims: tuple[Server, Server, Server],
    secrets: Secrets,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    oa, sales_erp, group_erp = sims
    monkeypatch.setenv("FINOA_TEST_ERP_KEY", secrets.erp_api_key)
    key = {"api_key_env": "FINOA_TEST_ERP_KEY"}
    connectors = {
        "hq-oa": {
            "connector": "generic-oa",
            "config": {
                "base_url": oa.url,
                "api_key": secrets.oa_api_key,
                "webhook_secret": secrets.oa_webhook_secret,
            },
        },
        "erp-sales": {
            "connector": "generic-erp",
            "config": {"base_url": sales_erp.url, **key},
            "org_units": ["D02"],
        },
        "erp-group": {
            "connector": "generic-erp",
            "config": {"base_url": group_erp.url, **key},
            "companies": ["D00"],
        },
    }
    for hub in configured(settings, sims, secrets, connectors):
        sales = submit_and_approve(hub, "E0011", "D02")
        rd = submit_and_approve(hub, "E0021", "D03")
        deliver(hub)
        assert undelivered(hub) == []
        assert get_claim(hub.db, sales).status == get_claim(hub.db, rd).status == "posted"
        assert f"finoa:{sales}" in erp_refs(sales_erp) and f"finoa:{rd}" not in erp_refs(sales_erp)
        assert f"finoa:{rd}" in erp_refs(group_erp) and f"finoa:{sales}" not in erp_refs(group_erp)


def test_rows_queued_before_instances_are_delivered_to_the_defaults(
    settings: Settings, sims: tuple[Server, Server, Server], secrets: Secrets
) -> None:
    _, erp, _ = sims
    for hub in configured(settings, sims, secrets, None):
        claim_id = submit_and_approve(hub, "E0021", "D03")
        voucher_id = f"V{claim_id[2:]}"
        with hub.db.engine.begin() as conn:  # as an earlier release queued them
            conn.execute(update(claims).values(oa_instance=None))
            conn.execute(
                update(outbox).where(outbox.c.action != "voucher.post").values(destination="oa")
            )
            row = conn.execute(select(outbox).where(outbox.c.aggregate_id == voucher_id)).one()
            canonical = row.payload
            wire = {
                "source_ref": f"finoa:{claim_id}",
                "voucher_word": canonical["word"],
                "hub_voucher_no": canonical["hub_voucher_no"],
                "period": canonical["period"],
                "date": canonical["date"],
                "summary": canonical["summary"],
                "currency": canonical["currency"],
                "entries": canonical["entries"],
            }
            conn.execute(
                update(outbox).where(outbox.c.id == row.id).values(destination="erp", payload=wire)
            )
        deliver(hub)
        assert undelivered(hub) == []
        assert get_claim(hub.db, claim_id).status == "posted"  # the `erp` success ran too
        assert erp_refs(erp).count(f"finoa:{claim_id}") == 1
        with hub.db.engine.connect() as conn:
            last = conn.execute(
                select(outbox.c.destination)
                .where(outbox.c.aggregate_id == claim_id)
                .order_by(outbox.c.id.desc())
            ).first()
        assert last is not None and last.destination == "oa"  # the posted write-back: default OA
