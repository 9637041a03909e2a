"""Durable approval timers: reminders (催办) and escalations of open tasks, fired exactly once.

Every open approval task gets two rows in `approval_timers`: a reminder due
`remind_after_working_hours` after the task opened and an escalation due
`escalate_after_working_hours` after it (working hours of the company's calendar, see
`domain/working_hours.py`; 0 turns one off). The timers are derived from the tasks, so a task
opened by any process -- or before a restart -- gets them on the next tick, and they survive
restarts because they are rows.

Each tick a hub (1) adds the missing timers, (2) claims due ones under a short lease
(`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two hubs take disjoint rows; SQLite has one
writer), and (3) fires each in a transaction of its own that locks the row again and goes on
only while the row is still `pending` and leased to itself: a hub whose lease ran out and was
taken over changes nothing, so each timer fires once. Firing a timer whose task was decided
meanwhile just cancels it.

* A **reminder** is audited (`task.reminded`) and, when the claim's OA connector takes
  `todo.remind`, sent to the approver's todo.
* An **escalation** hands the task on (`escalate_to`: the assignee's manager, or the holder of
  a role) as a transfer by the system: the task becomes `escalated`, the new assignee gets a
  task and a todo, the old todo closes; it is audited as `task.escalated`.

The clock is the database's (`Database.clock`): tests move it in process, and test processes
through `clock_offset_file` (seconds to add, read at every reading).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from finoa.connectors.registry import available_connectors
from finoa.domain.errors import DomainError
from finoa.domain.org import EmployeeRole
from finoa.messaging.outbox import claim_ref
from finoa.services.approvals import escalate_task
from finoa.services.context import Hub
from finoa.store import repositories as repo
from finoa.store.tables import approval_tasks, approval_timers
from finoa.store.uow import OutboxMessage, UnitOfWork

__all__ = [
    "ESCALATE",
    "REMIND",
    "TickReport",
    "claim_due_timers",
    "fire_timer",
    "offset_clock",
    "run_timers",
    "schedule_timers",
    "tick",
    "timer_owner",
]

log = logging.getLogger(__name__)

REMIND = "remind"
ESCALATE = "escalate"
REMIND_ACTION = "todo.remind"
SCHEDULE_LIMIT = 1000  # tasks given timers per tick
CLAIM_LIMIT = 100  # due timers claimed per tick
LEASE = timedelta(seconds=30)


@dataclass
class TickReport:
    scheduled: int = 0
    fired: int = 0
    cancelled: int = 0
    lost: int = 0  # claimed, but another hub had it by the time we fired


def offset_clock(path: Path) -> Callable[[], datetime]:
    """A clock `seconds` (the file's content; missing or empty: 0) ahead of the real one."""

    def now() -> datetime:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            text = ""
        return datetime.now(UTC) + timedelta(seconds=float(text or 0))

    return now


def schedule_timers(hub: Hub) -> int:
    """Give every open task without timers its reminder and escalation; returns how many
    tasks were given timers. Hubs doing this at once insert each timer once."""
    settings = hub.settings
    plans = [
        (REMIND, settings.remind_after_working_hours),
        (ESCALATE, settings.escalate_after_working_hours),
    ]
    plans = [(kind, hours) for kind, hours in plans if hours > 0]
    if not plans:
        return 0
    calendar = settings.working_calendar
    dialect_insert = sqlite_insert if hub.db.is_sqlite else pg_insert

    def command(uow: UnitOfWork) -> int:
        tasks = uow.conn.execute(
            select(approval_tasks.c.id, approval_tasks.c.created_at)
            .outerjoin(approval_timers, approval_timers.c.task_id == approval_tasks.c.id)
            .where(approval_tasks.c.status == "pending", approval_timers.c.id.is_(None))
            .order_by(approval_tasks.c.created_at)
            .limit(SCHEDULE_LIMIT)
        ).all()
        for task in tasks:
            opened = _aware(task.created_at)
            rows = [
                {
                    "task_id": task.id,
                    "kind": kind,
                    "due_at": calendar.add_working_hours(opened, hours),
                    "status": "pending",
                }
                for kind, hours in plans
            ]
            uow.conn.execute(
                dialect_insert(approval_timers)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["task_id", "kind"])
            )
        return len(tasks)

    return hub.db.perform(command, actor="system:timers")


def claim_due_timers(hub: Hub, owner: str, limit: int = CLAIM_LIMIT) -> list[int]:
    """Lease the timers due now (whose lease, if any, ran out) to `owner`; their ids."""

    def command(uow: UnitOfWork) -> list[int]:
        now = uow.now
        stmt = (
            select(approval_timers.c.id)
            .where(
                approval_timers.c.status == "pending",
                approval_timers.c.due_at <= now,
                or_(approval_timers.c.lease_until.is_(None), approval_timers.c.lease_until < now),
            )
            .order_by(approval_timers.c.due_at, approval_timers.c.id)
            .limit(limit)
        )
        if not hub.db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        ids: list[int] = list(uow.conn.execute(stmt).scalars())
        if ids:
            uow.conn.execute(
                update(approval_timers)
                .where(approval_timers.c.id.in_(ids))
                .values(lease_owner=owner, lease_until=now + LEASE)
            )
        return ids

    return hub.db.perform(command, actor="system:timers")


