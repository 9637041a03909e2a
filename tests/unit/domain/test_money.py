"""Tests for finoa.domain.money: exact yuan/fen conversion, formatting and Money."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finoa.domain.errors import InvalidInput
from finoa.domain.money import MAX_FEN, Money, fen_to_yuan, format_fen, yuan_to_fen

# --- yuan_to_fen: exact conversion -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.10", 10),
        ("0.1", 10),
        ("0.01", 1),
        ("1234.56", 123456),
        ("1", 100),
        ("0", 0),
        ("-1.50", -150),
        ("1.000", 100),  # extra zero decimals do not change the value
        ("0.29", 29),  # 0.29 * 100 is 28.999999999999996 as a float; must stay exact here
        ("19.99", 1999),
        (Decimal("1e2"), 10000),
        (Decimal("1234.56"), 123456),
        (Decimal("1.1E-1"), 11),
        (7, 700),
    ],
)
def test_yuan_to_fen_is_exact(value: Decimal | int | str, expected: int) -> None:
    result = yuan_to_fen(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("value", ["1.001", "0.005", Decimal("1E-3"), "1234.567"])
def test_yuan_to_fen_refuses_more_than_two_decimals_naming_the_field(
    value: Decimal | str,
) -> None:
    with pytest.raises(InvalidInput) as info:
        yuan_to_fen(value, field="lines[3].tax")
    assert info.value.field == "lines[3].tax"
    assert "2 decimal" in info.value.message


def test_yuan_to_fen_default_field_is_amount() -> None:
    with pytest.raises(InvalidInput) as info:
        yuan_to_fen("1.001")
    assert info.value.field == "amount"


@pytest.mark.parametrize("value", ["abc", "", "1,000.00", "12元", "1.2.3"])
def test_yuan_to_fen_refuses_non_numeric(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        yuan_to_fen(value, field="lines[0].amount")
    assert info.value.field == "lines[0].amount"
    assert "not a decimal number" in info.value.message


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_yuan_to_fen_refuses_non_finite(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        yuan_to_fen(value, field="x")
    assert info.value.field == "x"


def test_yuan_to_fen_accepts_the_largest_allowed_amount() -> None:
    assert yuan_to_fen(fen_to_yuan(MAX_FEN)) == MAX_FEN
    assert yuan_to_fen(fen_to_yuan(-MAX_FEN)) == -MAX_FEN


@pytest.mark.parametrize(
    "value",
    [
        fen_to_yuan(MAX_FEN + 1),
        "10000000000000.01",
        "-10000000000000.01",
        Decimal("1e30"),
        10**20,
    ],
)
def test_yuan_to_fen_refuses_too_large(value: Decimal | int | str) -> None:
    with pytest.raises(InvalidInput) as info:
        yuan_to_fen(value, field="lines[1].amount")
    assert info.value.field == "lines[1].amount"
    assert "too large" in info.value.message


@pytest.mark.parametrize(
    "value",
    [
        # Too large AND written with three decimals: must still be an InvalidInput, not a
        # decimal.InvalidOperation leaking out of Decimal.quantize (28-digit context).
        "1" + "0" * 27 + ".000",
        "1" + "0" * 26 + ".001",
    ],
)
def test_yuan_to_fen_refuses_huge_values_with_extra_decimals_as_invalid_input(
    value: str,
) -> None:
    with pytest.raises(InvalidInput) as info:
        yuan_to_fen(value, field="lines[0].amount")
    assert info.value.field == "lines[0].amount"


@given(st.integers(min_value=-MAX_FEN, max_value=MAX_FEN))
def test_fen_round_trips_through_yuan(fen: int) -> None:
    yuan = fen_to_yuan(fen)
    assert yuan.as_tuple().exponent == -2
    assert yuan_to_fen(yuan) == fen
    assert yuan_to_fen(str(yuan)) == fen


def test_fen_to_yuan_has_two_decimals() -> None:
    assert fen_to_yuan(10) == Decimal("0.10")
    assert str(fen_to_yuan(10)) == "0.10"
    assert str(fen_to_yuan(-5)) == "-0.05"
    assert str(fen_to_yuan(123456)) == "1234.56"


# --- format_fen -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (10, "0.10"),
        (99, "0.99"),
        (100, "1.00"),
        (1234550, "12,345.50"),
        (123456789012, "1,234,567,890.12"),
        (-5, "-0.05"),
        (-1234550, "-12,345.50"),
        (-100000, "-1,000.00"),
    ],
)
def test_format_fen(fen: int, text: str) -> None:
    assert format_fen(fen) == text


# --- Money ----------------------------------------------------------------------------------


def test_money_addition_and_subtraction() -> None:
    assert Money(150) + Money(250) == Money(400)
    assert Money(150) - Money(250) == Money(-100)
    assert (Money(150, "USD") + Money(1, "USD")).currency == "USD"


def test_money_negation_keeps_currency() -> None:
    assert -Money(300, "USD") == Money(-300, "USD")


def test_money_default_currency_is_cny() -> None:
    assert Money(1).currency == "CNY"


@pytest.mark.parametrize("op", ["add", "sub"])
def test_money_currency_mismatch_is_refused(op: str) -> None:
    a, b = Money(100, "CNY"), Money(100, "USD")
    with pytest.raises(ValueError, match="currency mismatch"):
        _ = a + b if op == "add" else a - b


def test_money_str() -> None:
    assert str(Money(1234550)) == "12,345.50 CNY"
    assert str(Money(-5, "USD")) == "-0.05 USD"


@pytest.mark.parametrize("fen", [1.0, 0.5, True, False, Decimal("1"), "100", None])
def test_money_refuses_non_int_fen(fen: object) -> None:
    with pytest.raises(TypeError):
        Money(fen)  # type: ignore[arg-type]


def test_money_is_immutable() -> None:
    m = Money(1)
    with pytest.raises(AttributeError):
        m.fen = 2  # type: ignore[misc]
