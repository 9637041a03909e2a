"""Checks on an invoice before it may back a claim; each failure names the field.

- The number (发票号码): 20 digits. Positions 1–2 are the year of issue, 3–4 the provincial
  region (GB/T 2260 province-level codes), 5 the issuing channel, 6–20 a sequence number
  (国家税务总局 公告, the same layout for railway tickets from 2024-11-01).
- The buyer (购买方) must be the company: its 统一社会信用代码 equals `company_tax_id`.
- The amounts add up: 金额 + 税额 = 价税合计, and the item lines add up to the totals.
"""

from __future__ import annotations

import re

from finoa.domain.errors import InvalidInput
from finoa.invoices.model import Invoice, InvoiceKind

NUMBER = re.compile(r"[0-9]{20}")
# Province-level region codes (GB/T 2260) of the tax bureaus that issue 数电票.
REGION_CODES = frozenset(
    {
        "11", "12", "13", "14", "15",
        "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65",
    }
)  # fmt: skip
# 统一社会信用代码 (GB 32100-2015): 18 characters from this alphabet, the last a check
# character over the first 17 with these weights.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
TICKETS = frozenset({InvoiceKind.RAILWAY, InvoiceKind.AIR, InvoiceKind.ROAD_WATER})


def check_invoice_number(number: str, issue_year: int, *, field: str = "invoice.number") -> None:
    """The 20-digit 数电票 number and its parts."""
    if not NUMBER.fullmatch(number):
        raise InvalidInput(field, f"{number!r} is not 20 digits")
    if int(number[:2]) != issue_year % 100:
        raise InvalidInput(
            field,
            f"positions 1-2 ({number[:2]}) must be the year of issue ({issue_year % 100:02d})",
        )
    if number[2:4] not in REGION_CODES:
        raise InvalidInput(field, f"positions 3-4 ({number[2:4]}) are not a region code")
    if number[5:] == "0" * 15:
        raise InvalidInput(field, "positions 6-20 (the sequence number) must not be all zeros")


def credit_code_check_char(first17: str) -> str:
    """The check character of a 统一社会信用代码 whose first 17 characters are given."""
    total = sum(
        CREDIT_CODE_ALPHABET.index(char) * weight
        for char, weight in zip(first17, CREDIT_CODE_WEIGHTS, strict=True)
    )
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def is_credit_code(code: str) -> bool:
    """Whether `code` is a well-formed 统一社会信用代码 (alphabet, length, check character)."""
    if len(code) != 18 or any(char not in CREDIT_CODE_ALPHABET for char in code):
        return False
    return credit_code_check_char(code[:17]) == code[17]


def check_company_tax_id(code: str, *, field: str = "company_tax_id") -> None:
    """The company's own tax id, as configured."""
    if not code:
        raise InvalidInput(field, "is not configured; set the company's 统一社会信用代码")
    if not is_credit_code(code):
        raise InvalidInput(field, f"{code!r} is not a valid 统一社会信用代码 (GB 32100)")


def validate_invoice(invoice: Invoice, company_tax_id: str) -> None:
    """Every check an invoice must pass to back a claim line; the first failure is raised."""
    check_invoice_number(invoice.number, invoice.issue_date.year)
    if invoice.buyer_tax_id.upper() != company_tax_id.upper():
        raise InvalidInput(
            "invoice.buyer_tax_id",
            f"the buyer {invoice.buyer_tax_id!r} is not the company ({company_tax_id})",
        )
    if invoice.amount_fen + invoice.tax_fen != invoice.total_fen:
        raise InvalidInput(
            "invoice.total",
            f"金额 {invoice.amount_fen} + 税额 {invoice.tax_fen} != 价税合计 "
            f"{invoice.total_fen} (fen)",
        )
    if invoice.total_fen <= 0:
        raise InvalidInput("invoice.total", "价税合计 must be greater than zero")
    if invoice.tax_fen < 0:
        raise InvalidInput("invoice.tax", "税额 must not be negative")
    if invoice.items:
        if sum(item.amount_fen for item in invoice.items) != invoice.amount_fen:
            raise InvalidInput("invoice.amount", "the items' 金额 do not add up to the total 金额")
        if sum(item.tax_fen for item in invoice.items) != invoice.tax_fen:
            raise InvalidInput("invoice.tax", "the items' 税额 do not add up to the total 税额")
    if invoice.kind is InvoiceKind.AIR and (
        invoice.fare_fen + invoice.fuel_surcharge_fen > invoice.total_fen
    ):
        raise InvalidInput("invoice.fare", "fare and fuel surcharge exceed the ticket total")
