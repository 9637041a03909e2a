"""OA-led approvals (OA 审批): the approval of a claim runs in its OA's own approval app.

Which mode applies is configured per OA instance and document type (`approvals:` in
finoa.yaml; see `finoa.connectors.instances`). In OA-led mode finoa runs no BPMN for the
claim and opens no tasks of its own:

- a claim started in finoa queues `approval.create` for its OA instance; the OA's answer
  (its instance id) is kept against the claim by `record_approval_created`;
- a claim an employee started in the OA arrives as a `SubmitClaim` carrying the OA's
  instance id (`oa_approval_id`), kept the same way;
- the OA's final result arrives as a `ConcludeApproval` command (`approval_conclusion`):
  agree approves the claim and generates its voucher, exactly as the last BPMN approval
  does; refuse rejects it with the approvers' reason; revoke and terminate withdraw it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from finoa.connectors.base import ApprovalRequestPayload, ApprovalResult, ConcludeApproval
from finoa.domain.claim import ClaimStatus, transition
from finoa.domain.errors import Conflict, NotFound
from finoa.messaging import inbox
from finoa.messaging.outbox import claim_ref, write_back_status
from finoa.services.budgets import release_claim_budgets
from finoa.services.context import Hub
from finoa.services.vouchers import create_claim_voucher
from finoa.store import repositories as repo
from finoa.store.tables import claim_lines, oa_approvals
from finoa.store.uow import Database, OutboxMessage, UnitOfWork

CREATE_ACTION = "approval.create"
CREATING, RUNNING = "creating", "running"
RESULT_STATUS = {
    ApprovalResult.AGREE: ClaimStatus.APPROVED,
    ApprovalResult.REFUSE: ClaimStatus.REJECTED,
    ApprovalResult.REVOKE: ClaimStatus.WITHDRAWN,
    ApprovalResult.TERMINATE: ClaimStatus.WITHDRAWN,
}
DEFAULT_REASONS = {
    ApprovalResult.REFUSE: "refused in the OA",
    ApprovalResult.REVOKE: "revoked in the OA by the applicant",
    ApprovalResult.TERMINATE: "terminated in the OA",
}


def start_in_oa(uow: UnitOfWork, claim: dict[str, Any], oa_approval_id: str | None) -> None:
    """Record that `claim`'s approval runs in its OA. Without an OA instance id yet (the
    claim started in finoa) ask the OA to create one (`approval.create`, queued)."""
    instance = claim["oa_instance"]
    uow.conn.execute(
        insert(oa_approvals).values(
            claim_id=claim["id"],
            oa_instance=instance,
            oa_approval_id=oa_approval_id,
            status=RUNNING if oa_approval_id else CREATING,
            created_at=uow.now,
            updated_at=uow.now,
        )
    )
    uow.audit(
        "claim.approval_in_oa",
        "claim",
        claim["id"],
        {"oa_instance": instance, "oa_approval_id": oa_approval_id},
    )
    if oa_approval_id is None:
        uow.enqueue(
            OutboxMessage(
                destination=instance,
                action=CREATE_ACTION,
                aggregate_type="claim",
                aggregate_id=claim["id"],
                idempotency_key=f"approval:{claim['id']}:create",
                payload=dict(approval_request(uow, claim["id"])),
            )
        )


def approval_request(uow: UnitOfWork, claim_id: str) -> ApprovalRequestPayload:
    """The canonical `approval.create` payload of a stored claim."""
    row = repo.claim_row(uow.conn, claim_id)
    lines = uow.conn.execute(
        select(claim_lines)
        .where(claim_lines.c.claim_id == claim_id)
        .order_by(claim_lines.c.line_no)
    ).all()
    return {
        "id": row.id,
        "external_id": row.external_id,
        "applicant_id": row.applicant_id,
        "department_id": row.department_id,
        "cost_center_id": row.cost_center_id,
        "project_id": row.project_id,
        "title": row.title,
        "currency": row.currency,
        "total_fen": int(row.total_fen),
        "lines": [
            {
                "category": line.category,
                "amount_fen": int(line.amount_fen),
                "tax_fen": int(line.tax_fen),
                "expense_date": line.expense_date.isoformat(),
                "description": line.description or "",
            }
            for line in lines
        ],
    }


def record_approval_created(uow: UnitOfWork, claim_id: str, response: dict[str, Any]) -> None:
    """The OA created the claim's approval instance: keep its id (a settlement follow-up of
    `approval.create`). An answer without an id is an error: the result could never be
    matched to the claim."""
    approval_id = response.get("oa_approval_id")
    if not isinstance(approval_id, str) or not approval_id:
        raise ValueError("the OA's answer to approval.create carries no oa_approval_id")
    uow.conn.execute(
        update(oa_approvals)
        .where(oa_approvals.c.claim_id == claim_id, oa_approvals.c.oa_approval_id.is_(None))
        .values(oa_approval_id=approval_id, status=RUNNING, updated_at=uow.now)
    )
    uow.audit("claim.approval_created_in_oa", "claim", claim_id, {"oa_approval_id": approval_id})


@dataclass(frozen=True)
class ConclusionResult:
    claim_id: str
    claim_status: str
    duplicate: bool = False


def approval_conclusion(
    hub: Hub, source: str, command: ConcludeApproval
) -> Callable[[UnitOfWork], ConclusionResult]:
    """The command applying an OA's final result to its claim, once per message id."""

    def conclude(uow: UnitOfWork) -> ConclusionResult:
        return _conclude(hub, uow, source, command)

    return conclude


