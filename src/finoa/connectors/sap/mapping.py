"""Canonical vouchers -> the BAPIs' parameters, and the BAPIs' `RETURN` -> error classes.

A voucher becomes one FI document: `DOCUMENTHEADER` (BAPIACHE09), one `ACCOUNTGL` or
`ACCOUNTPAYABLE` row per entry (a line on 2241, other payables, is the employee as vendor),
and one `CURRENCYAMOUNT` row per entry with the signed amount (debit positive, credit
negative; the rows net to zero). Amounts travel as decimal strings, never as floats.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from finoa.connectors.base import VoucherPayload
from finoa.messaging.retry import DeliveryError, ErrorClass

OBJ_TYPE = "BKPFF"  # an FI document posted through the accounting interface
BUS_ACT = "RFBU"  # FI posting
PAYABLE_ACCOUNT = "2241"  # other payables: owed to the employee, posted to the vendor
REFERENCE_LENGTH = 16  # REF_DOC_NO / BKPF-XBLNR is CHAR 16


@dataclass(frozen=True)
class SapCodes:
    """How finoa's codes become SAP's, and the header fields fixed per instance."""

    company_code: str
    username: str
    logical_system: str = "FINOA"
    document_type: str = "SA"
    gl_accounts: Mapping[str, str] = field(default_factory=dict)
    vendors: Mapping[str, str] = field(default_factory=dict)
    cost_centers: Mapping[str, str] = field(default_factory=dict)

    def gl_account(self, code: str) -> str:
        return self.gl_accounts.get(code, code.replace(".", ""))

    def vendor(self, employee: str) -> str:
        return self.vendors.get(employee, employee)

    def cost_center(self, department: str) -> str:
        return self.cost_centers.get(department, department)


def reference(idempotency_key: str) -> str:
    """The REF_DOC_NO a voucher is posted and found again under: 16 characters derived from
    its idempotency key (SAP keeps no idempotency key of its own)."""
    digest = hashlib.sha256(idempotency_key.encode()).digest()
    return base64.b32encode(digest).decode()[:REFERENCE_LENGTH]


def voucher_reference(voucher_id: str) -> str:
    """The REF_DOC_NO of the voucher with this id (see `finoa.services.vouchers`)."""
    return reference(f"finoa-voucher-{voucher_id}")


def amount(fen: int) -> str:
    """Fen as a signed decimal string with two places: 35000 -> '350.00', -5 -> '-0.05'."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def fiscal_period(period: str) -> tuple[str, str]:
    """'2026-05' -> ('2026', '005'): FISC_YEAR and FIS_PERIOD of a calendar fiscal year."""
    year, month = period.split("-")
    return year, f"{int(month):03d}"


def _text(value: str, length: int) -> str:
    return value[:length].rstrip()


def document(payload: VoucherPayload, codes: SapCodes, idempotency_key: str) -> dict[str, Any]:
    """The import parameters and tables of BAPI_ACC_DOCUMENT_CHECK / _POST for a voucher."""
    year, period = fiscal_period(payload["period"])
    header = {
        "OBJ_TYPE": OBJ_TYPE,
        "OBJ_KEY": "$",
        "OBJ_SYS": codes.logical_system,
        "BUS_ACT": BUS_ACT,
        "USERNAME": _text(codes.username, 12),
        "HEADER_TXT": _text(payload["summary"], 25),
        "COMP_CODE": codes.company_code,
        "DOC_DATE": payload["date"].replace("-", ""),
        "PSTNG_DATE": payload["date"].replace("-", ""),
        "FISC_YEAR": year,
        "FIS_PERIOD": period,
        "DOC_TYPE": codes.document_type,
        "REF_DOC_NO": reference(idempotency_key),
    }
    gl: list[dict[str, Any]] = []
    payable: list[dict[str, Any]] = []
    amounts: list[dict[str, Any]] = []
    for index, entry in enumerate(payload["entries"], start=1):
        item = f"{index:010d}"
        text = _text(entry["summary"], 50)
        employee = entry["aux"]["employee"]
        if entry["account_code"] == PAYABLE_ACCOUNT and employee:
            payable.append(
                {
                    "ITEMNO_ACC": item,
                    "VENDOR_NO": codes.vendor(employee),
                    "COMP_CODE": codes.company_code,
                    "ITEM_TEXT": text,
                }
            )
        else:
            row = {
                "ITEMNO_ACC": item,
                "GL_ACCOUNT": codes.gl_account(entry["account_code"]),
                "COMP_CODE": codes.company_code,
                "ITEM_TEXT": text,
            }
            department = entry["aux"]["department"]
            if department and entry["account_code"].startswith("6"):
                row["COSTCENTER"] = codes.cost_center(department)
            gl.append(row)
        amounts.append(
            {
                "ITEMNO_ACC": item,
                "CURRENCY": payload["currency"],
                "AMT_DOCCUR": amount(entry["debit_fen"] - entry["credit_fen"]),
            }
        )
    return {
        "DOCUMENTHEADER": header,
        "ACCOUNTGL": gl,
        "ACCOUNTPAYABLE": payable,
        "CURRENCYAMOUNT": amounts,
    }


