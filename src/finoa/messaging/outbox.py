"""What finoa tells other systems, queued in the outbox inside the use case's transaction.

Each helper builds one kind of message with a stable idempotency key, so a message produced
again for the same fact is refused by the unique key instead of being sent twice. Payloads are
canonical (`finoa.connectors.base`); the destination is a connector instance's name: a claim's
messages go to its OA instance, a voucher to its ERP instance. Rows of claims and vouchers
recorded before instances existed name `oa` / `erp`, which stand for the default instances.
"""

from __future__ import annotations

from typing import Any

from finoa.connectors.base import (
    ArchivePushPayload,
    ClaimStatusPayload,
    TodoPayload,
    VoucherPayload,
)
from finoa.domain.money import format_fen
from finoa.store.uow import OutboxMessage, UnitOfWork

OA = "oa"  # the default OA instance
ERP = "erp"  # the default ERP instance
ARCHIVE_PUSH = "archive.push"


TODO_LABELS = {
    "": "报销审批 Expense claim",
    "expense_claim": "报销审批 Expense claim",
    "advance": "借款审批 Advance",
    "payment_request": "付款审批 Payment request",
    "requisition": "事前申请 Requisition",
}
"""How an approver's todo names the document, by its type."""


def claim_ref(row: Any) -> dict[str, Any]:
    """The few claim facts outbound messages carry."""
    label = TODO_LABELS.get(getattr(row, "document_type", None) or "", TODO_LABELS[""])
    return {
        "id": row.id,
        "external_id": row.external_id,
        "total_fen": row.total_fen,
        "currency": row.currency,
        "oa_instance": getattr(row, "oa_instance", None) or OA,
        # where its approval steps are routed (department head, cost-center owner)
        "department_id": getattr(row, "department_id", None),
        "cost_center_id": getattr(row, "cost_center_id", None),
        "todo_title": (f"{label} {row.id}: {row.title} {format_fen(row.total_fen)} {row.currency}")[
            :200
        ],
    }


def push_todo(uow: UnitOfWork, op: str, task: dict[str, Any], claim: dict[str, Any]) -> None:
    """Create or close an approval todo in the approver's todo list at the claim's OA."""
    payload: TodoPayload = {
        "op": op,
        "task_id": task["id"],
        "claim_id": claim["id"],
        "external_id": claim["external_id"],
        "assignee_id": task["assignee_id"],
        "role": task["role"],
        "title": claim["todo_title"],
        "amount_fen": claim["total_fen"],
        "currency": claim["currency"],
    }
    uow.enqueue(
        OutboxMessage(
            destination=claim["oa_instance"],
            action="todo.push",
            aggregate_type="claim",
            aggregate_id=claim["id"],
            idempotency_key=f"todo:{task['id']}:{op}",
            payload=dict(payload),
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
    """Tell the claim's OA its new status (and its voucher numbers once posted)."""
    payload: ClaimStatusPayload = {
        "claim_id": claim["id"],
        "external_id": claim["external_id"],
        "status": status,
        "reason": reason,
        "voucher_no": voucher_no,
        "erp_voucher_no": erp_voucher_no,
        "at": uow.now.isoformat().replace("+00:00", "Z"),
    }
    uow.enqueue(
        OutboxMessage(
            destination=claim["oa_instance"],
            action="status.writeback",
            aggregate_type="claim",
            aggregate_id=claim["id"],
            idempotency_key=f"status:{claim['id']}:{seq}",
            payload=dict(payload),
        )
    )


def post_voucher(
    uow: UnitOfWork, erp_instance: str, idempotency_key: str, voucher: VoucherPayload
) -> dict[str, Any]:
    """Post a voucher to its ERP instance, exactly once, under its own idempotency key.
    Returns the queued payload (written at commit)."""
    voucher_id = voucher["voucher_id"]
    payload = dict(voucher)
    uow.enqueue(
        OutboxMessage(
            destination=erp_instance,
            action="voucher.post",
            aggregate_type="voucher",
            aggregate_id=voucher_id,
            idempotency_key=idempotency_key,
            payload=payload,
        )
    )
    return payload


def push_key(package_id: str) -> str:
    """The idempotency key of a package's `archive.push`: one push per package, ever."""
    return f"archive:{package_id}:push"


def push_package(uow: UnitOfWork, archive_instance: str, package: ArchivePushPayload) -> None:
    """Push an archive package to the external archive instance, exactly once."""
    uow.enqueue(
        OutboxMessage(
            destination=archive_instance,
            action=ARCHIVE_PUSH,
            aggregate_type="archive_package",
            aggregate_id=package["package_id"],
            idempotency_key=push_key(package["package_id"]),
            payload=dict(package),
        )
    )
