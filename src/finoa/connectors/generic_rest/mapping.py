"""Canonical outbound payloads -> the generic REST peers' wire format.

The services queue canonical payloads (`finoa.connectors.base`: TodoPayload,
ClaimStatusPayload, VoucherPayload); these functions build the bodies the generic OA and ERP
(and their simulators) take. Messages queued before the canonical payloads existed already
hold the wire format and pass through unchanged.
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
OA_ITEM_FIELDS = {"todo.push": TODO_FIELDS, "status.writeback": STATUS_FIELDS}


def oa_item(action: str, payload: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
    """One item of `POST /api/todos:batch` or `/api/status:batch`: the payload's fields the
    OA knows, under the message's idempotency key."""
    item = {name: payload[name] for name in OA_ITEM_FIELDS[action] if name in payload}
    return {**item, "idempotency_key": idempotency_key}


def erp_voucher(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The body of `POST /api/vouchers` for a canonical voucher."""
    if "voucher_id" not in payload:  # queued in the wire format, before canonical payloads
        return dict(payload)
    return {
        "source_ref": f"finoa:{payload['claim_id']}",
        "voucher_word": payload["word"],
        "hub_voucher_no": payload["hub_voucher_no"],
        "period": payload["period"],
        "date": payload["date"],
        "summary": payload["summary"],
        "currency": payload["currency"],
        "entries": [
            {
                "line": entry["line"],
                "account_code": entry["account_code"],
                "summary": entry["summary"],
                "debit_fen": entry["debit_fen"],
                "credit_fen": entry["credit_fen"],
                "aux": {
                    "department": entry["aux"]["department"],
                    "employee": entry["aux"]["employee"],
                    "project": entry["aux"]["project"],
                },
            }
            for entry in payload["entries"]
        ],
    }