def reversal(
    payload: VoucherPayload, codes: SapCodes, original_key: str, reason: str
) -> dict[str, Any]:
    """The import parameters of BAPI_ACC_DOCUMENT_REV_POST reversing the FI document whose
    reference key (BKPF-AWKEY) is `original_key`, on the red-ink voucher's date."""
    _, period = fiscal_period(payload["period"])
    return {
        "REVERSAL": {
            "OBJ_TYPE": OBJ_TYPE,
            "OBJ_SYS": codes.logical_system,
            "OBJ_KEY": "$",
            "OBJ_KEY_R": original_key,
            "COMP_CODE": codes.company_code,
            "PSTNG_DATE": payload["date"].replace("-", ""),
            "FIS_PERIOD": period,
            "REASON_REV": reason,
        },
        "BUS_ACT": BUS_ACT,
    }


# -- RETURN (BAPIRET2) -> error classes ----------------------------------------------------------
# Types: S success, I information, W warning (the call went through), E error (nothing was
# done), A abort (the call was cut off in SAP). Errors on base data or on the document itself
# are permanent: the same document will be refused again. An abort, or a lock held by someone
# else, is transient. RW 602 answers a commit that found nothing to write: the posting before
# it is gone, which only the posted-lookup can tell for sure.
TRANSIENT_MESSAGES = frozenset({("F5", "154"), ("FB", "012"), ("M3", "023"), ("RW", "010")})
UNKNOWN_OUTCOME_MESSAGES = frozenset({("RW", "602")})


def message_id(row: Mapping[str, Any]) -> tuple[str, str]:
    return str(row.get("ID") or "").strip(), str(row.get("NUMBER") or "").strip()


def describe(row: Mapping[str, Any]) -> str:
    """'E F5 201 Posting period 005 2026 is not open (PARAMETER DOCUMENTHEADER, ROW 0, FIELD
    PSTNG_DATE)': one RETURN row, naming where the error is when SAP says."""
    ident, number = message_id(row)
    text = f"{row.get('TYPE', '')} {ident} {number} {row.get('MESSAGE', '')}".strip()
    where = [
        f"{name} {row[name]}"
        for name in ("PARAMETER", "ROW", "FIELD")
        if row.get(name) not in (None, "")
    ]
    return f"{text} ({', '.join(where)})" if where else text


def return_error(function: str, rows: Sequence[Mapping[str, Any]]) -> DeliveryError | None:
    """The error a function's RETURN rows stand for, or None when it went through."""
    failed = [row for row in rows if row.get("TYPE") in ("E", "A")]
    unknown = [row for row in rows if message_id(row) in UNKNOWN_OUTCOME_MESSAGES]
    if unknown:
        reason = f"{function}: " + "; ".join(describe(row) for row in unknown)
        return DeliveryError(ErrorClass.TRANSIENT, reason, outcome_unknown=True)
    if not failed:
        return None
    # The first row is often the summary (RW 609 "Error in document"); name the details too.
    reason = f"{function}: " + "; ".join(describe(row) for row in failed)[:900]
    transient = any(
        row.get("TYPE") == "A" or message_id(row) in TRANSIENT_MESSAGES for row in failed
    )
    return DeliveryError(ErrorClass.TRANSIENT if transient else ErrorClass.PERMANENT, reason)
