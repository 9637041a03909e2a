"""Deductible input VAT by invoice kind, in fen, rounded half up, at the rounding edges."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import invoices as build

from finoa.domain.claim import ExpenseCategory
from finoa.invoices.model import Invoice, InvoiceItem, InvoiceKind
from finoa.invoices.parsing import read_invoice
from finoa.invoices.vat import NINE_PERCENT, THREE_PERCENT, deductible_vat, included_vat

TRAVEL = ExpenseCategory.TRAVEL


def ticket(kind: InvoiceKind, total_fen: int, fare_fen: int = 0, fuel_fen: int = 0) -> Invoice:
    return Invoice(
        number="25312000000100000777",
        issue_date=date(2025, 11, 3),
        kind=kind,
        seller_tax_id="",
        seller_name="",
        buyer_tax_id=build.COMPANY_TAX_ID,
        buyer_name="",
        amount_fen=total_fen,
        tax_fen=0,
        total_fen=total_fen,
        fare_fen=fare_fen,
        fuel_surcharge_fen=fuel_fen,
    )


def test_railway_face_value() -> None:
    # 553.00 ÷ 1.09 × 9% = 45.6605… → 45.66
    assert deductible_vat(ticket(InvoiceKind.RAILWAY, 55300), TRAVEL)[0] == 4566


def test_air_fare_and_fuel_only() -> None:
    # (1200 + 60) ÷ 1.09 × 9% = 104.0366… → 104.04; the 50.00 development fund is left out
    air = ticket(InvoiceKind.AIR, 131000, fare_fen=120000, fuel_fen=6000)
    assert deductible_vat(air, TRAVEL)[0] == 10404


def test_air_from_the_parsed_itinerary() -> None:
    air = read_invoice(build.air_xbrl(fare="1200.00", fuel="60.00", fund="50.00")).invoice
    assert air is not None
    assert deductible_vat(air, TRAVEL) == (10404, deductible_vat(air, TRAVEL)[1])


def test_road_and_water_three_percent() -> None:
    # 103.00 ÷ 1.03 × 3% = 3.00 exactly; 50.00 → 1.4563… → 1.46
    assert deductible_vat(ticket(InvoiceKind.ROAD_WATER, 10300), TRAVEL)[0] == 300
    assert deductible_vat(ticket(InvoiceKind.ROAD_WATER, 5000), TRAVEL)[0] == 146


@pytest.mark.parametrize(
    ("gross_fen", "expected"),
    [
        (0, 0),
        (1, 0),  # 0.0826 fen
        (6, 0),  # 0.4954 fen: just below half
        (7, 1),  # 0.5780 fen: just above half
        (109, 9),  # exact
        (115, 9),  # 9.4954
        (116, 10),  # 9.5780
        (10900, 900),
        (999_999_999, 82_568_807),  # 82568807.2477…
    ],
)
def test_nine_percent_edges(gross_fen: int, expected: int) -> None:
    assert included_vat(gross_fen, NINE_PERCENT) == expected


@pytest.mark.parametrize(
    ("gross_fen", "expected"), [(17, 0), (18, 1), (103, 3), (120, 3), (121, 4)]
)
def test_three_percent_edges(gross_fen: int, expected: int) -> None:
    # 17 → 0.4951, 18 → 0.5243, 120 → 3.4951, 121 → 3.5243
    assert included_vat(gross_fen, THREE_PERCENT) == expected


@given(st.integers(min_value=0, max_value=10**13))
def test_rounding_is_half_up_of_the_exact_fraction(gross_fen: int) -> None:
    for rate, num, den in ((NINE_PERCENT, 9, 109), (THREE_PERCENT, 3, 103)):
        quotient, remainder = divmod(gross_fen * num, den)
        expected = quotient + (1 if 2 * remainder >= den else 0)
        assert included_vat(gross_fen, rate) == expected
        assert 2 * remainder != den  # no exact halves: 103 and 109 are odd


def test_special_vat_invoice_as_stated() -> None:
    invoice = read_invoice(build.einvoice_xml()).invoice
    assert invoice is not None and invoice.kind is InvoiceKind.SPECIAL_VAT
    assert deductible_vat(invoice, ExpenseCategory.LODGING)[0] == 3000


def test_general_invoice_not_deductible_unless_passenger_transport() -> None:
    invoice = read_invoice(build.einvoice_xml(build.EInvoiceSpec(label_code="02"))).invoice
    assert invoice is not None
    assert deductible_vat(invoice, ExpenseCategory.LODGING)[0] == 0
    taxi = replace(invoice, items=(InvoiceItem("*运输服务*客运服务费", 50000, 3000),))
    assert deductible_vat(taxi, ExpenseCategory.TRANSPORT)[0] == 3000


def test_catering_and_entertainment_are_not_deductible() -> None:
    spec = build.EInvoiceSpec(items=(("*餐饮服务*餐费", "100.00", "6%", "6.00"),))
    meal = read_invoice(build.einvoice_xml(spec)).invoice
    assert meal is not None and meal.kind is InvoiceKind.SPECIAL_VAT
    assert deductible_vat(meal, ExpenseCategory.TRAVEL)[0] == 0
    hotel = read_invoice(build.einvoice_xml()).invoice
    assert hotel is not None
    amount, rule = deductible_vat(hotel, ExpenseCategory.ENTERTAINMENT)
    assert amount == 0 and "业务招待费" in rule


def test_decimal_only() -> None:
    assert isinstance(NINE_PERCENT, Decimal) and isinstance(included_vat(55300, NINE_PERCENT), int)
