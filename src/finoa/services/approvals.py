"""Approval tasks (审批): open them for the right people, take decisions, route the claim."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, insert, or_, select, update

from finoa.domain.claim import ClaimStatus, transition
from finoa.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from finoa.domain.org import ApprovalRole, Assignment, Employee, assign_step
from finoa.messaging import inbox
from finoa.messaging.outbox import claim_ref, push_todo, write_back_status
from finoa.services.budgets import release_claim_budgets, reoccupy_claim_budgets
from finoa.services.context import Hub
from finoa.services.delegations import delegate_for
from finoa.services.directory import MasterDataSnapshot
from finoa.services.vouchers import create_claim_voucher
from finoa.store import repositories as repo
from finoa.store.prepared import Prepared
from finoa.store.tables import approval_tasks, workflow_instances
from finoa.store.uow import UnitOfWork
from finoa.workflow import (
    RETURNED_TO_APPLICANT,
    Action,
    ActorNotAssigned,
    CannotReturn,
    Decision,
    EngineState,
    PendingStep,
    SignerPosition,
    StepMode,
    StepNotPending,
    UnsupportedAction,
)

INSERT_TASK = Prepared(insert(approval_tasks))
DECIDE_TASK = Prepared(
    update(approval_tasks)
    .where(approval_tasks.c.id == bindparam("b_task_id"))
    .values(
        status=bindparam("b_status"), comment=bindparam("b_comment"), decided_at=bindparam("b_now")
    )
)
# A step's tasks are its claim's: looked up through the claim's index, not by a scan of
# every claim's tasks (there is no index on step_id).
TASKS_OF_STEP = Prepared(
    select(func.count().label("n")).where(
        approval_tasks.c.claim_id == bindparam("claim_id"),
        or_(
            approval_tasks.c.step_id == bindparam("step_id"),
            approval_tasks.c.id == bindparam("step_id"),
        ),
    )
)
TASKS_OF_CLAIM = Prepared(
    select(approval_tasks)
    .where(approval_tasks.c.claim_id == bindparam("claim_id"))
    .order_by(approval_tasks.c.created_at, approval_tasks.c.id)
)
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")  # the default `company_timezone`
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


TASK_STATUS_OF_ACTION: dict[str, str] = {
    "approve": "approved",
    "reject": "rejected",
    "transfer": "transferred",
    "add_signer:before": "signer_added",
    "add_signer:after": "approved",
    "return": "returned",
}
"""What an approver's own task becomes after each action (加签 after counts as approving)."""


def assign_people(
    hub: Hub,
    uow: UnitOfWork,
    claim: dict[str, Any],
    applicant_id: str,
    state: EngineState,
    round_no: int = 1,
) -> tuple[EngineState, dict[str, str]]:
    """Name, in the engine, the people each ready countersign (会签, mode `all`) and or-sign
    (或签, mode `any`) step waits for, before its tasks open.

    The step's people are resolved as for any step (a `users` step's named people, or the
    holder of its role), without the applicant; unless `allow_repeat_approver` is set, one
    who approved another step of this round is replaced by the next person up their chain
    (see `repeat_alternative`). Steps assigned already keep their people. Returns the new state
    (the caller saves it) and, by step id, why a step went to the fallback approver."""
    reasons: dict[str, str] = {}
    unassigned = [s for s in state.pending if s.mode is not StepMode.SINGLE and not s.assignees]
    if not unassigned:
        return state, reasons
    people = hub.masterdata.get()
    applicant = people.employees.get(applicant_id)
    if applicant is None:
        raise InvalidInput("applicant_id", f"unknown employee {applicant_id}")
    allow_repeat = hub.settings.allow_repeat_approver
    for step in unassigned:
        assignment = _resolve(people, claim, applicant, step)
        approved = set() if allow_repeat else _approvers(uow, claim["id"], round_no, step.step_id)
        chosen: list[str] = []
        for person in assignment.assignees:
            choice = repeat_alternative(people, person, approved, applicant_id) or person
            if choice not in chosen:
                chosen.append(choice)
        state = hub.engine.assign(state.state, step.step_id, chosen)
        if assignment.fallback_reason is not None:
            reasons[step.step_id] = assignment.fallback_reason
        uow.audit(
            "task.assignees_resolved",
            "task",
            step.step_id,
            {"claim_id": claim["id"], "mode": step.mode.value, "assignees": chosen},
        )
    return state, reasons


