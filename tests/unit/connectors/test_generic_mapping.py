"""The generic connectors' mapping: canonical payloads to the wire format the peers take."""

from __future__ import annotations

from finoa.connectors.base import VoucherPayload
from finoa.connectors.generic_erp.mapping import erp_voucher
from finoa.connectors.generic_oa.mapping import oa_item

CANONICAL: VoucherPayload = {
    "voucher_id": "V0001",
    "claim_id": "CL0001",
    "hub_voucher_no": "记-0007",
    "word": "记",
    "period": "2026-11",
    "date": "2026-11-22",
    "summary": "报销 travel",
    "currency": "CNY",
    "reversal_of": None,
    "entries": [
        {
            "line": 1,
            "account_code": "6602.01",
            "summary": "差旅",
            "debit_fen": 100_000,
            "credit_fen": 0,
            "aux": {"department": "D01", "employee": "E0003", "project": None},
        },
        {
            "line": 2,
            "account_code": "2241",
            "summary": "应付",
            "debit_fen": 0,
            "credit_fen": 100_000,
            "aux": {"department": "D01", "employee": "E0003", "project": "P001"},
        },
    ],
}
WIRE = {
    "source_ref": "finoa:CL0001",
    "voucher_word": "记",
    "hub_voucher_no": "记-0007",
    "period": "2026-11",
    "date": "2026-11-22",
    "summary": "报销 travel",
    "currency": "CNY",
    "entries": [dict(entry) for entry in CANONICAL["entries"]],  # the same fields
}


def test_a_canonical_voucher_becomes_the_erp_body_field_for_field_in_order() -> None:
    body = erp_voucher(CANONICAL)
    assert body == WIRE
    assert list(body) == list(WIRE)  # the same keys in the same order as before


def test_a_voucher_queued_in_the_wire_format_passes_unchanged() -> None:
    assert erp_voucher(WIRE) == WIRE


def test_oa_items_carry_the_known_fields_and_the_key() -> None:
    status = {"claim_id": "CL1", "external_id": "OA-1", "status": "posted", "at": "T", "x": 1}
    assert oa_item("status.writeback", status, "status:CL1:4") == {
        "claim_id": "CL1",
        "external_id": "OA-1",
        "status": "posted",
        "at": "T",
        "idempotency_key": "status:CL1:4",
    }
