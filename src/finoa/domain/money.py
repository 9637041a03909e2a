"""Money as integer 分 (fen) plus currency. Never floats."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from finoa.domain.errors import InvalidInput

FEN_PER_YUAN = 100
MAX_FEN = 10**15  # one trillion yuan per line: far above any claim, far below overflow

# A plain decimal as people write amounts: ASCII digits, an optional minus sign and decimal
# point. Python's Decimal() would also take "1_000", " 12 ", "1e3" and non-ASCII digits.
PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
NOT_PLAIN = (
    "is not a decimal number in plain form (ASCII digits and at most one decimal point; "
    "no exponent, digit separators or spaces)"
)


def is_plain_decimal(text: str) -> bool:
    """Whether `text` is written as a plain decimal number, e.g. "1280.50"."""
    return PLAIN_DECIMAL.fullmatch(text) is not None


def yuan_to_fen(value: Decimal | int | str, *, field: str = "amount") -> int:
    """Convert a yuan amount with at most two decimals to integer fen, exactly.

    Text must be a plain decimal ("1280.50"); numbers are taken as they are.
    """
    if isinstance(value, bool):
        raise InvalidInput(field, "is not a decimal number")
    if isinstance(value, str) and not is_plain_decimal(value):
        raise InvalidInput(field, f"{value!r} {NOT_PLAIN}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput(field, f"{value!r} is not a decimal number") from None
    if not amount.is_finite():
        raise InvalidInput(field, "must be a finite number")
    if abs(amount) > MAX_FEN / FEN_PER_YUAN:
        raise InvalidInput(field, "is too large")
    scaled = amount * FEN_PER_YUAN
    if scaled != scaled.to_integral_value():
        raise InvalidInput(field, "has more than 2 decimal places")
    return int(scaled)


def fen_to_yuan(fen: int) -> Decimal:
    return (Decimal(fen) / FEN_PER_YUAN).quantize(Decimal("0.01"))


def format_fen(fen: int) -> str:
    """1234550 -> '12,345.50'."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{yuan:,}.{cents:02d}"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in fen and its ISO 4217 currency."""

    fen: int
    currency: str = "CNY"

    def __post_init__(self) -> None:
        if not isinstance(self.fen, int) or isinstance(self.fen, bool):
            raise TypeError("Money.fen must be an int")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.fen + other.fen, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.fen - other.fen, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.fen, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __str__(self) -> str:
        return f"{format_fen(self.fen)} {self.currency}"