def _resolve(
    people: MasterDataSnapshot, claim: dict[str, Any], applicant: Employee, step: PendingStep
) -> Assignment:
    return assign_step(
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


def open_tasks(
    uow: UnitOfWork,
    people: MasterDataSnapshot,
    claim: dict[str, Any],
    applicant_id: str,
    steps: Sequence[PendingStep],
    *,
    round_no: int = 1,
    zone: ZoneInfo = DEFAULT_ZONE,
    allow_repeat: bool = False,
    fallback_reasons: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Open a task for everyone the ready steps wait for, and push each to the OA todo list.

    A step the engine has assigned goes to the people it waits for (`PendingStep.awaiting`;
    countersign and or-sign steps are assigned first, see `assign_people`, and
    `fallback_reasons` says which of them went to the fallback approver); any other is routed
    by role, and -- unless `allow_repeat` -- past whoever approved another step of this round
    already, up the management chain (see `repeat_alternative`). A person with a delegation in
    force on the company's date (`zone`) is replaced by their delegate, and the task records
    them as `on_behalf_of`."""
    opened: list[dict[str, Any]] = []
    if not steps:
        return opened
    applicant = people.employees.get(applicant_id)
    if applicant is None:
        raise InvalidInput("applicant_id", f"unknown employee {applicant_id}")
    for step in steps:
        assignees = step.awaiting
        fallback_reason = (fallback_reasons or {}).get(step.step_id)
        if not assignees:
            assignment = _resolve(people, claim, applicant, step)
            fallback_reason = assignment.fallback_reason
            natural = assignment.assignees[0]
            approved = (
                set() if allow_repeat else _approvers(uow, claim["id"], round_no, step.step_id)
            )
            other = repeat_alternative(people, natural, approved, applicant_id)
            assignees = (other or natural,)
            if len(assignment.assignees) > 1:
                uow.audit(
                    "task.assignees_resolved",
                    "task",
                    step.step_id,
                    {"claim_id": claim["id"], "assignees": list(assignment.assignees)},
                )
        for assignee in assignees:
            opened.append(_open_task(uow, claim, step, assignee, round_no, zone, fallback_reason))
    return opened


def _open_task(
    uow: UnitOfWork,
    claim: dict[str, Any],
    step: PendingStep,
    assignee: str,
    round_no: int,
    zone: ZoneInfo,
    fallback_reason: str | None = None,
) -> dict[str, Any]:
    today = uow.now.astimezone(zone).date()
    delegate = delegate_for(uow.conn, assignee, today, claim.get("document_type"))
    earlier = TASKS_OF_STEP.first(uow.conn, {"claim_id": claim["id"], "step_id": step.step_id})
    task_id = step.step_id if not earlier.n else f"{step.step_id}.{earlier.n + 1}"
    task = {
        "id": task_id,
        "claim_id": claim["id"],
        "role": step.role,
        "label": step.label,
        "assignee_id": delegate or assignee,
        "status": "pending",
        "created_at": uow.now,
        "step_id": step.step_id,
        "round": round_no,
        "on_behalf_of": assignee if delegate else None,
        "fallback_reason": fallback_reason,
    }
    INSERT_TASK.run(uow.conn, task)
    details = {"claim_id": claim["id"], "role": step.role, "assignee_id": task["assignee_id"]}
    if delegate:
        details["on_behalf_of"] = assignee
    uow.audit("task.opened", "task", task_id, details)
    if fallback_reason is not None:
        uow.audit(
            "task.fallback_assigned",
            "task",
            task_id,
            {"claim_id": claim["id"], "role": step.role, "assignee_id": assignee,
             "reason": fallback_reason},
        )  # fmt: skip
    push_todo(uow, "create", task, claim)
    return task


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
    action: str | None = None,
    target: str | None = None,
    position: str | None = None,
) -> DecisionResult:
    """Decide a task in a transaction of its own (see `task_decision`)."""
    command = task_decision(
        hub,
        task_id,
        approver_id,
        approve,
        comment,
        source,
        message_id,
        action=action,
        target=target,
        position=position,
    )
    return hub.db.perform(command, actor=actor)


def task_decision(
    hub: Hub,
    task_id: str,
    approver_id: str,
    approve: bool,
    comment: str | None,
    source: str | None = None,
    message_id: str | None = None,
    *,
    action: str | None = None,
    target: str | None = None,
    position: str | None = None,
) -> Callable[[UnitOfWork], DecisionResult]:
    """The command that records a decision on a pending task and moves the claim on.

    `action` is one of `approve` / `reject` (the default, from `approve`), `transfer` and
    `add_signer` (to `target`, 加签 at `position` before/after), `return` (to the applicant,
    or to the earlier step `target` names) and `withdraw` (the applicant's, as `approver_id`).
    """
    chosen = Action(action) if action else (Action.APPROVE if approve else Action.REJECT)
    return functools.partial(
        _decide,
        hub,
        task_id,
        approver_id,
        chosen,
        comment,
        target,
        SignerPosition(position) if position else None,
        source,
        message_id,
    )


def _decide(
    hub: Hub,
    task_id: str,
    approver_id: str,
    action: Action,
    comment: str | None,
    target: str | None,
    position: SignerPosition | None,
    source: str | None,
    message_id: str | None,
    uow: UnitOfWork,
) -> DecisionResult:
    conn = uow.conn
    content: dict[str, Any] = {
        "task_id": task_id,
        "approver_id": approver_id,
        "approve": action is Action.APPROVE,
        "comment": comment,
    }
    if action not in (Action.APPROVE, Action.REJECT):
        # Only the new actions carry more: digests of approvals and rejections stay as they were.
        content.update(action=action.value, target=target, position=position)
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
    if action is Action.WITHDRAW:
        status = _withdraw_by_applicant(uow, claim, approver_id, comment)
        result = DecisionResult(task_id, claim.id, status.value)
        _remember(uow, source, message_id, content, result)
        return result
    if task.assignee_id != approver_id:
        raise Forbidden("approver_id", f"{approver_id} is not the assignee of task {task_id}")
    _check_segregation(hub, uow, claim, task, approver_id, action, target)
    instance = WORKFLOW_OF_CLAIM.first(conn, {"claim_id": claim.id})
    if instance is None:
        raise Conflict("task_id", f"claim {claim.id} has no approval process")
    step_id = task.step_id or task.id
    try:
        # The engine knows the person the step was routed to: the delegator, for a delegate.
        decision = Decision(action, _person(task), comment, target, position)
        state = hub.engine.decide(instance.state, step_id, decision)
    except StepNotPending:
        raise Conflict("task_id", f"task {task_id} is not waiting for a decision") from None
    except UnsupportedAction as exc:
        raise InvalidInput("decision", str(exc)) from None
    except CannotReturn as exc:
        raise InvalidInput("to_step", str(exc)) from None
    except ActorNotAssigned as exc:
        field = "target_id" if target is not None and target in str(exc) else "approver_id"
        raise Forbidden(field, str(exc)) from None
    except ValueError as exc:
        raise InvalidInput("target_id", str(exc)) from None
    still_waited = action is Action.ADD_SIGNER and any(
        step.step_id == step_id and _person(task) in step.awaiting for step in state.pending
    )
    if not still_waited:  # a countersigner who adds someone keeps their own task
        task_status = TASK_STATUS_OF_ACTION[decision.kind]
        DECIDE_TASK.run(
            conn,
            {"b_task_id": task_id, "b_status": task_status, "b_comment": comment, "b_now": uow.now},
        )
    details: dict[str, Any] = {
        "claim_id": claim.id,
        "approver_id": approver_id,
        "comment": comment,
    }
    if target is not None:
        details["target"] = target
    if decision.position is not None:
        details["position"] = decision.position.value
    if task.on_behalf_of:
        details["on_behalf_of"] = task.on_behalf_of
    event = {"approve": "approved", "reject": "rejected"}.get(action.value, action.value)
    uow.audit(f"task.{event}", "task", task_id, details)
    ref = claim_ref(claim)
    if not still_waited:
        push_todo(
            uow, "close", {"id": task_id, "assignee_id": task.assignee_id, "role": task.role}, ref
        )
    round_no = task.round or 1
    status = ClaimStatus(claim.status)
    seq = claim.status_seq
    if state.returned_to == RETURNED_TO_APPLICANT:
        _close_open_tasks(uow, ref, f"returned to the applicant by {approver_id}")
        status = transition(status, ClaimStatus.RETURNED)
        seq += 1
        repo.set_claim_status(conn, claim.id, status.value, seq, uow.now, reason=comment)
        release_claim_budgets(uow, claim)  # occupied again when it is resubmitted
        uow.audit(
            "claim.status_changed", "claim", claim.id, {"status": status.value, "reason": comment}
        )
        write_back_status(uow, ref, status.value, seq, reason=comment)
    else:
        state, reasons = assign_people(hub, uow, ref, claim.applicant_id, state, round_no)
        _sync_tasks(
            hub, uow, ref, claim.applicant_id, state.pending, round_no, approver_id, reasons
        )
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
    _remember(uow, source, message_id, content, result)
    return result


def escalate_task(hub: Hub, uow: UnitOfWork, task: Any, to: str, reason: str) -> None:
    """Hand a task nobody decided in time on to `to` (a transfer by the system): the task
    becomes `escalated`, `to` gets a task and a todo, the old todo closes."""
    _decide(hub, task.id, task.assignee_id, Action.TRANSFER, reason, to, None, None, None, uow)
    uow.conn.execute(
        update(approval_tasks).where(approval_tasks.c.id == task.id).values(status="escalated")
    )
    uow.audit(
        "task.escalated",
        "task",
        task.id,
        {"claim_id": task.claim_id, "from": task.assignee_id, "to": to, "reason": reason},
    )


def _remember(
    uow: UnitOfWork,
    source: str | None,
    message_id: str | None,
    content: dict[str, Any],
    result: DecisionResult,
) -> None:
    if source is not None and message_id is not None:
        inbox.record(
            uow,
            source,
            message_id,
            "decision",
            content,
            {"claim_id": result.claim_id, "claim_status": result.claim_status},
        )


def _approvers(
    uow: UnitOfWork, claim_id: str, round_no: int, other_than: str | None = None
) -> set[str]:
    """Who approved a step of the claim (other than step `other_than`) in this round."""
    return {
        _person(row)
        for row in TASKS_OF_CLAIM.all(uow.conn, {"claim_id": claim_id})
        if row.status == "approved"
        and (row.round or 1) == round_no
        and (row.step_id or row.id) != other_than
    }


def repeat_alternative(
    people: MasterDataSnapshot, candidate: str, approved: set[str], applicant_id: str
) -> str | None:
    """Someone to take a step instead of `candidate`, who approved another step already: the
    first active person up `candidate`'s management chain who has not approved and is not the
    applicant. None when `candidate` has not approved, or nobody is left -- then the repeat is
    unavoidable and allowed."""
    if candidate not in approved:
        return None
    seen = {candidate}
    person = people.employees.get(candidate)
    while person is not None and person.manager_id and person.manager_id not in seen:
        seen.add(person.manager_id)
        person = people.employees.get(person.manager_id)
        if (
            person is not None
            and person.active
            and person.employee_id not in approved
            and person.employee_id != applicant_id
        ):
            return person.employee_id
    return None


def _check_segregation(
    hub: Hub,
    uow: UnitOfWork,
    claim: Any,
    task: Any,
    approver_id: str,
    action: Action,
    target: str | None,
) -> None:
    """Segregation of duties: nobody decides their own claim, nor is handed it; and nobody
    approves two steps of one round unless `allow_repeat_approver` is set."""
    if approver_id == claim.applicant_id:
        raise Forbidden("approver_id", f"{approver_id} may not approve their own claim {claim.id}")
    if target is not None and action in (Action.TRANSFER, Action.ADD_SIGNER):
        people = hub.masterdata.get().employees
        person = people.get(target)
        if person is None or not person.active:
            raise InvalidInput("target_id", f"{target} is not an active employee")
        if target == claim.applicant_id:
            raise Forbidden("target_id", f"{target} may not approve their own claim {claim.id}")
    if action is not Action.APPROVE or hub.settings.allow_repeat_approver:
        return
    round_no = task.round or 1
    step_id = task.step_id or task.id
    for other in TASKS_OF_CLAIM.all(uow.conn, {"claim_id": claim.id}):
        if (
            other.status == "approved"
            and _person(other) == _person(task)
            and (other.round or 1) == round_no
            and (other.step_id or other.id) != step_id
        ):
            approved = _approvers(uow, claim.id, round_no, step_id)
            instead = repeat_alternative(
                hub.masterdata.get(), _person(task), approved, claim.applicant_id
            )
            if instead is None:
                return  # nobody else is left up the chain: the repeat is unavoidable
            raise Forbidden(
                "approver_id",
                f"{approver_id} approved task {other.id} of claim {claim.id} already;"
                f" one person approves once per chain (allow_repeat_approver is off):"
                f" transfer the task to {instead}",
            )


def _sync_tasks(
    hub: Hub,
    uow: UnitOfWork,
    claim: dict[str, Any],
    applicant_id: str,
    steps: Sequence[PendingStep],
    round_no: int,
    decided_by: str,
    fallback_reasons: Mapping[str, str],
) -> None:
    """Make the open tasks match what the engine waits for: close the tasks of steps (or
    people) it no longer waits for -- the other or-sign assignees, a step a return went back
    past -- and open tasks for whoever it waits for and has none."""
    waiting = {step.step_id: step for step in steps}
    open_rows = PENDING_TASKS_OF_CLAIM.all(uow.conn, {"claim_id": claim["id"]})
    kept: dict[str, set[str]] = {}
    for row in open_rows:
        step = waiting.get(row.step_id or row.id)
        wanted = step is not None and (not step.awaiting or _person(row) in step.awaiting)
        if wanted:
            kept.setdefault(row.step_id or row.id, set()).add(_person(row))
            continue
        _withdraw_task(uow, claim, row, f"no longer waited for after {decided_by}'s decision")
    zone = hub.settings.company_zone
    people = hub.masterdata.get()
    for step in steps:
        have = kept.get(step.step_id, set())
        if step.awaiting:
            missing = [p for p in step.awaiting if p not in have]
            for person in missing:
                reason = fallback_reasons.get(step.step_id)
                _open_task(uow, claim, step, person, round_no, zone, reason)
        elif not have:
            open_tasks(
                uow,
                people,
                claim,
                applicant_id,
                [step],
                round_no=round_no,
                zone=zone,
                allow_repeat=hub.settings.allow_repeat_approver,
            )


def _person(row: Any) -> str:
    """Who a task stands for in the engine: the delegator when a delegate holds it."""
    return str(row.on_behalf_of or row.assignee_id)


def _withdraw_task(uow: UnitOfWork, claim: dict[str, Any], row: Any, reason: str) -> None:
    WITHDRAW_TASK.run(uow.conn, {"b_task_id": row.id, "b_reason": reason, "b_now": uow.now})
    uow.audit(
        "task.withdrawn",
        "task",
        row.id,
        {"claim_id": claim["id"], "assignee_id": row.assignee_id, "reason": reason},
    )
    push_todo(uow, "close", {"id": row.id, "assignee_id": row.assignee_id, "role": row.role}, claim)


def _close_open_tasks(uow: UnitOfWork, claim: dict[str, Any], reason: str) -> None:
    for row in PENDING_TASKS_OF_CLAIM.all(uow.conn, {"claim_id": claim["id"]}):
        _withdraw_task(uow, claim, row, reason)


def _withdraw_by_applicant(
    uow: UnitOfWork, claim: Any, applicant_id: str, comment: str | None
) -> ClaimStatus:
    """撤回: the applicant takes the claim back, only while nobody has decided on it in this
    round (after a return and resubmission, until someone decides again)."""
    if applicant_id != claim.applicant_id:
        raise Forbidden(
            "approver_id", f"only the applicant {claim.applicant_id} may withdraw claim {claim.id}"
        )
    rows = TASKS_OF_CLAIM.all(uow.conn, {"claim_id": claim.id})
    current = max((row.round or 1) for row in rows) if rows else 1
    decided = [
        row
        for row in rows
        if row.status not in ("pending", "withdrawn") and (row.round or 1) == current
    ]
    if decided:
        first = decided[0]
        raise Conflict(
            "decision",
            f"claim {claim.id} can no longer be withdrawn: {first.assignee_id} decided task"
            f" {first.id} ({first.status}) already",
        )
    reason = comment or f"withdrawn by the applicant {applicant_id}"
    ref = claim_ref(claim)
    withdraw_approval(uow, ref, reason)
    status = transition(ClaimStatus(claim.status), ClaimStatus.WITHDRAWN)
    seq = claim.status_seq + 1
    repo.set_claim_status(uow.conn, claim.id, status.value, seq, uow.now, reason=reason)
    release_claim_budgets(uow, claim)
    uow.audit("claim.status_changed", "claim", claim.id, {"status": status.value, "reason": reason})
    write_back_status(uow, ref, status.value, seq, reason=reason)
    return status


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


def resubmission(
    hub: Hub, claim_id: str, applicant_id: str, comment: str | None
) -> Callable[[UnitOfWork], DecisionResult]:
    """The command that resubmits a claim returned to its applicant (退回 → 重新提交).

    The approval goes on where the return sent it (the process's first step), as the next
    round: the tasks and decisions of earlier rounds stay as they are, and the approvers of
    this round are checked for repeats among themselves only."""
    return functools.partial(_resubmit, hub, claim_id, applicant_id, comment)


def _resubmit(
    hub: Hub, claim_id: str, applicant_id: str, comment: str | None, uow: UnitOfWork
) -> DecisionResult:
    conn = uow.conn
    claim = repo.claim_row(conn, claim_id, lock=True)
    if claim is None:
        raise NotFound("claim_id", f"unknown claim {claim_id}")
    if applicant_id != claim.applicant_id:
        raise Forbidden(
            "applicant_id", f"only the applicant {claim.applicant_id} may resubmit {claim_id}"
        )
    if claim.status != ClaimStatus.RETURNED:
        raise Conflict(
            "claim_id", f"claim {claim_id} is {claim.status}; only a returned claim is resubmitted"
        )
    instance = WORKFLOW_OF_CLAIM.first(conn, {"claim_id": claim_id})
    if instance is None:
        raise Conflict("claim_id", f"claim {claim_id} has no approval process")
    state = hub.engine.upgrade(instance.state)
    rows = TASKS_OF_CLAIM.all(conn, {"claim_id": claim_id})
    round_no = max((row.round or 1) for row in rows) + 1 if rows else 1
    ref = claim_ref(claim)
    state, reasons = assign_people(hub, uow, ref, claim.applicant_id, state, round_no)
    SAVE_WORKFLOW.run(
        conn,
        {
            "b_claim_id": claim_id,
            "b_state": state.state,
            "b_state_format_version": state.state_format_version,
            "b_outcome": state.outcome,
            "b_now": uow.now,
        },
    )
    open_tasks(
        uow,
        hub.masterdata.get(),
        ref,
        claim.applicant_id,
        state.pending,
        round_no=round_no,
        zone=hub.settings.company_zone,
        allow_repeat=hub.settings.allow_repeat_approver,
        fallback_reasons=reasons,
    )
    # A return gave the budgets back: the resubmitted claim takes them again, or is refused
    # (409 naming the budget) and stays returned.
    reoccupy_claim_budgets(hub, uow, claim)
    status = transition(ClaimStatus(claim.status), ClaimStatus.IN_APPROVAL)
    seq = claim.status_seq + 1
    repo.set_claim_status(conn, claim_id, status.value, seq, uow.now, reason=None)
    uow.audit("claim.resubmitted", "claim", claim_id, {"round": round_no, "comment": comment})
    uow.audit("claim.status_changed", "claim", claim_id, {"status": status.value})
    write_back_status(uow, ref, status.value, seq)
    return DecisionResult("", claim_id, status.value)
