"""Tests for finoa.domain.periods: company dates, period arithmetic, closed-period placement."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finoa.domain.errors import Conflict, InvalidInput
from finoa.domain.periods import (
    ClosedPeriodPolicy,
    Period,
    Placement,
    company_date,
    place_voucher,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
periods = st.builds(Period, st.integers(1, 9998), st.integers(1, 12))


# --- company time ---------------------------------------------------------------------------


def test_one_in_the_morning_of_1_february_in_beijing_is_february() -> None:
    instant = datetime(2026, 1, 31, 17, 0, tzinfo=UTC)  # 01:00 on 1 February, Beijing time
    day = company_date(instant, SHANGHAI)
    assert day == date(2026, 2, 1)
    assert Period.of(day) == Period(2026, 2)
    assert instant.date() == date(2026, 1, 31)  # what a UTC calendar would have said


def test_the_minute_before_midnight_in_beijing_is_still_january() -> None:
    assert company_date(datetime(2026, 1, 31, 15, 59, tzinfo=UTC), SHANGHAI) == date(2026, 1, 31)
    assert company_date(datetime(2026, 1, 31, 16, 0, tzinfo=UTC), SHANGHAI) == date(2026, 2, 1)


def test_new_year_comes_eight_hours_before_utc_in_beijing() -> None:
    instant = datetime(2025, 12, 31, 16, 30, tzinfo=UTC)
    assert Period.of(company_date(instant, SHANGHAI)) == Period(2026, 1)
    assert Period.of(company_date(instant, UTC)) == Period(2025, 12)


def test_a_zone_west_of_utc_is_behind_it() -> None:
    instant = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    assert company_date(instant, ZoneInfo("America/New_York")) == date(2026, 2, 28)


def test_company_date_accepts_any_aware_instant() -> None:
    beijing = datetime(2026, 2, 1, 1, 0, tzinfo=SHANGHAI)
    assert company_date(beijing, SHANGHAI) == date(2026, 2, 1)
    assert company_date(beijing, UTC) == date(2026, 1, 31)


def test_company_date_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        company_date(datetime(2026, 2, 1, 1, 0), SHANGHAI)


# --- period arithmetic ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "following"),
    [
        (Period(2026, 1), Period(2026, 2)),
        (Period(2026, 11), Period(2026, 12)),
        (Period(2026, 12), Period(2027, 1)),
        (Period(1999, 12), Period(2000, 1)),
    ],
)
def test_next_period(period: Period, following: Period) -> None:
    assert period.next() == following
    assert period < following


def test_there_is_no_period_after_9999_12() -> None:
    with pytest.raises(InvalidInput) as info:
        Period(9999, 12).next()
    assert info.value.field == "period"


@pytest.mark.parametrize(
    ("period", "first"),
    [
        (Period(2026, 2), date(2026, 2, 1)),
        (Period(2027, 1), date(2027, 1, 1)),
        (Period(2024, 12), date(2024, 12, 1)),
    ],
)
def test_first_day(period: Period, first: date) -> None:
    assert period.first_day == first


@pytest.mark.parametrize(
    ("text", "period"),
    [("2026-02", Period(2026, 2)), ("2026-12", Period(2026, 12)), ("0999-01", Period(999, 1))],
)
def test_parse_and_format(text: str, period: Period) -> None:
    assert Period.parse(text) == period
    assert str(period) == text


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-00", "2026-2", "26-02", "2026/02", "2026-02-01", "", "abcd-ef"]
)
def test_bad_period_text_is_invalid_input_naming_period(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Period.parse(text)
    assert info.value.field == "period"
    assert info.value.status == 422


def test_year_zero_is_no_period() -> None:
    with pytest.raises(InvalidInput) as info:
        Period.parse("0000-05")
    assert info.value.field == "period"


@given(periods)
def test_text_round_trips_and_sorts_like_the_period(period: Period) -> None:
    assert Period.parse(str(period)) == period
    following = period.next()
    assert (str(period) < str(following)) and (period < following)
    assert Period.of(following.first_day - timedelta(days=1)) == period


@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 11, 30)))
def test_every_day_lies_in_its_period(day: date) -> None:
    period = Period.of(day)
    assert period.first_day <= day < period.next().first_day


# --- placement into open periods -------------------------------------------------------------

FEB_10 = date(2026, 2, 10)


@pytest.mark.parametrize("policy", list(ClosedPeriodPolicy))
def test_an_open_period_keeps_the_date(policy: ClosedPeriodPolicy) -> None:
    closed = {Period(2026, 1), Period(2026, 3)}
    assert place_voucher(FEB_10, closed, policy) == Placement(Period(2026, 2), FEB_10)


def test_refuse_policy_names_the_closed_period() -> None:
    with pytest.raises(Conflict) as info:
        place_voucher(FEB_10, {Period(2026, 2)}, ClosedPeriodPolicy.REFUSE)
    assert info.value.status == 409
    assert info.value.field == "period"
    assert info.value.message == "accounting period 2026-02 is closed"


def test_next_open_policy_moves_to_the_first_day_of_the_next_period() -> None:
    placement = place_voucher(FEB_10, {Period(2026, 2)}, ClosedPeriodPolicy.NEXT_OPEN)
    assert placement == Placement(Period(2026, 3), date(2026, 3, 1), moved_from=Period(2026, 2))


def test_next_open_skips_every_closed_period_across_the_year_end() -> None:
    closed = {Period(2026, 11), Period(2026, 12), Period(2027, 1), Period(2027, 3)}
    placement = place_voucher(date(2026, 11, 30), closed, ClosedPeriodPolicy.NEXT_OPEN)
    assert placement == Placement(Period(2027, 2), date(2027, 2, 1), moved_from=Period(2026, 11))


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
    st.sets(periods.filter(lambda p: 2000 <= p.year <= 2101), max_size=30),
)
def test_a_moved_voucher_lands_in_the_first_open_period_after(
    wanted: date, closed: set[Period]
) -> None:
    placement = place_voucher(wanted, closed, ClosedPeriodPolicy.NEXT_OPEN)
    assert placement.period not in closed
    assert Period.of(placement.voucher_date) == placement.period
    assert placement.period >= Period.of(wanted)
    if placement.moved_from is None:
        assert placement.voucher_date == wanted
    else:
        assert placement.moved_from == Period.of(wanted)
        assert placement.voucher_date == placement.period.first_day
        between = Period.of(wanted)
        while between < placement.period:
            assert between in closed
            between = between.next()
