"""The expense policy (费用标准) on its own: limits per grade and city tier, per night, per day
and per line; the version in force on the expense date; refused policy files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from support.policy import TRAVEL_POLICY

from finoa.domain.errors import InvalidInput
from finoa.domain.policy import (
    BreachAction,
    ExpensePolicy,
    PolicyFileError,
    PolicyLine,
    first_block,
    parse_policy,
    read_policy,
)
from finoa.services.policy import default_policy

NOV = date(2026, 11, 10)


@pytest.fixture(scope="module")
def policy() -> ExpensePolicy:
    return read_policy(TRAVEL_POLICY)


def lodging(amount_fen: int, nights: int | None, city: str = "上海", day: date = NOV) -> PolicyLine:
    return PolicyLine(0, "lodging", amount_fen, day, city, nights=nights)


def test_three_nights_in_shanghai_above_the_rate_is_a_breach(policy: ExpensePolicy) -> None:
    """Li Wei, grade P5, stays 3 nights in Shanghai (tier 1) at 650 元 a night: 1,950 元.
    His limit is 600 元 a night, 1,800 元 for the stay: the line is 150 元 over, flagged."""
    (check,) = policy.check("P5", [lodging(195_000, 3)])
    assert (check.rule, check.tier, check.grade) == ("lodging_per_night", "tier1", "P5")
    assert check.limit_fen == 180_000
    assert check.breached and check.action is BreachAction.FLAG
    assert first_block([check]) is None


@pytest.mark.parametrize(
    ("amount_fen", "breached"), [(180_000, False), (180_001, True), (179_999, False)]
)
def test_exactly_the_limit_is_within_and_one_fen_more_is_not(
    policy: ExpensePolicy, amount_fen: int, breached: bool
) -> None:
    """1,800.00 元 for 3 nights at 600 元 is within; 1,800.01 元 is one 分 over."""
    (check,) = policy.check("P5", [lodging(amount_fen, 3)])
    assert check.breached is breached


def test_the_city_tier_sets_the_rate(policy: ExpensePolicy) -> None:
    """The same 3 nights at 450 元 are within in Hangzhou (tier 2: 450) and, in Lhasa, which the
    table does not list (the default tier 3: 350 a night), over."""
    (hangzhou,) = policy.check("P5", [lodging(135_000, 3, city="杭州")])
    (lhasa,) = policy.check("P5", [lodging(135_000, 3, city="拉萨")])
    assert (hangzhou.tier, hangzhou.limit_fen, hangzhou.breached) == ("tier2", 135_000, False)
    assert (lhasa.tier, lhasa.limit_fen, lhasa.breached) == ("tier3", 105_000, True)


def test_a_grade_the_rule_does_not_name_gets_its_catch_all_limit(policy: ExpensePolicy) -> None:
    """Chen Chen has no grade in master data: the policy's default grade P3 applies, which
    the lodging rule does not name, so its `*` limit of 500 元 a night in tier 1 does."""
    (check,) = policy.check(None, [lodging(100_001, 2)])
    assert (check.grade, check.limit_fen, check.breached) == ("P3", 100_000, True)


def test_the_version_in_force_on_the_expense_date_applies(policy: ExpensePolicy) -> None:
    """A night in Shanghai on 30 June 2026 falls under 2026-H1 (550 元); on 1 July, under
    2026-H2 (600 元). The same 580 元 is over on the first day and within on the second."""
    (june,) = policy.check("P5", [lodging(58_000, 1, day=date(2026, 6, 30))])
    (july,) = policy.check("P5", [lodging(58_000, 1, day=date(2026, 7, 1))])
    assert (june.policy_version, june.limit_fen, june.breached) == ("2026-H1", 55_000, True)
    assert (july.policy_version, july.limit_fen, july.breached) == ("2026-H2", 60_000, False)


def test_before_the_first_version_nothing_is_checked(policy: ExpensePolicy) -> None:
    assert policy.check("P5", [lodging(9_999_999, 1, day=date(2025, 12, 31))]) == []


def test_the_per_diem_is_days_times_the_allowance(policy: ExpensePolicy) -> None:
    """Li Wei claims his 补助 for 4 days in Shanghai: 4 × 120 元 = 480 元 is his allowance.
    480 元 is within; 480.01 元 is a breach."""
    line = PolicyLine(0, "travel", 48_000, NOV, "上海", days=4)
    (within,) = policy.check("P5", [line])
    (over,) = policy.check("P5", [PolicyLine(0, "travel", 48_001, NOV, "上海", days=4)])
    assert (within.rule, within.limit_fen, within.breached) == ("per_diem", 48_000, False)
    assert over.breached


def test_a_block_rule_names_the_line_the_rule_and_the_limit(policy: ExpensePolicy) -> None:
    """A client dinner of 1,000.01 元 in Shanghai is 1 分 above Li Wei's 1,000 元 per line, a
    blocking rule."""
    lines = [lodging(60_000, 1), PolicyLine(1, "entertainment", 100_001, NOV, "上海")]
    blocked = first_block(policy.check("P5", lines))
    assert blocked is not None
    assert (blocked.line, blocked.rule, blocked.limit_fen) == (1, "entertainment_per_line", 100_000)


def test_a_per_night_rule_that_requires_nights_names_the_field(policy: ExpensePolicy) -> None:
    with pytest.raises(InvalidInput) as caught:
        policy.check("P5", [lodging(60_000, None)])
    assert caught.value.field == "lines[0].nights"


def test_the_shipped_policy_leaves_lines_without_a_quantity_unchecked() -> None:
    """The default policy requires no nights or days: a train ticket (travel, no days) is no
    per-diem claim and a lodging line without nights has nothing to count; with them, both
    are checked (P5 in Shanghai: 600 元 a night, 120 元 a day)."""
    policy = default_policy()
    ticket = PolicyLine(0, "travel", 128_050, NOV, "上海")
    assert policy.check("P5", [ticket, lodging(60_001, None)]) == []
    stay, per_diem = policy.check(
        "P5", [lodging(60_001, 1), PolicyLine(1, "travel", 24_000, NOV, "上海", days=2)]
    )
    assert (stay.limit_fen, stay.breached) == (60_000, True)
    assert (per_diem.limit_fen, per_diem.breached) == (24_000, False)


VALID = TRAVEL_POLICY.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("versions: [", "line 1: not valid YAML"),
        ("- just a list", "the file must be a mapping"),
        (
            VALID.replace("category: lodging", "category: hotel", 1),
            "versions[0].rules[0].category:",
        ),
        (VALID.replace("tier1: 550", "tier1: 550.001", 1), "at most two decimals"),
        (VALID.replace("tier1: 550", "tier1: -1", 1), "at most two decimals"),
        (
            VALID.replace("tier2: 400", "tier9: 400", 1),
            "versions[0].rules[0].limits.P5: unknown tier",
        ),
        (VALID.replace("default_tier: tier3", "default_tier: tier7"), "default_tier 'tier7'"),
        (VALID.replace("effective_to: 2026-06-30", "effective_to: 2026-07-01"), "overlap"),
        (VALID.replace("effective_to: 2026-06-30", "effective_to: 2025-06-30"), "is before"),
        (VALID.replace("tier2: [杭州]", "tier2: [杭州, 上海]"), "city 上海 is in both"),
        (VALID.replace("on_breach: flag", "on_breach: warn"), "on_breach:"),
        (VALID.replace("per: day", "per: week"), "versions[1].rules[1].per:"),
        (VALID + "surprise: 1\n", "surprise: Extra inputs are not permitted"),
    ],
)
def test_a_bad_policy_file_is_refused_naming_the_place(content: str, expected: str) -> None:
    with pytest.raises(PolicyFileError) as caught:
        parse_policy(content, "bad.yaml")
    assert any(expected in line for line in caught.value.errors), caught.value.errors
    assert caught.value.field == "policy_file"


def test_a_missing_policy_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError) as caught:
        read_policy(tmp_path / "nowhere.yaml")
    assert caught.value.errors == ["cannot read: FileNotFoundError"]
