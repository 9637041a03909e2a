"""Company time and accounting periods against a real database (SQLite and PostgreSQL).

The unit of work's clock is set to fixed instants, so nothing here depends on the wall clock.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from support.claims import one_line_claim
from support.databases import pg_admin, pg_url

from finoa.config import Settings, load_settings
from finoa.domain.errors import Conflict, InvalidInput
from finoa.domain.periods import Period
from finoa.schemas import VoucherOut
from finoa.services.approvals import decide_task
from finoa.services.audit_trail import verify_audit_chain
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.periods import (
    close_period,
    list_periods,
    open_period,
    place_in_open_period,
)
from finoa.services.queries import get_claim
from finoa.services.vouchers import record_voucher_posted, reverse_voucher
from finoa.store.tables import accounting_periods, audit_events, claims, outbox, vouchers

# 01:00 on 1 February 2026 in Beijing is 17:00 on 31 January in UTC.
FEB_1_0100_BEIJING = datetime(2026, 1, 31, 17, 0, tzinfo=UTC)
JAN_31_2359_BEIJING = datetime(2026, 1, 31, 15, 59, tzinfo=UTC)


def at(instant: datetime) -> Callable[[], datetime]:
    return lambda: instant


@pytest.fixture
def refusing_hub(settings: Settings) -> Iterator[Hub]:
    """A hub whose closed_period_policy is `refuse`."""
    hub = Hub.create(replace(settings, closed_period_policy="refuse"))
    load_masterdata(hub.db)
    yield hub
    hub.close()


def submit(hub: Hub, external_id: str, amount: str = "320.00") -> str:
    body = one_line_claim(
        external_id,
        applicant_id="E0011",
        department_id="D02",
        category="office",
        amount=amount,
    )
    return submit_claim(hub, body, source="test", actor="t").claim_id


def approve(hub: Hub, claim_id: str) -> VoucherOut:
    """Approve a claim under 5000 yuan (its manager alone decides); its voucher."""
    (task,) = [t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending"]
    decide_task(hub, task.id, task.assignee_id, True, "同意", actor="t")
    voucher = get_claim(hub.db, claim_id).voucher
    assert voucher is not None
    return voucher


def post(hub: Hub, voucher: VoucherOut) -> None:
    with hub.db.uow("erp") as uow:
        record_voucher_posted(uow, voucher.id, {"erp_voucher_no": "ERP-1", "erp_id": "x"})
        uow.commit()


def audit_of(hub: Hub, action: str) -> list[Any]:
    with hub.db.engine.connect() as conn:
        return list(
            conn.execute(
                select(audit_events).where(audit_events.c.action == action).order_by("seq")
            )
        )


def voucher_row(hub: Hub, voucher_id: str) -> Any:
    with hub.db.engine.connect() as conn:
        return conn.execute(select(vouchers).where(vouchers.c.id == voucher_id)).one()


def counts(hub: Hub) -> dict[str, int]:
    with hub.db.engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (claims, outbox, audit_events, vouchers, accounting_periods)
        }


# --- company time ---------------------------------------------------------------------------


def test_approval_at_one_in_the_morning_beijing_time_lands_in_february(hub: Hub) -> None:
    january = submit(hub, "OA-JAN")
    february = [submit(hub, f"OA-FEB-{n}") for n in (1, 2)]
    hub.db.clock = at(JAN_31_2359_BEIJING)
    late_january = approve(hub, january)
    hub.db.clock = at(FEB_1_0100_BEIJING)
    early_february = [approve(hub, claim_id) for claim_id in february]
    assert (late_january.period, late_january.voucher_date) == ("2026-01", date(2026, 1, 31))
    for voucher in early_february:
        assert (voucher.period, voucher.voucher_date) == ("2026-02", date(2026, 2, 1))
    # numbering restarts in each period of company time
    assert late_january.voucher_no == "记-0001"
    assert sorted(v.voucher_no for v in early_february) == ["记-0001", "记-0002"]
    with hub.db.engine.connect() as conn:
        body = conn.execute(
            select(outbox.c.payload).where(
                outbox.c.action == "voucher.post", outbox.c.aggregate_id == early_february[0].id
            )
        ).scalar_one()
    assert (body["period"], body["date"]) == ("2026-02", "2026-02-01")


def test_company_timezone_is_configurable(settings: Settings) -> None:
    hub = Hub.create(replace(settings, company_timezone="UTC"))
    try:
        load_masterdata(hub.db)
        claim_id = submit(hub, "OA-UTC")
        hub.db.clock = at(FEB_1_0100_BEIJING)
        voucher = approve(hub, claim_id)
    finally:
        hub.close()
    assert (voucher.period, voucher.voucher_date) == ("2026-01", date(2026, 1, 31))


def test_reversal_is_dated_in_company_time(hub: Hub) -> None:
    voucher = approve(hub, submit(hub, "OA-REV"))
    post(hub, voucher)
    hub.db.clock = at(datetime(2026, 2, 28, 16, 30, tzinfo=UTC))  # 00:30 on 1 March in Beijing
    reversal = voucher_row(hub, reverse_voucher(hub, voucher.id, actor="finance"))
    assert (reversal.period, reversal.voucher_date) == ("2026-03", date(2026, 3, 1))
    assert reversal.voucher_no == "记-0001"
    assert reversal.reversal_of == voucher.id


# --- closed periods: next_open (the default) --------------------------------------------------


def test_approval_into_a_closed_period_moves_to_the_next_open_one(hub: Hub) -> None:
    assert hub.settings.closed_period_policy == "next_open"
    close_period(hub.db, "2026-02", actor="finance")
    close_period(hub.db, "2026-03", actor="finance")
    claim_id = submit(hub, "OA-MOVED")
    hub.db.clock = at(FEB_1_0100_BEIJING)
    voucher = approve(hub, claim_id)
    assert (voucher.period, voucher.voucher_date, voucher.voucher_no) == (
        "2026-04",
        date(2026, 4, 1),
        "记-0001",
    )
    (moved,) = audit_of(hub, "voucher.period_moved")
    assert (moved.object_type, moved.object_id, moved.actor) == ("voucher", voucher.id, "t")
    assert moved.data["from"] == "2026-02" and moved.data["to"] == "2026-04"
    assert moved.data["requested_date"] == "2026-02-01"
    assert moved.data["policy"] == "next_open"
    assert get_claim(hub.db, claim_id).status == "approved"
    assert verify_audit_chain(hub.db).ok


def test_closed_periods_are_skipped_across_the_year_end(hub: Hub) -> None:
    for period in ("2026-12", "2027-01"):
        close_period(hub.db, period, actor="finance")
    claim_id = submit(hub, "OA-YEAR")
    hub.db.clock = at(datetime(2026, 12, 31, 15, 0, tzinfo=UTC))  # 23:00 on 31 December, Beijing
    voucher = approve(hub, claim_id)
    assert (voucher.period, voucher.voucher_date) == ("2027-02", date(2027, 2, 1))


def test_a_reopened_period_takes_vouchers_again(hub: Hub) -> None:
    close_period(hub.db, "2026-02", actor="finance")
    open_period(hub.db, "2026-02", actor="finance")
    claim_id = submit(hub, "OA-REOPENED")
    hub.db.clock = at(FEB_1_0100_BEIJING)
    assert approve(hub, claim_id).period == "2026-02"
    assert audit_of(hub, "voucher.period_moved") == []


def test_reversal_into_a_closed_period_moves_too(hub: Hub) -> None:
    hub.db.clock = at(FEB_1_0100_BEIJING)
    voucher = approve(hub, submit(hub, "OA-REV-MOVED"))
    post(hub, voucher)
    close_period(hub.db, "2026-02", actor="finance")
    reversal_id = reverse_voucher(hub, voucher.id, actor="finance", on=date(2026, 2, 20))
    reversal = voucher_row(hub, reversal_id)
    assert (reversal.period, reversal.voucher_date) == ("2026-03", date(2026, 3, 1))
    (moved,) = audit_of(hub, "voucher.period_moved")
    assert (moved.object_id, moved.data["from"], moved.data["to"]) == (
        reversal_id,
        "2026-02",
        "2026-03",
    )


# --- closed periods: refuse -------------------------------------------------------------------


def test_refuse_policy_refuses_the_decision_and_changes_nothing(refusing_hub: Hub) -> None:
    hub = refusing_hub
    claim_id = submit(hub, "OA-REFUSED")
    close_period(hub.db, "2026-02", actor="finance")
    hub.db.clock = at(FEB_1_0100_BEIJING)
    (task,) = get_claim(hub.db, claim_id).tasks
    before = counts(hub)
    with pytest.raises(Conflict) as info:
        decide_task(hub, task.id, task.assignee_id, True, "同意", actor="t")
    assert info.value.status == 409 and info.value.field == "period"
    assert "2026-02 is closed" in info.value.message
    assert counts(hub) == before
    claim = get_claim(hub.db, claim_id)
    assert claim.status == "in_approval" and claim.voucher is None
    assert [t.status for t in claim.tasks] == ["pending"]
    # once the period is open again the same decision goes through
    open_period(hub.db, "2026-02", actor="finance")
    assert approve(hub, claim_id).period == "2026-02"


def test_refuse_policy_refuses_a_reversal_into_a_closed_period(refusing_hub: Hub) -> None:
    hub = refusing_hub
    hub.db.clock = at(FEB_1_0100_BEIJING)
    voucher = approve(hub, submit(hub, "OA-REV-REFUSED"))
    post(hub, voucher)
    close_period(hub.db, "2026-02", actor="finance")
    before = counts(hub)
    with pytest.raises(Conflict) as info:
        reverse_voucher(hub, voucher.id, actor="finance")
    assert info.value.field == "period"
    assert counts(hub) == before
    assert voucher_row(hub, voucher.id).status == "posted"


# --- managing periods -------------------------------------------------------------------------


def test_closing_and_opening_are_recorded_and_audited(hub: Hub) -> None:
    hub.db.clock = at(FEB_1_0100_BEIJING)
    approve(hub, submit(hub, "OA-LIST"))
    closed = close_period(hub.db, "2026-02", actor="finance")
    assert (closed.period, closed.status, closed.closed_by, closed.vouchers) == (
        "2026-02",
        "closed",
        "finance",
        1,
    )
    assert closed.closed_at is not None
    assert closed.closed_at.replace(tzinfo=UTC) == FEB_1_0100_BEIJING
    again = close_period(hub.db, "2026-02", actor="someone-else")  # nothing changes
    assert again == closed
    close_period(hub.db, "2025-12", actor="finance")
    assert [(s.period, s.status, s.vouchers) for s in list_periods(hub.db)] == [
        ("2025-12", "closed", 0),
        ("2026-02", "closed", 1),
    ]
    reopened = open_period(hub.db, "2026-02", actor="cfo")
    assert (reopened.status, reopened.closed_at, reopened.closed_by) == ("open", None, None)
    never_closed = open_period(hub.db, "2030-01", actor="cfo")
    assert never_closed.status == "open"
    closings = [(e.object_type, e.object_id, e.actor) for e in audit_of(hub, "period.closed")]
    assert closings == [("period", "2026-02", "finance"), ("period", "2025-12", "finance")]
    opened = [(e.object_id, e.actor, e.data["status"]) for e in audit_of(hub, "period.opened")]
    assert opened == [("2026-02", "cfo", "open")]
    assert [s.period for s in list_periods(hub.db)] == ["2025-12", "2026-02"]
    assert verify_audit_chain(hub.db).ok


@pytest.mark.parametrize("bad", ["2026-13", "2026-2", "Feb 2026", "2026-02-01", ""])
def test_bad_period_text_is_refused_naming_period(hub: Hub, bad: str) -> None:
    before = counts(hub)
    for change in (close_period, open_period):
        with pytest.raises(InvalidInput) as info:
            change(hub.db, bad, actor="finance")
        assert info.value.field == "period"
    assert counts(hub) == before


@pytest.fixture
def pg_hub(pg_template: str, tmp_path: Path) -> Iterator[Hub]:
    """A hub on a fresh PostgreSQL database only: the period locks are PostgreSQL's."""
    name = f"finoa_t_{uuid.uuid4().hex[:12]}"
    pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    hub = Hub.create(load_settings(data_dir=tmp_path / "data", database_url=pg_url(name)))
    try:
        load_masterdata(hub.db)
        yield hub
    finally:
        hub.close()
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_closing_waits_for_a_voucher_being_placed_in_the_period(pg_hub: Hub) -> None:
    """A close cannot slip in between a voucher's period check and that voucher's commit.
    (On SQLite the single writer lock serializes them anyway.)"""
    hub = pg_hub
    closer: dict[str, Any] = {}
    with hub.db.uow("t") as uow:
        placement = place_in_open_period(hub, uow, date(2026, 2, 1), "V-IN-FLIGHT")
        assert placement.period == Period(2026, 2)
        thread = threading.Thread(
            target=lambda: closer.update(state=close_period(hub.db, "2026-02", actor="finance"))
        )
        thread.start()
        wait_until_waiting_on_advisory_lock(hub)
        assert closer == {}
        uow.commit()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert closer["state"].status == "closed"


def wait_until_waiting_on_advisory_lock(hub: Hub, timeout_s: float = 20.0) -> None:
    """Poll PostgreSQL until some session of this database waits for an advisory lock."""
    deadline = time.monotonic() + timeout_s
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    while time.monotonic() < deadline:
        with hub.db.engine.connect() as conn:
            if conn.execute(query).scalar_one() > 0:
                return
        threading.Event().wait(0.02)  # a poll interval, not a wait for the outcome
    raise AssertionError("the close never waited for the period's lock")
