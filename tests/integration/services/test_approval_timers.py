"""Reminders (催办) and escalations driven by durable timers, on SQLite and PostgreSQL.

The hub's clock is moved by the tests (`Database.clock`). Zhou Jie (E0011) submits on
Tuesday 1 December 2026 at 10:00 Shanghai time; his manager Sun Qiang (E0010) is reminded
after 8 working hours and the task goes on to Sun's manager, Wang (E0001), after 16.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from support.claims import one_line_claim

from finoa.config import Settings
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.queries import get_claim
from finoa.services.timers import tick, timer_owner
from finoa.store.tables import approval_timers, audit_events, outbox

SHANGHAI = ZoneInfo("Asia/Shanghai")
OPENED = datetime(2026, 12, 1, 10, 0, tzinfo=SHANGHAI)
ZHOU, SUN, WANG = "E0011", "E0010", "E0001"


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)


@pytest.fixture
def clock(hub: Hub) -> Clock:
    moved = Clock(OPENED)
    hub.db.clock = moved
    return moved


def submit(hub: Hub, external_id: str) -> str:
    body = one_line_claim(
        external_id,
        applicant_id=ZHOU,
        department_id="D02",
        category="travel",
        amount="620.00",
        title="上海出差 Shanghai trip",
        project_id="P001",
    )
    return submit_claim(hub, body, source="test", actor="t").claim_id


def count(hub: Hub, table: object, *where: object) -> int:
    with hub.db.engine.connect() as conn:
        stmt = select(func.count()).select_from(table).where(*where)  # type: ignore[arg-type]
        return int(conn.execute(stmt).scalar_one())


def audited(hub: Hub, kind: str) -> int:
    return count(hub, audit_events, audit_events.c.action == kind)


def test_reminder_then_escalation_after_working_hours(hub: Hub, clock: Clock) -> None:
    """Sun Qiang does nothing: at 18:00 the same day he is reminded (8 working hours; his OA
    todo gets the reminder); at 17:00 the next day (8 more), the task goes to Wang, who gets
    the task and a todo, and Sun's todo closes."""
    claim_id = submit(hub, "TMR-1")
    owner = timer_owner("test")
    assert tick(hub, owner).scheduled == 1
    clock.now = datetime(2026, 12, 1, 17, 59, tzinfo=SHANGHAI)
    assert tick(hub, owner).fired == 0
    clock.now = datetime(2026, 12, 1, 18, 0, tzinfo=SHANGHAI)
    assert tick(hub, owner).fired == 1
    assert audited(hub, "task.reminded") == 1
    reminders = count(hub, outbox, outbox.c.action == "todo.remind")
    assert reminders == 1
    assert tick(hub, owner).fired == 0  # fired once
    clock.now = datetime(2026, 12, 2, 16, 59, tzinfo=SHANGHAI)  # overnight does not count
    assert tick(hub, owner).fired == 0
    clock.now = datetime(2026, 12, 2, 17, 0, tzinfo=SHANGHAI)
    assert tick(hub, owner).fired == 1
    claim = get_claim(hub.db, claim_id)
    assert [(t.assignee_id, t.status) for t in claim.tasks] == [
        (SUN, "escalated"),
        (WANG, "pending"),
    ]
    assert audited(hub, "task.escalated") == 1
    with hub.db.engine.connect() as conn:
        ops = [
            (r.payload["op"], r.payload["assignee_id"])
            for r in conn.execute(
                select(outbox.c.payload)
                .where(outbox.c.aggregate_id == claim_id, outbox.c.action == "todo.push")
                .order_by(outbox.c.id)
            )
        ]
    assert ops == [("create", SUN), ("close", SUN), ("create", WANG)]
    # Wang's task gets timers of its own, counted from when it opened.
    assert tick(hub, owner).scheduled == 1


def test_a_decided_task_cancels_its_timers(hub: Hub, clock: Clock) -> None:
    """Sun Qiang approves on time: when the reminder falls due there is nothing to remind
    of, so it is cancelled and nothing is sent."""
    claim_id = submit(hub, "TMR-2")
    owner = timer_owner("test")
    tick(hub, owner)
    (task,) = get_claim(hub.db, claim_id).tasks
    decide_task(hub, task.id, SUN, True, "同意", actor="t")
    clock.now = OPENED + timedelta(days=7)
    report = tick(hub, owner)
    assert (report.fired, report.cancelled) == (0, 2)
    assert audited(hub, "task.reminded") == 0


def test_timers_survive_a_restart(hub: Hub, clock: Clock, settings: Settings) -> None:
    """The hub schedules the timers and stops; a new hub process (here: a new Hub on the same
    database) fires them when they fall due."""
    submit(hub, "TMR-3")
    tick(hub, timer_owner("before"))
    hub.close()
    again = Hub.create(settings)
    try:
        again.db.clock = Clock(datetime(2026, 12, 2, 9, 30, tzinfo=SHANGHAI))
        report = tick(again, timer_owner("after"))
        assert (report.scheduled, report.fired) == (0, 1)
        assert audited(again, "task.reminded") == 1
    finally:
        again.close()


def test_remind_and_escalate_can_be_turned_off(hub: Hub, clock: Clock) -> None:
    hub.settings = replace(hub.settings, remind_after_working_hours=0)
    submit(hub, "TMR-4")
    assert tick(hub, timer_owner("t")).scheduled == 1
    assert count(hub, approval_timers) == 1  # the escalation only


@pytest.fixture
def two_hubs(settings: Settings, hub: Hub) -> Iterator[tuple[Hub, Hub]]:
    other = Hub.create(settings)
    yield hub, other
    other.close()


def test_two_hubs_racing_fire_each_timer_once(two_hubs: tuple[Hub, Hub], clock: Clock) -> None:
    """Twelve claims' reminders fall due while two hubs tick at the same moment, again and
    again: every reminder is sent exactly once."""
    first, second = two_hubs
    second.db.clock = clock
    for n in range(12):
        submit(first, f"TMR-RACE-{n}")
    clock.now = datetime(2026, 12, 2, 9, 30, tzinfo=SHANGHAI)  # reminders due, escalations not
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(hub: Hub, name: str) -> Callable[[], None]:
        owner = timer_owner(name)

        def body() -> None:
            try:
                start.wait()
                for _ in range(5):
                    tick(hub, owner)
            except BaseException as exc:  # reported below
                errors.append(exc)

        return body

    threads = [threading.Thread(target=run(h, n)) for h, n in ((first, "a"), (second, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert audited(first, "task.reminded") == 12
    assert count(first, outbox, outbox.c.action == "todo.remind") == 12
    assert count(first, approval_timers, approval_timers.c.status == "fired") == 12
