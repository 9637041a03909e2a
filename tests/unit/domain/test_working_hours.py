"""Working hours: reminders and escalations count only the company's working time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from finoa.domain.errors import InvalidInput
from finoa.domain.working_hours import WorkingCalendar, parse_days, parse_holidays, parse_window

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkingCalendar(SHANGHAI)


def at(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    """A moment in December 2026, Shanghai time (1 December 2026 is a Tuesday)."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        (at(1, 10), 2, at(1, 12)),  # inside one day
        (at(1, 10), 8, at(1, 18)),  # to closing time exactly
        (at(1, 10), 9, at(2, 10)),  # 8 hours left on Tuesday: 1 more on Wednesday
        (at(4, 17), 8, at(7, 16)),  # Friday 17:00: 1 hour, the weekend, 7 on Monday
        (at(5, 11), 1, at(7, 10)),  # opened on a Saturday: counted from Monday 09:00
        (at(1, 7), 1, at(1, 10)),  # before opening time
        (at(1, 20), 1, at(2, 10)),  # after closing time
        (at(1, 10), 18, at(3, 10)),  # two full days
    ],
)
def test_working_hours_are_counted_in_company_time(
    start: datetime, hours: float, due: datetime
) -> None:
    assert CALENDAR.add_working_hours(start, hours) == due.astimezone(UTC)


def test_holidays_are_skipped() -> None:
    calendar = WorkingCalendar(SHANGHAI, holidays=frozenset({date(2026, 12, 2)}))
    assert calendar.add_working_hours(at(1, 17), 2) == at(3, 10).astimezone(UTC)


def test_a_six_day_week_and_other_hours() -> None:
    calendar = WorkingCalendar(SHANGHAI, time(8, 30), time(12, 0), parse_days("1-6"))
    assert calendar.add_working_hours(at(4, 11), 2) == at(5, 9, 30).astimezone(UTC)


def test_settings_text_is_read_and_bad_text_named() -> None:
    assert parse_window("09:00-18:00") == (time(9), time(18))
    assert parse_days("1-5") == frozenset({1, 2, 3, 4, 5})
    assert parse_days("1,3,5") == frozenset({1, 3, 5})
    assert parse_holidays(["2026-10-01", ""]) == frozenset({date(2026, 10, 1)})
    for call, field in [
        (lambda: parse_window("18:00-09:00"), "working_hours"),
        (lambda: parse_window("nine to six"), "working_hours"),
        (lambda: parse_days("0-8"), "working_days"),
        (lambda: parse_days("Mon"), "working_days"),
        (lambda: parse_holidays(["1 Oct"]), "holidays"),
    ]:
        with pytest.raises(InvalidInput) as raised:
            call()
        assert raised.value.field == field


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        CALENDAR.add_working_hours(datetime(2026, 12, 1, 10), 1)
