"""Invoice checks: the number and its parts, the buyer, the sums; each failure names its field."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from support import invoices as build

from finoa.domain.errors import InvalidInput
from finoa.invoices.model import Invoice, InvoiceItem, InvoiceKind
from finoa.invoices.parsing import read_invoice
from finoa.invoices.validation import (
    check_company_tax_id,
    check_invoice_number,
    credit_code_check_char,
    is_credit_code,
    validate_invoice,
)


def _invoice(**changes: object) -> Invoice:
    invoice = read_invoice(build.einvoice_xml()).invoice
    assert invoice is not None
    return replace(invoice, **changes)  # type: ignore[arg-type]


def test_a_good_invoice_passes() -> None:
    validate_invoice(_invoice(), build.COMPANY_TAX_ID)


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("2531200000010000001", "not 20 digits"),
        ("253120000001000000011", "not 20 digits"),
        ("2531200000010000000a", "not 20 digits"),
        ("２５31200000010000001", "not 20 digits"),  # full-width digits are not digits here
        ("24312000000100000001", "positions 1-2"),
        ("25992000000100000001", "positions 3-4"),
        ("25002000000100000001", "positions 3-4"),
        ("25312000000000000000", "positions 6-20"),
    ],
)
def test_number_parts(number: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        check_invoice_number(number, 2025)
    assert caught.value.field == "invoice.number"


def test_number_year_follows_the_issue_date() -> None:
    check_invoice_number("26442000000100000001", 2026)
    with pytest.raises(InvalidInput, match=r"\(25\)"):
        check_invoice_number("26442000000100000001", 2025)


def test_buyer_must_be_the_company() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_invoice(_invoice(buyer_tax_id=build.OTHER_TAX_ID), build.COMPANY_TAX_ID)
    assert caught.value.field == "invoice.buyer_tax_id"
    assert build.OTHER_TAX_ID in str(caught.value)


def test_amount_plus_tax_must_be_the_total() -> None:
    with pytest.raises(InvalidInput, match="价税合计") as caught:
        validate_invoice(_invoice(total_fen=53001), build.COMPANY_TAX_ID)
    assert caught.value.field == "invoice.total"


def test_sums_as_written_in_the_file_are_checked() -> None:
    spec = build.EInvoiceSpec(total="530.01")
    invoice = read_invoice(build.einvoice_xml(spec)).invoice
    assert invoice is not None
    with pytest.raises(InvalidInput, match="530"):
        validate_invoice(invoice, build.COMPANY_TAX_ID)


def test_items_must_add_up() -> None:
    items = (InvoiceItem("*住宿服务*住宿费", 40000, 3000),)
    with pytest.raises(InvalidInput) as caught:
        validate_invoice(_invoice(items=items), build.COMPANY_TAX_ID)
    assert caught.value.field == "invoice.amount"
    items = (InvoiceItem("*住宿服务*住宿费", 50000, 2999),)
    with pytest.raises(InvalidInput) as caught:
        validate_invoice(_invoice(items=items), build.COMPANY_TAX_ID)
    assert caught.value.field == "invoice.tax"


def test_air_fare_cannot_exceed_the_ticket() -> None:
    ticket = Invoice(
        number="25312000000100009999",
        issue_date=date(2025, 11, 1),
        kind=InvoiceKind.AIR,
        seller_tax_id="",
        seller_name="",
        buyer_tax_id=build.COMPANY_TAX_ID,
        buyer_name="",
        amount_fen=100000,
        tax_fen=0,
        total_fen=100000,
        fare_fen=100000,
        fuel_surcharge_fen=1,
    )
    with pytest.raises(InvalidInput) as caught:
        validate_invoice(ticket, build.COMPANY_TAX_ID)
    assert caught.value.field == "invoice.fare"


def test_credit_code_check_character() -> None:
    # GB 32100-2015 worked example: 91350100M000100Y4 → check character 3
    assert credit_code_check_char("91350100M000100Y4") == "3"
    assert is_credit_code("91350100M000100Y43")
    assert not is_credit_code("91350100M000100Y44")
    assert not is_credit_code("91350100M000100Y4")
    assert not is_credit_code("91350100M000100I43")  # I is not in the alphabet


def test_company_tax_id_setting() -> None:
    with pytest.raises(InvalidInput, match="not configured") as caught:
        check_company_tax_id("")
    assert caught.value.field == "company_tax_id"
    with pytest.raises(InvalidInput, match="GB 32100"):
        check_company_tax_id("91350100M000100Y44")
    check_company_tax_id(build.COMPANY_TAX_ID)
