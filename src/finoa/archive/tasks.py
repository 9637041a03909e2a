"""Approval tasks of archive use (borrowing, appraisal before destruction).

A task is pushed to its assignee's OA todo list through the outbox's `todo.push`, like a
claim's, and decided by the OA's decision webhook (the inbound path sends task ids starting
with `arch-` here) or `POST /api/v1/archive/tasks/{task_id}/decision`. Claims' tasks are bound
to a claim and its workflow instance, so archive tasks keep a table of their own; steps run
one after another, the next opened when the one before is approved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from finoa.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from finoa.domain.org import EmployeeRole
from finoa.messaging import inbox
from finoa.messaging.outbox import OA, push_todo
from finoa.services.directory import MasterDataSnapshot
from finoa.store.tables import archive_tasks
from finoa.store.uow import UnitOfWork

TASK_PREFIX = "arch-"
ARCHIVE_KEEPER = "archive_keeper"  # 档案管理人员
ACCOUNTING = "accounting"  # 会计机构
AUDIT = "audit"  # 审计机构


def is_archive_task(task_id: str) -> bool:
    return task_id.startswith(TASK_PREFIX)


def role_holder(people: MasterDataSnapshot, extra: dict[str, Any], role: str) -> str:
    """Who holds an archive role: `archive_<role>` in the settings' extra section, else the
    finance director (财务总监) of the org data, else the fallback approver."""
    configured = extra.get(f"archive_{role}") if role != ARCHIVE_KEEPER else extra.get(role)
    if isinstance(configured, str) and configured:
        if configured not in people.employees:
            raise InvalidInput(role, f"the configured {role} {configured} is not an employee")
        return configured
    holder = people.role_holders.get(EmployeeRole.FINANCE_DIRECTOR) or people.fallback_approver
    if holder is None:
        raise InvalidInput(role, f"nobody holds the {role} role; set archive_{role}")
    return holder


@dataclass(frozen=True)
class Step:
    role: str
    assignee_id: str


def open_steps(
    uow: UnitOfWork,
    subject_type: str,
    subject_id: str,
    steps: Sequence[Step],
    title: str,
) -> list[str]:
    """Record the steps (the first pending, the rest waiting) and push the first to the OA."""
    ids = []
    for number, step in enumerate(steps, start=1):
        task_id = f"{TASK_PREFIX}{subject_id}-{number}"
        uow.conn.execute(
            insert(archive_tasks).values(
                id=task_id,
                subject_type=subject_type,
                subject_id=subject_id,
                step=number,
                role=step.role,
                assignee_id=step.assignee_id,
                status="pending" if number == 1 else "waiting",
                created_at=uow.now,
            )
        )
        ids.append(task_id)
    _push(uow, ids[0], steps[0].role, steps[0].assignee_id, subject_id, title, "create")
    return ids


def _push(
    uow: UnitOfWork, task_id: str, role: str, assignee: str, subject_id: str, title: str, op: str
) -> None:
    subject = {
        "id": subject_id,
        "external_id": subject_id,
        "todo_title": title[:200],
        "total_fen": 0,
        "currency": "CNY",
        "oa_instance": OA,
    }
    push_todo(uow, op, {"id": task_id, "assignee_id": assignee, "role": role}, subject)
    uow.audit("task.opened" if op == "create" else "task.closed", "archive_task", task_id,
              {"subject_id": subject_id, "role": role, "assignee_id": assignee})  # fmt: skip


@dataclass(frozen=True)
class TaskOutcome:
    task_id: str
    subject_type: str
    subject_id: str
    status: str  # the subject's status after the decision
    duplicate: bool = False


Finisher = Callable[[UnitOfWork, Any, bool], str]
"""What a subject does when its last step is decided (or one is rejected): (uow, task row,
approved) -> the subject's new status."""


def decide(
    uow: UnitOfWork,
    task_id: str,
    approver_id: str,
    approve: bool,
    comment: str | None,
    finishers: dict[str, Finisher],
    source: str | None = None,
    message_id: str | None = None,
) -> TaskOutcome:
    content = {"task_id": task_id, "approver_id": approver_id, "approve": approve,
               "comment": comment}  # fmt: skip
    if source is not None and message_id is not None:
        earlier = inbox.seen(uow, source, message_id, "decision", content)
        if earlier is not None:
            return TaskOutcome(task_id, earlier["subject_type"], earlier["subject_id"],
                               earlier["status"], duplicate=True)  # fmt: skip
    t = archive_tasks
    task = uow.conn.execute(select(t).where(t.c.id == task_id).with_for_update()).first()
    if task is None:
        raise NotFound("task_id", f"unknown archive task {task_id}")
    if task.status != "pending":
        raise Conflict("task_id", f"task {task_id} is {task.status}, not pending")
    if task.assignee_id != approver_id:
        raise Forbidden("approver_id", f"{approver_id} is not the assignee of task {task_id}")
    uow.conn.execute(
        update(t)
        .where(t.c.id == task_id)
        .values(status="approved" if approve else "rejected", comment=comment, decided_at=uow.now)
    )
    uow.audit("task.decided", "archive_task", task_id,
              {"subject_id": task.subject_id, "approve": approve, "approver_id": approver_id,
               "comment": comment})  # fmt: skip
    following = uow.conn.execute(
        select(t).where(
            t.c.subject_type == task.subject_type,
            t.c.subject_id == task.subject_id,
            t.c.step == task.step + 1,
        )  # fmt: skip
    ).first()
    finisher = finishers[task.subject_type]
    if approve and following is not None:
        uow.conn.execute(update(t).where(t.c.id == following.id).values(status="pending"))
        title = f"档案审批 {task.subject_type} {task.subject_id} ({following.role})"
        _push(uow, following.id, following.role, following.assignee_id, task.subject_id, title,
              "create")  # fmt: skip
        status = "in_approval"
    else:
        if not approve and following is not None:
            uow.conn.execute(
                update(t)
                .where(t.c.subject_id == task.subject_id, t.c.status == "waiting")
                .values(status="withdrawn")
            )
        status = finisher(uow, task, approve)
    outcome = TaskOutcome(task_id, task.subject_type, task.subject_id, status)
    if source is not None and message_id is not None:
        inbox.record(uow, source, message_id, "decision", content,
                     {"subject_type": outcome.subject_type, "subject_id": outcome.subject_id,
                      "status": status})  # fmt: skip
    return outcome


def tasks_of(uow_conn: Any, subject_id: str) -> list[Any]:
    t = archive_tasks
    return list(uow_conn.execute(select(t).where(t.c.subject_id == subject_id).order_by(t.c.step)))
