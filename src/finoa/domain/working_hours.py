"""Working hours (工作时间): when a reminder (催办) or an escalation of an approval is due.

A calendar is the company's working days (ISO weekdays, Monday = 1), one daily window in
company time (09:00-18:00 by default) and a list of holidays. `add_working_hours` counts only
time inside the windows of working days that are not holidays, so "8 working hours" after a
task opened at 17:00 on a Friday is 16:00 on the Monday after. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from finoa.domain.errors import InvalidInput

__all__ = ["WorkingCalendar", "parse_days", "parse_holidays", "parse_window"]

MAX_DAYS_SEARCHED = 3660  # a calendar with no working day at all is refused well before this


def parse_window(text: str) -> tuple[time, time]:
    """`"09:00-18:00"` -> (09:00, 18:00); the end must be after the start."""
    try:
        start_text, end_text = text.split("-")
        start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
    except ValueError:
        raise InvalidInput("working_hours", f"{text!r} is not HH:MM-HH:MM") from None
    if end <= start:
        raise InvalidInput("working_hours", f"{text!r} ends before it starts")
    return start, end


def parse_days(text: str) -> frozenset[int]:
    """`"1-5"` or `"1,2,3,4,5,6"` -> ISO weekdays (Monday = 1)."""
    days: set[int] = set()
    try:
        for part in text.split(","):
            if "-" in part:
                first, last = (int(x) for x in part.split("-"))
                days.update(range(first, last + 1))
            elif part.strip():
                days.add(int(part))
    except ValueError:
        raise InvalidInput("working_days", f"{text!r} is not like 1-5 or 1,2,3") from None
    if not days or not days <= set(range(1, 8)):
        raise InvalidInput("working_days", f"{text!r}: weekdays are 1 (Monday) to 7 (Sunday)")
    return frozenset(days)


def parse_holidays(values: Iterable[str]) -> frozenset[date]:
    """ISO dates (`2026-10-01`); a bad one is refused, naming it."""
    days: set[date] = set()
    for value in values:
        if not value.strip():
            continue
        try:
            days.add(date.fromisoformat(value.strip()))
        except ValueError:
            raise InvalidInput("holidays", f"{value!r} is not a date (YYYY-MM-DD)") from None
    return frozenset(days)


@dataclass(frozen=True)
class WorkingCalendar:
    zone: ZoneInfo
    start: time = time(9, 0)
    end: time = time(18, 0)
    days: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    holidays: frozenset[date] = field(default_factory=frozenset)

    def is_working_day(self, day: date) -> bool:
        return day.isoweekday() in self.days and day not in self.holidays

    def add_working_hours(self, moment: datetime, hours: float) -> datetime:
        """The instant `hours` working hours after `moment` (aware), in UTC."""
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        left = timedelta(hours=hours)
        local = moment.astimezone(self.zone)
        day = local.date()
        for _ in range(MAX_DAYS_SEARCHED):
            if self.is_working_day(day):
                opens = datetime.combine(day, self.start, self.zone)
                closes = datetime.combine(day, self.end, self.zone)
                begin = max(opens, local)
                if begin < closes:
                    if begin + left <= closes:
                        return (begin + left).astimezone(UTC)
                    left -= closes - begin
            day += timedelta(days=1)
            local = datetime.combine(day, time(0, 0), self.zone)
        raise InvalidInput("working_days", "the calendar has no working time")
