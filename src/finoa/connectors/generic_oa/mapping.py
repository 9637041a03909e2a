"""Canonical todo and claim-status payloads -> the generic OA's batch items.

The services queue canonical payloads (`finoa.connectors.base`: TodoPayload,
ClaimStatusPayload); `oa_item` keeps the fields the generic OA (and its simulator) takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TODO_FIELDS = (
    "op",
    "task_id",
    "claim_id",
    "external_id",
    "assignee_id",
    "role",
    "title",
    "amount_fen",
    "currency",
)
STATUS_FIELDS = (
    "claim_id",
    "external_id",
    "status",
    "reason",
    "voucher_no",
    "erp_voucher_no",
    "at",
)
NOTICE_FIELDS = (
    "notice_id",
    "recipient_id",
    "title",
    "body",
    "subject_type",
    "subject_id",
    "at",
)
OA_ITEM_FIELDS = {
    "todo.push": TODO_FIELDS,
    "todo.remind": TODO_FIELDS,  # op "remind": 催办, the approver is reminded of the todo
    "status.writeback": STATUS_FIELDS,
    "notice.send": NOTICE_FIELDS,
}


def oa_item(action: str, payload: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
    """One item of `POST /api/todos:batch` or `/api/status:batch`: the payload's fields the
    OA knows, under the message's idempotency key."""
    item = {name: payload[name] for name in OA_ITEM_FIELDS[action] if name in payload}
    return {**item, "idempotency_key": idempotency_key}
