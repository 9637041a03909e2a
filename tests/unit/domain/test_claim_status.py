"""Tests for finoa.domain.claim: the status machine and line checks."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from finoa.domain.claim import (
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    Claim,
    ClaimLine,
    ClaimStatus,
    ExpenseCategory,
    check_lines,
    transition,
)
from finoa.domain.errors import Conflict, InvalidInput

S = ClaimStatus

ALLOWED = {
    (S.SUBMITTED, S.IN_APPROVAL),
    (S.IN_APPROVAL, S.APPROVED),
    (S.IN_APPROVAL, S.REJECTED),
    (S.APPROVED, S.POSTED),
}
FORBIDDEN = sorted(set(itertools.product(S, S)) - ALLOWED)


def line(amount: int, tax: int = 0, category: ExpenseCategory = ExpenseCategory.TRAVEL):
    return ClaimLine(category, amount, tax, date(2024, 5, 1))


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED))
def test_allowed_transitions_return_the_new_status(current: ClaimStatus, new: ClaimStatus) -> None:
    assert transition(current, new) is new


@pytest.mark.parametrize(("current", "new"), FORBIDDEN)
def test_forbidden_transitions_raise_conflict_on_status(
    current: ClaimStatus, new: ClaimStatus
) -> None:
    with pytest.raises(Conflict) as info:
        transition(current, new)
    assert info.value.field == "status"
    assert str(current) in info.value.message and str(new) in info.value.message
    assert info.value.status == 409


def test_final_statuses_have_no_way_out() -> None:
    assert {S.REJECTED, S.POSTED} == FINAL_STATUSES
    for status in FINAL_STATUSES:
        assert ALLOWED_TRANSITIONS[status] == frozenset()
    assert set(ALLOWED_TRANSITIONS) == set(S)


def test_check_lines_accepts_valid_lines() -> None:
    check_lines((line(100), line(109000, 9000), line(2, 1)))


def test_check_lines_refuses_no_lines() -> None:
    with pytest.raises(InvalidInput) as info:
        check_lines(())
    assert info.value.field == "lines"


@pytest.mark.parametrize("amount", [0, -1, -10000])
def test_check_lines_refuses_non_positive_amount_naming_the_line(amount: int) -> None:
    with pytest.raises(InvalidInput) as info:
        check_lines((line(100), line(200), line(amount)))
    assert info.value.field == "lines[2].amount"


def test_check_lines_refuses_negative_tax_naming_the_line() -> None:
    with pytest.raises(InvalidInput) as info:
        check_lines((line(100), line(100, -1)))
    assert info.value.field == "lines[1].tax"
    assert "negative" in info.value.message


@pytest.mark.parametrize("tax", [100, 101])
def test_check_lines_refuses_tax_not_below_amount(tax: int) -> None:
    with pytest.raises(InvalidInput) as info:
        check_lines((line(100, tax),))
    assert info.value.field == "lines[0].tax"
    assert "less than" in info.value.message


def test_check_lines_reports_the_first_bad_line() -> None:
    with pytest.raises(InvalidInput) as info:
        check_lines((line(100), line(100, 100), line(0)))
    assert info.value.field == "lines[1].tax"


def test_claim_totals_and_net() -> None:
    claim = Claim(
        claim_id="c1",
        source="oa",
        external_id="e1",
        version=1,
        applicant_id="u1",
        department_id="d1",
        currency="CNY",
        title="t",
        lines=(line(109000, 9000), line(500)),
    )
    assert claim.total_fen == 109500
    assert claim.tax_fen == 9000
    assert claim.lines[0].net_fen == 100000
