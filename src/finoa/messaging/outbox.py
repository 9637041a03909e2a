"""What finoa tells other systems, queued in the outbox inside the use case's transaction.

Each helper builds one kind of message with a stable idempotency key, so a message produced
again for the same fact is refused by the unique key instead of being sent twice.
"""

from __future__ import annotations

from typing import Any

from finoa.domain.money import format_fen
from finoa.store.uow import OutboxMessage, UnitOfWork

OA = "oa"
ERP = "erp"


def claim_ref(row: Any) -> dict[str, Any]:
    """The few claim facts outbound messages carry."""
    return {
        "id": row.id,
        "external_id": row.external_id,
        "total_fen": row.total_fen,
        "currency": row.currency,
        "todo_title": (
            f"报销审批 Expense claim {row.id}: {row.title} "
            f"{format_fen(row.total_fen)} {row.currency}"
        )[:200],
    }


def push_todo(uow: UnitOfWork, op: str, task: dict[str, Any], claim: dict[str, Any]) -> None:
    """Create or close an approval todo in the approver's OA todo list."""
    uow.enqueue(
        OutboxMessage(
            destination=OA,
            action="todo.push",
            aggregate_type="claim",
            aggregate_id=claim["id"],
            idempotency_key=f"todo:{task['id']}:{op}",
            payload={
                "op": op,
                "task_id": task["id"],
                "claim_id": claim["id"],
                "external_id": claim["external_id"],
                "assignee_id": task["assignee_id"],
                "role": task["role"],
                "title": claim["todo_title"],
                "amount_fen": claim["total_fen"],
                "currency": claim["currency"],
            },
        )
    )


def write_back_status(
    uow: UnitOfWork,
    claim: dict[str, Any],
    status: str,
    seq: int,
    *,
    reason: str | None = None,
    voucher_no: str | None = None,
    erp_voucher_no: str | None = None,
) -> None:
    """Tell the OA the claim's new status (and its voucher numbers once posted)."""
    uow.enqueue(
        OutboxMessage(
            destination=OA,
            action="status.writeback",
            aggregate_type="claim",
            aggregate_id=claim["id"],
            idempotency_key=f"status:{claim['id']}:{seq}",
            payload={
                "claim_id": claim["id"],
                "external_id": claim["external_id"],
                "status": status,
                "reason": reason,
                "voucher_no": voucher_no,
                "erp_voucher_no": erp_voucher_no,
                "at": uow.now.isoformat().replace("+00:00", "Z"),
            },
        )
    )


def post_voucher(
    uow: UnitOfWork, voucher_id: str, idempotency_key: str, body: dict[str, Any]
) -> None:
    """Post a voucher to the ERP, exactly once, under the voucher's own idempotency key."""
    uow.enqueue(
        OutboxMessage(
            destination=ERP,
            action="voucher.post",
            aggregate_type="voucher",
            aggregate_id=voucher_id,
            idempotency_key=idempotency_key,
            payload=body,
        )
    )
