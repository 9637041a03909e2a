"""Archive use on both databases: borrowing approved then expiring under a moved clock,
destruction refused (retention unexpired, an open borrowing) and carried out (清册 and audit
kept, content files gone)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree
from openpyxl import load_workbook
from sqlalchemy import select

from finoa.archive.borrowing import (
    access_package,
    decide_archive_task,
    expire_borrowings,
    request_borrowing,
)
from finoa.archive.destruction import DestructionRefused, carry_out, start_destruction
from finoa.archive.service import Archive, build_packages
from finoa.domain.errors import Forbidden
from finoa.services.context import Hub
from finoa.store.tables import (
    archive_access_log,
    archive_destructions,
    archive_packages,
    audit_events,
    outbox,
)

KEEPER = "E0003"  # the sample company's finance director holds the archive roles


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def one_package(hub: Hub, archive: Archive, posted: Callable[..., str], external_id: str) -> str:
    posted(external_id)
    summary = build_packages(hub.db, archive)
    assert len(summary.built) == 1, summary
    return summary.built[0]


def notices(hub: Hub) -> list[dict[str, object]]:
    with hub.db.engine.connect() as conn:
        rows = conn.execute(select(outbox).where(outbox.c.action == "notice.send")).all()
    return [dict(r.payload) for r in rows]


def test_a_granted_borrowing_is_logged_then_refused_after_its_expiry(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    archive_no = one_package(hub, archive, posted, "AU-1")
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    hub.db.clock = at(start)
    made = request_borrowing(hub, [archive_no], "E0011", 7, "审计抽查", actor="t")
    assert made.approver_id == KEEPER
    with pytest.raises(Forbidden, match="no granted borrowing"):
        access_package(hub.db, archive_no, "E0011", "view")
    outcome = decide_archive_task(hub, made.task_id, KEEPER, True, "同意", actor="t")
    assert outcome.status == "granted"

    hub.db.clock = at(start + timedelta(days=6))
    record, borrowing_id = access_package(hub.db, archive_no, "E0011", "export")
    assert record.archive_no == archive_no and borrowing_id == made.borrowing_id
    with pytest.raises(Forbidden, match="no granted borrowing"):
        access_package(hub.db, archive_no, "E0012", "view")  # someone else

    hub.db.clock = at(start + timedelta(days=7, seconds=1))
    with pytest.raises(Forbidden, match=r"expired at 2026-12-08T08:00:00\+00:00"):
        access_package(hub.db, archive_no, "E0011", "view")
    assert expire_borrowings(hub.db) == [made.borrowing_id]
    assert expire_borrowings(hub.db) == []

    with hub.db.engine.connect() as conn:
        log = conn.execute(select(archive_access_log).order_by(archive_access_log.c.id)).all()
    assert [(r.action, r.actor) for r in log][-2:] == [
        ("lent", "employee:E0011"),
        ("export", "employee:E0011"),
    ]
    told = {(n["recipient_id"], n["title"]) for n in notices(hub)}
    assert ("E0011", f"档案借阅 {made.borrowing_id} granted") in told
    assert ("E0011", f"档案借阅 {made.borrowing_id} 已到期") in told


def test_destruction_is_refused_naming_unexpired_retention_and_an_open_borrowing(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    archive_no = one_package(hub, archive, posted, "AU-2")
    with pytest.raises(DestructionRefused, match="retention has not expired") as refused:
        start_destruction(hub, archive, [archive_no], actor="t")
    assert refused.value.problems[0].startswith(archive_no)

    hub.db.clock = at(datetime(2080, 1, 1, tzinfo=UTC))  # retention over
    request_borrowing(hub, [archive_no], "E0011", 30, "查账", actor="t")
    with pytest.raises(DestructionRefused, match=r"borrowing BR-\w+ is open"):
        start_destruction(hub, archive, [archive_no], actor="t")
    with hub.db.engine.connect() as conn:
        assert conn.execute(select(archive_destructions)).all() == []
        (status,) = conn.execute(select(archive_packages.c.status)).one()
    assert status == "archived"


def test_destruction_removes_the_files_and_keeps_the_inventory_and_the_audit(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    archive_no = one_package(hub, archive, posted, "AU-3")
    hub.db.clock = at(datetime(2080, 1, 1, tzinfo=UTC))
    with hub.db.engine.connect() as conn:
        files = conn.execute(select(archive_packages.c.files)).scalar_one()
    assert all(archive.store.exists(f["sha256"]) for f in files)
    started = start_destruction(hub, archive, [archive_no], actor="t")
    assert started.packages == [archive_no]
    opinion = etree.fromstring(archive.store.read(started.opinion_sha256))
    assert opinion.find("档案/条目").get("档号") == archive_no  # type: ignore[union-attr]

    outcome = None
    for task_id in started.task_ids:  # keeper -> accounting -> audit
        assert all(archive.store.exists(f["sha256"]) for f in files)
        outcome = decide_archive_task(hub, task_id, KEEPER, True, "同意销毁", actor="t")
    assert outcome is not None and outcome.status == "approved"
    documents = carry_out(hub, archive, started.destruction_id)

    assert not any(archive.store.exists(f["sha256"]) for f in files)
    inventory = etree.fromstring(archive.store.read(documents["销毁清册.xml"]))
    assert [e.get("档号") for e in inventory] == [archive_no]

    sheet = load_workbook(io.BytesIO(archive.store.read(documents["销毁清册.xlsx"]))).active
    assert sheet is not None and sheet.cell(2, 1).value == archive_no
    with hub.db.engine.connect() as conn:
        (status,) = conn.execute(select(archive_packages.c.status)).one()
        events = [
            r.action
            for r in conn.execute(
                select(audit_events).where(audit_events.c.action.like("archive.%"))
            )
        ]
        log = conn.execute(
            select(archive_access_log).where(archive_access_log.c.action == "destroyed")
        ).one()
    assert status == "destroyed"
    assert "archive.package_destroyed" in events and "archive.package_archived" in events
    assert sorted(log.detail["removed_files"]) == sorted(f["sha256"] for f in files)
    with pytest.raises(DestructionRefused, match="already destroyed"):
        start_destruction(hub, archive, [archive_no], actor="t")


def test_a_rejected_step_ends_the_destruction_and_keeps_the_files(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    archive_no = one_package(hub, archive, posted, "AU-4")
    hub.db.clock = at(datetime(2080, 1, 1, tzinfo=UTC))
    started = start_destruction(hub, archive, [archive_no], actor="t")
    decide_archive_task(hub, started.task_ids[0], KEEPER, True, None, actor="t")
    outcome = decide_archive_task(hub, started.task_ids[1], KEEPER, False, "仍需保留", actor="t")
    assert outcome.status == "rejected"
    with hub.db.engine.connect() as conn:
        (status,) = conn.execute(select(archive_packages.c.status)).one()
        files = conn.execute(select(archive_packages.c.files)).scalar_one()
    assert status == "archived"
    assert all(archive.store.exists(f["sha256"]) for f in files)
