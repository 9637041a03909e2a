"""Company time and accounting periods (会计期间).

Voucher dates and periods follow the company's local calendar, not UTC: an approval at 01:00
Beijing time on 1 February belongs to February although it is still 31 January in UTC. A period
is a calendar month, written `YYYY-MM`. A period is open unless it has been closed; what
happens to a voucher whose date falls in a closed period is the closed-period policy's choice.
"""

from __future__ import annotations

import re
from collections.abc import Set
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import StrEnum

from finoa.domain.errors import Conflict, InvalidInput

PERIOD_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


class PeriodStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class ClosedPeriodPolicy(StrEnum):
    """What a voucher dated in a closed period does."""

    REFUSE = "refuse"  # the use case that would create it is refused (409 naming the period)
    NEXT_OPEN = "next_open"  # it moves to the first open period after, dated its first day


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """One accounting period: a calendar month of the company's calendar."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.year <= 9999:
            raise InvalidInput("period", f"year {self.year} is outside 0001-9999")
        if not 1 <= self.month <= 12:
            raise InvalidInput("period", f"month {self.month} is not 01-12")

    @classmethod
    def parse(cls, text: str) -> Period:
        """`"2026-02"` -> Period(2026, 2); anything else is invalid input naming `period`."""
        match = PERIOD_PATTERN.match(text)
        if match is None:
            raise InvalidInput("period", f"{text!r} is not a period like 2026-02 (YYYY-MM)")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, day: date) -> Period:
        """The period a local calendar day belongs to."""
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def next(self) -> Period:
        """The following month; December is followed by January of the next year."""
        if self.month == 12:
            return Period(self.year + 1, 1)
        return Period(self.year, self.month + 1)


def company_date(instant: datetime, zone: tzinfo) -> date:
    """The company's calendar day at `instant` (an aware datetime, usually UTC)."""
    if instant.tzinfo is None:
        raise ValueError("company_date needs an aware datetime")
    return instant.astimezone(zone).date()


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a voucher goes: its period and date, and the period it was moved from, if any."""

    period: Period
    voucher_date: date
    moved_from: Period | None = None


def place_voucher(wanted: date, closed: Set[Period], policy: ClosedPeriodPolicy) -> Placement:
    """Put a voucher dated `wanted` into an open period, as `policy` says.

    `closed` holds the closed periods (at least those from `wanted`'s period on). An open
    period keeps the date. A closed one either refuses (Conflict, 409, naming the field
    `period`) or moves the voucher to the first open period after it, dated its first day.
    """
    period = Period.of(wanted)
    if period not in closed:
        return Placement(period, wanted)
    if policy is ClosedPeriodPolicy.REFUSE:
        raise Conflict("period", f"accounting period {period} is closed")
    target = period.next()
    while target in closed:
        target = target.next()
    return Placement(target, target.first_day, moved_from=period)
