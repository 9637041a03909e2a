"""Tests for finoa.domain.claim: the status machine, document versions and line checks."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from finoa.domain.claim import (
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    LIVE_STATUSES,
    SUPERSEDABLE_STATUSES,
    Claim,
    ClaimLine,
    ClaimStatus,
    DocumentClaim,
    ExpenseCategory,
    check_lines,
    check_new_version,
    superseded_reason,
    transition,
)
from finoa.domain.errors import Conflict, InvalidInput

S = ClaimStatus

ALLOWED = {
    (S.SUBMITTED, S.IN_APPROVAL),
    (S.IN_APPROVAL, S.APPROVED),
    (S.IN_APPROVAL, S.REJECTED),
    (S.APPROVED, S.POSTED),
    (S.SUBMITTED, S.WITHDRAWN),
    (S.IN_APPROVAL, S.WITHDRAWN),
    (S.IN_APPROVAL, S.RETURNED),  # 退回 to the applicant
    (S.RETURNED, S.IN_APPROVAL),  # resubmitted
    (S.RETURNED, S.WITHDRAWN),
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
    assert {S.REJECTED, S.POSTED, S.WITHDRAWN} == FINAL_STATUSES
    for status in FINAL_STATUSES:
        assert ALLOWED_TRANSITIONS[status] == frozenset()
    assert set(ALLOWED_TRANSITIONS) == set(S)


def test_only_claims_not_yet_approved_can_be_superseded() -> None:
    assert {S.SUBMITTED, S.IN_APPROVAL, S.RETURNED} == SUPERSEDABLE_STATUSES
    assert SUPERSEDABLE_STATUSES <= LIVE_STATUSES
    assert not LIVE_STATUSES & {S.REJECTED, S.WITHDRAWN}
    for status in SUPERSEDABLE_STATUSES:
        assert S.WITHDRAWN in ALLOWED_TRANSITIONS[status]
    for status in set(S) - SUPERSEDABLE_STATUSES:
        assert S.WITHDRAWN not in ALLOWED_TRANSITIONS[status]


def test_superseded_reason_names_the_version_and_the_claim() -> None:
    assert superseded_reason(3, "CL9") == "superseded by version 3 (CL9)"


def test_first_version_of_a_document_supersedes_nothing() -> None:
    assert check_new_version(1, None, []) == ()


def test_higher_version_supersedes_the_open_claim() -> None:
    for status in (S.SUBMITTED, S.IN_APPROVAL):
        current = DocumentClaim("CL1", 1, status)
        assert check_new_version(2, 1, [current]) == (current,)


def test_higher_version_after_a_rejected_or_withdrawn_claim_supersedes_nothing() -> None:
    # the latest version is 2 but no claim of the document is live any more
    assert check_new_version(3, 2, []) == ()


@pytest.mark.parametrize(("version", "latest"), [(1, 2), (2, 2), (1, 5)])
def test_version_not_above_the_latest_is_refused_stating_the_current_version(
    version: int, latest: int
) -> None:
    with pytest.raises(Conflict) as info:
        check_new_version(version, latest, [DocumentClaim("CL2", latest, S.IN_APPROVAL)])
    assert info.value.field == "version"
    assert info.value.status == 409
    assert f"version {version} is not newer" in info.value.message
    assert f"the current version is {latest}" in info.value.message


@pytest.mark.parametrize("status", [S.APPROVED, S.POSTED])
def test_higher_version_of_a_booked_claim_is_refused_naming_state_and_voucher(
    status: ClaimStatus,
) -> None:
    booked = DocumentClaim("CL1", 1, status, voucher_no="记-0007")
    with pytest.raises(Conflict) as info:
        check_new_version(2, 1, [booked])
    assert info.value.field == "version"
    message = info.value.message
    assert f"already {status}" in message
    assert "CL1" in message and "记-0007" in message and "红冲" in message


def test_any_booked_live_claim_refuses_the_new_version() -> None:
    # claims recorded before versions were checked may leave two live claims of a document
    live = [DocumentClaim("CL1", 1, S.IN_APPROVAL), DocumentClaim("CL2", 2, S.POSTED, "记-0002")]
    with pytest.raises(Conflict) as info:
        check_new_version(3, 2, live)
    assert "CL2" in info.value.message and "记-0002" in info.value.message


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
