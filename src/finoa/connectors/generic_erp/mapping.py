"""Canonical voucher payloads -> the generic ERP's voucher body.

The services queue canonical vouchers (`finoa.connectors.base.VoucherPayload`); `erp_voucher`
builds the body the generic ERP (and its simulator) takes. Messages queued before canonical
payloads existed already hold the wire format and pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