def fire_timer(hub: Hub, timer_id: int, owner: str) -> str | None:
    """Fire one leased timer: `fired`, `cancelled` (its task was decided), or None when the
    timer is no longer this owner's to fire (another hub took it over, or fired it)."""

    def command(uow: UnitOfWork) -> str | None:
        stmt = select(approval_timers).where(approval_timers.c.id == timer_id)
        if not hub.db.is_sqlite:
            stmt = stmt.with_for_update()
        timer = uow.conn.execute(stmt).first()
        if timer is None or timer.status != "pending" or timer.lease_owner != owner:
            return None
        task = repo.task_row(uow.conn, timer.task_id)
        if task is None or task.status != "pending":
            _settle(uow, timer_id, owner, "cancelled", f"task is {task.status if task else 'gone'}")
            return "cancelled"
        outcome = _remind(hub, uow, task) if timer.kind == REMIND else _escalate(hub, uow, task)
        _settle(uow, timer_id, owner, "fired", outcome)
        return "fired"

    return hub.db.perform(command, actor="system:timers")


def _settle(uow: UnitOfWork, timer_id: int, owner: str, status: str, outcome: str) -> None:
    uow.conn.execute(
        update(approval_timers)
        .where(and_(approval_timers.c.id == timer_id, approval_timers.c.status == "pending"))
        .values(status=status, fired_at=uow.now, fired_by=owner, outcome=outcome, lease_until=None)
    )


def _remind(hub: Hub, uow: UnitOfWork, task: Any) -> str:
    claim = repo.claim_row(uow.conn, task.claim_id)
    ref = claim_ref(claim)
    uow.audit(
        "task.reminded",
        "task",
        task.id,
        {"claim_id": claim.id, "assignee_id": task.assignee_id},
    )
    if not _takes(hub, ref["oa_instance"], REMIND_ACTION):
        return "reminded (audited; the OA takes no reminders)"
    uow.enqueue(
        OutboxMessage(
            destination=ref["oa_instance"],
            action=REMIND_ACTION,
            aggregate_type="claim",
            aggregate_id=claim.id,
            idempotency_key=f"todo:{task.id}:remind",
            payload={
                "op": "remind",
                "task_id": task.id,
                "claim_id": claim.id,
                "external_id": claim.external_id,
                "assignee_id": task.assignee_id,
                "role": task.role,
                "title": ref["todo_title"],
                "amount_fen": claim.total_fen,
                "currency": claim.currency,
            },
        )
    )
    return "reminded"


def _escalate(hub: Hub, uow: UnitOfWork, task: Any) -> str:
    people = hub.masterdata.get()
    target = hub.settings.escalate_to
    if target == "manager":
        person = people.employees.get(task.on_behalf_of or task.assignee_id)
        to = person.manager_id if person is not None else None
    else:
        to = people.role_holders.get(EmployeeRole(target))
    if to is None or to in (task.assignee_id, task.on_behalf_of):
        uow.audit("task.escalation_skipped", "task", task.id, {"reason": f"no {target} to go to"})
        return f"not escalated: no {target} to go to"
    try:
        with uow.step("system:timers"):
            escalate_task(hub, uow, task, to, f"escalated to {to} (no decision in time)")
    except DomainError as exc:
        uow.audit("task.escalation_skipped", "task", task.id, {"reason": str(exc)})
        return f"not escalated: {exc}"
    return f"escalated to {to}"


def _takes(hub: Hub, instance: str, action: str) -> bool:
    found = hub.instances.instances.get(instance)
    if found is None:
        return False
    factory = available_connectors().get(found.connector)
    return factory is not None and action in factory.manifest.actions


def tick(hub: Hub, owner: str) -> TickReport:
    """One round: schedule, claim, fire."""
    report = TickReport(scheduled=schedule_timers(hub))
    for timer_id in claim_due_timers(hub, owner):
        result = fire_timer(hub, timer_id, owner)
        if result == "fired":
            report.fired += 1
        elif result == "cancelled":
            report.cancelled += 1
        else:
            report.lost += 1
    return report


def timer_owner(worker_id: str) -> str:
    """`<worker id>/<boot id>`: who holds a timer's lease."""
    return f"{worker_id}/{uuid.uuid4().hex[:12]}"


async def run_timers(hub: Hub, owner: str, *, every: float, stop: asyncio.Event) -> None:
    """Tick now and every `every` seconds until `stop` is set; a failing tick is logged."""
    while not stop.is_set():
        try:
            await hub.db.run(tick, hub, owner)
        except Exception:  # a database outage must not end the loop
            log.exception("approval timers: tick failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