def _content(command: ConcludeApproval) -> dict[str, Any]:
    return {
        "oa_approval_id": command.oa_approval_id,
        "result": command.result.value,
        "actor_id": command.actor_id,
        "comment": command.comment,
    }


def _conclude(
    hub: Hub, uow: UnitOfWork, source: str, command: ConcludeApproval
) -> ConclusionResult:
    content = _content(command)
    earlier = inbox.seen(uow, source, command.message_id, "oa_result", content)
    if earlier is not None:
        return ConclusionResult(earlier["claim_id"], earlier["claim_status"], duplicate=True)
    conn = uow.conn
    link = conn.execute(
        select(oa_approvals).where(
            oa_approvals.c.oa_instance == source,
            oa_approvals.c.oa_approval_id == command.oa_approval_id,
        )
    ).first()
    if link is None and command.claim_id is not None:
        link = conn.execute(
            select(oa_approvals).where(
                oa_approvals.c.claim_id == command.claim_id, oa_approvals.c.oa_instance == source
            )
        ).first()
    if link is None:
        raise NotFound(
            "oa_approval_id",
            f"no claim of {source} is approved by the OA instance {command.oa_approval_id}",
        )
    claim = repo.claim_row(conn, link.claim_id, lock=True)
    target = RESULT_STATUS[command.result]
    current = ClaimStatus(claim.status)
    if link.status not in (CREATING, RUNNING):
        if link.status == command.result.value:  # the same result under another message id
            return _remember(uow, source, command, content, claim.id, current.value, duplicate=True)
        raise Conflict(
            "result",
            f"the OA approval {command.oa_approval_id} already ended with {link.status}",
        )
    if current is not ClaimStatus.IN_APPROVAL:
        raise Conflict("result", f"claim {claim.id} is {current}, not in approval")
    reason = command.comment or DEFAULT_REASONS.get(command.result)
    status = transition(current, target)
    seq = claim.status_seq + 1
    ref = claim_ref(claim)
    if status is ClaimStatus.APPROVED:
        voucher_id = create_claim_voucher(hub, uow, claim)
        repo.set_claim_status(conn, claim.id, status.value, seq, uow.now, voucher_id=voucher_id)
        uow.audit("claim.status_changed", "claim", claim.id, {"status": status.value})
        write_back_status(uow, ref, status.value, seq)
    else:  # refused, revoked or terminated in the OA: what the claim occupies is given back
        repo.set_claim_status(conn, claim.id, status.value, seq, uow.now, reason=reason)
        release_claim_budgets(uow, claim)
        uow.audit(
            "claim.status_changed", "claim", claim.id, {"status": status.value, "reason": reason}
        )
        write_back_status(uow, ref, status.value, seq, reason=reason)
    conn.execute(
        update(oa_approvals)
        .where(oa_approvals.c.claim_id == claim.id)
        .values(
            status=command.result.value,
            oa_approval_id=link.oa_approval_id or command.oa_approval_id,
            result_comment=command.comment,
            updated_at=uow.now,
        )
    )
    uow.audit(
        "claim.approval_concluded_in_oa",
        "claim",
        claim.id,
        {
            "oa_approval_id": command.oa_approval_id,
            "result": command.result.value,
            "actor_id": command.actor_id,
        },
    )
    return _remember(uow, source, command, content, claim.id, status.value)


def _remember(
    uow: UnitOfWork,
    source: str,
    command: ConcludeApproval,
    content: dict[str, Any],
    claim_id: str,
    status: str,
    *,
    duplicate: bool = False,
) -> ConclusionResult:
    """Record the message in the inbox; `duplicate` when its result was known already."""
    result = {"claim_id": claim_id, "claim_status": status}
    inbox.record(uow, source, command.message_id, "oa_result", content, result)
    return ConclusionResult(claim_id, status, duplicate=duplicate)


def known_approval_claim(db: Database, instance: str, approval_id: str) -> str | None:
    """The claim whose approval runs in `instance` as the OA approval `approval_id` (a row
    of `oa_approvals`), or None when finoa has never seen that approval."""
    with db.engine.connect() as conn:
        claim_id = conn.execute(
            select(oa_approvals.c.claim_id).where(
                oa_approvals.c.oa_instance == instance,
                oa_approvals.c.oa_approval_id == approval_id,
            )
        ).scalar_one_or_none()
    return str(claim_id) if claim_id is not None else None
