"""Approval tasks (审批): open them for the right people, take decisions, route the claim."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from finoa.domain.claim import ClaimStatus, transition
from finoa.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from finoa.domain.org import ApprovalRole, assign_step
from finoa.messaging import inbox
from finoa.messaging.outbox import claim_ref, push_todo, write_back_status
from finoa.services.budgets import release_claim_budgets
from finoa.services.context import Hub
from finoa.services.directory import MasterDataSnapshot
from finoa.services.vouchers import create_claim_voucher
from finoa.store import repositories as repo
from finoa.store.prepared import Prepared
from finoa.store.tables import approval_tasks, workflow_instances
from finoa.store.uow import UnitOfWork
from finoa.workflow import Action, Decision, PendingStep, StepNotPending

INSERT_TASK = Prepared(insert(approval_tasks))
DECIDE_TASK = Prepared(
    update(approval_tasks)
    .where(approval_tasks.c.id == bindparam("b_task_id"))
    .values(
        status=bindparam("b_status"), comment=bindparam("b_comment"), decided_at=bindparam("b_now")
    )
)
WORKFLOW_OF_CLAIM = Prepared(
    select(workflow_instances.c.state).where(workflow_instances.c.claim_id == bindparam("claim_id"))
)
SAVE_WORKFLOW = Prepared(
    update(workflow_instances)
    .where(workflow_instances.c.claim_id == bindparam("b_claim_id"))
    .values(
        state=bindparam("b_state"), outcome=bindparam("b_outcome"), updated_at=bindparam("b_now")
    )
    .values(state_format_version=bindparam("b_state_format_version"))
)


@dataclass(frozen=True)
class DecisionResult:
    task_id: str
    claim_id: str
    claim_status: str
    duplicate: bool = False


def open_tasks(
    uow: UnitOfWork,
    people: MasterDataSnapshot,
    claim: dict[str, Any],
    applicant_id: str,
    steps: Sequence[PendingStep],
) -> list[dict[str, Any]]:
    """Create a task per ready step, assigned by role, and push each to the OA todo list."""
    opened: list[dict[str, Any]] = []
    if not steps:
        return opened
    applicant = people.employees.get(applicant_id)
    if applicant is None:
        raise InvalidInput("applicant_id", f"unknown employee {applicant_id}")
    for step in steps:
        assignment = assign_step(
            ApprovalRole(step.role),
            applicant,
            people.employees,
            people.role_holders,
            people.org_chart,
            department_id=claim.get("department_id") or applicant.department_id,
            cost_center_id=claim.get("cost_center_id"),
            users=step.users,
            fallback_approver=people.fallback_approver,
        )
        assignee = assignment.assignees[0]
        task = {
            "id": step.step_id,
            "claim_id": claim["id"],
            "role": step.role,
            "label": step.label,
            "assignee_id": assignee,
            "status": "pending",
            "created_at": uow.now,
            "fallback_reason": assignment.fallback_reason,
        }
        INSERT_TASK.run(uow.conn, task)
        opened_data = {"claim_id": claim["id"], "role": step.role, "assignee_id": assignee}
        if len(assignment.assignees) > 1:
            opened_data["assignees"] = list(assignment.assignees)
        uow.audit("task.opened", "task", step.step_id, opened_data)
        if assignment.fallback_reason is not None:
            uow.audit(
                "task.fallback_assigned",
                "task",
                step.step_id,
                {
                    "claim_id": claim["id"],
                    "role": step.role,
                    "assignee_id": assignee,
                    "reason": assignment.fallback_reason,
                },
            )
        push_todo(uow, "create", task, claim)
        opened.append(task)
    return opened


def decide_task(
    hub: Hub,
    task_id: str,
    approver_id: str,
    approve: bool,
    comment: str | None,
    *,
    actor: str,
    source: str | None = None,
    message_id: str | None = None,
) -> DecisionResult:
    """Decide a task in a transaction of its own (see `task_decision`)."""
    command = task_decision(hub, task_id, approver_id, approve, comment, source, message_id)
    return hub.db.perform(command, actor=actor)


def task_decision(
    hub: Hub,
    task_id: str,
    approver_id: str,
    approve: bool,
    comment: str | None,
    source: str | None = None,
    message_id: str | None = None,
) -> Callable[[UnitOfWork], DecisionResult]:
    """The command that records a decision on a pending task and moves the claim on."""
    return functools.partial(
        _decide, hub, task_id, approver_id, approve, comment, source, message_id
    )


def _decide(
    hub: Hub,
    task_id: str,
    approver_id: str,
    approve: bool,
    comment: str | None,
    source: str | None,
    message_id: str | None,
    uow: UnitOfWork,
) -> DecisionResult:
    conn = uow.conn
    content = {
        "task_id": task_id,
        "approver_id": approver_id,
        "approve": approve,
        "comment": comment,
    }
    if source is not None and message_id is not None:
        earlier = inbox.seen(uow, source, message_id, "decision", content)
        if earlier is not None:
            return DecisionResult(
                task_id, earlier["claim_id"], earlier["claim_status"], duplicate=True
            )
    task = repo.task_row(conn, task_id)
    if task is None:
        raise NotFound("task_id", f"unknown task {task_id}")
    claim = repo.claim_row(conn, task.claim_id, lock=True)
    if not hub.db.is_sqlite:
        # Re-read under the claim's lock (SQLite holds a global one): a concurrent delivery
        # of the same message may have committed while we waited.
        if source is not None and message_id is not None:
            earlier = inbox.seen(uow, source, message_id, "decision", content)
            if earlier is not None:
                return DecisionResult(
                    task_id, earlier["claim_id"], earlier["claim_status"], duplicate=True
                )
        task = repo.task_row(conn, task_id, lock=True)
    if task.status == "withdrawn":
        raise Conflict(
            "task_id",
            f"task {task_id} was withdrawn: claim {claim.id} is {claim.status} ({claim.reason})",
        )
    if task.status != "pending":
        raise Conflict("task_id", f"task {task_id} was already decided ({task.status})")
    if task.assignee_id != approver_id:
        raise Forbidden("approver_id", f"{approver_id} is not the assignee of task {task_id}")
    instance = WORKFLOW_OF_CLAIM.first(conn, {"claim_id": claim.id})
    if instance is None:
        raise Conflict("task_id", f"claim {claim.id} has no approval process")
    try:
        action = Action.APPROVE if approve else Action.REJECT
        state = hub.engine.decide(
            instance.state, task_id, Decision(action, actor=approver_id, comment=comment)
        )
    except StepNotPending:
        raise Conflict("task_id", f"task {task_id} is not waiting for a decision") from None
    decision = "approved" if approve else "rejected"
    DECIDE_TASK.run(
        conn,
        {"b_task_id": task_id, "b_status": decision, "b_comment": comment, "b_now": uow.now},
    )
    uow.audit(
        f"task.{decision}",
        "task",
        task_id,
        {"claim_id": claim.id, "approver_id": approver_id, "comment": comment},
    )
    ref = claim_ref(claim)
    push_todo(
        uow, "close", {"id": task_id, "assignee_id": task.assignee_id, "role": task.role}, ref
    )
    open_tasks(uow, hub.masterdata.get(), ref, claim.applicant_id, state.pending)
    SAVE_WORKFLOW.run(
        conn,
        {
            "b_claim_id": claim.id,
            "b_state": state.state,
            "b_state_format_version": state.state_format_version,
            "b_outcome": state.outcome,
            "b_now": uow.now,
        },
    )
    status = ClaimStatus(claim.status)
    seq = claim.status_seq
    if state.outcome == "approved":
        status = transition(status, ClaimStatus.APPROVED)
        seq += 1
        voucher_id = create_claim_voucher(hub, uow, claim)
        repo.set_claim_status(conn, claim.id, status.value, seq, uow.now, voucher_id=voucher_id)
        uow.audit("claim.status_changed", "claim", claim.id, {"status": status.value})
        write_back_status(uow, ref, status.value, seq)
    elif state.outcome == "rejected":
        status = transition(status, ClaimStatus.REJECTED)
        seq += 1
        repo.set_claim_status(conn, claim.id, status.value, seq, uow.now, reason=comment)
        release_claim_budgets(uow, claim)
        uow.audit(
            "claim.status_changed",
            "claim",
            claim.id,
            {"status": status.value, "reason": comment},
        )
        write_back_status(uow, ref, status.value, seq, reason=comment)
    result = DecisionResult(task_id, claim.id, status.value)
    if source is not None and message_id is not None:
        inbox.record(
            uow,
            source,
            message_id,
            "decision",
            content,
            {"claim_id": claim.id, "claim_status": status.value},
        )
    return result


WITHDRAW_TASK = Prepared(
    update(approval_tasks)
    .where(approval_tasks.c.id == bindparam("b_task_id"))
    .values(status="withdrawn", comment=bindparam("b_reason"), decided_at=bindparam("b_now"))
)
PENDING_TASKS_OF_CLAIM = Prepared(
    select(approval_tasks)
    .where(approval_tasks.c.claim_id == bindparam("claim_id"), approval_tasks.c.status == "pending")
    .order_by(approval_tasks.c.created_at, approval_tasks.c.id)
)
END_WORKFLOW = Prepared(
    update(workflow_instances)
    .where(workflow_instances.c.claim_id == bindparam("b_claim_id"))
    .values(outcome=bindparam("b_outcome"), updated_at=bindparam("b_now"))
)


def withdraw_approval(uow: UnitOfWork, claim: dict[str, Any], reason: str) -> list[str]:
    """Stop a claim's approval: its pending tasks become `withdrawn` (their OA todos are
    closed) and its workflow instance ends with the outcome `withdrawn`, without a decision
    in the engine. Returns the withdrawn task ids. The claim's own status is the caller's."""
    tasks = PENDING_TASKS_OF_CLAIM.all(uow.conn, {"claim_id": claim["id"]})
    for task in tasks:
        WITHDRAW_TASK.run(uow.conn, {"b_task_id": task.id, "b_reason": reason, "b_now": uow.now})
        uow.audit(
            "task.withdrawn",
            "task",
            task.id,
            {"claim_id": claim["id"], "assignee_id": task.assignee_id, "reason": reason},
        )
        push_todo(
            uow, "close", {"id": task.id, "assignee_id": task.assignee_id, "role": task.role}, claim
        )
    END_WORKFLOW.run(
        uow.conn, {"b_claim_id": claim["id"], "b_outcome": "withdrawn", "b_now": uow.now}
    )
    return [task.id for task in tasks]
