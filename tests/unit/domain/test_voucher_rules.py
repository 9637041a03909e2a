"""Tests for finoa.domain.voucher with the shipped voucher rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finoa.domain.claim import Claim, ClaimLine, DocumentType, ExpenseCategory
from finoa.domain.errors import InvalidInput, UnbalancedVoucher
from finoa.domain.periods import company_date
from finoa.domain.voucher import (
    Aux,
    VoucherEntry,
    VoucherRules,
    accounting_period,
    build_claim_voucher,
    check_balanced,
    format_voucher_no,
    reversal_of,
)
from finoa.services.context import load_voucher_rules

RULES = load_voucher_rules()
DAY = date(2024, 5, 20)
EXPECTED_ACCOUNTS = {
    ExpenseCategory.TRAVEL: "6602.01",
    ExpenseCategory.LODGING: "6602.02",
    ExpenseCategory.ENTERTAINMENT: "6602.03",
    ExpenseCategory.TRANSPORT: "6602.04",
    ExpenseCategory.OFFICE: "6602.05",
    ExpenseCategory.COMMUNICATION: "6602.06",
    ExpenseCategory.TRAINING: "6602.07",
    ExpenseCategory.MEETING: "6602.08",
}


def make_claim(*lines: ClaimLine, project_id: str | None = "P-1", title: str = "北京出差") -> Claim:
    return Claim(
        claim_id="CLM-1",
        source="generic-oa",
        external_id="OA-1",
        version=1,
        applicant_id="E-7",
        department_id="D-3",
        currency="CNY",
        title=title,
        lines=tuple(lines),
        project_id=project_id,
    )


def cl(category: ExpenseCategory, amount: int, tax: int = 0) -> ClaimLine:
    return ClaimLine(category, amount, tax, date(2024, 5, 1))


def entries_by_account(entries) -> dict[str, VoucherEntry]:
    result = {e.account_code: e for e in entries}
    assert len(result) == len(entries), "an account appears on more than one entry"
    return result


# --- shipped rules --------------------------------------------------------------------------


def test_shipped_rules() -> None:
    assert RULES.input_vat_account == "2221.01.01"
    assert RULES.payable_account == "2241"
    assert RULES.word == "记"
    assert dict(RULES.expense_accounts) == EXPECTED_ACCOUNTS


@pytest.mark.parametrize(("category", "account"), sorted(EXPECTED_ACCOUNTS.items()))
def test_every_category_posts_to_its_6602_account(category: ExpenseCategory, account: str) -> None:
    draft = build_claim_voucher(make_claim(cl(category, 5000)), RULES, DAY)
    assert [(e.account_code, e.debit_fen, e.credit_fen) for e in draft.entries] == [
        (account, 5000, 0),
        ("2241", 0, 5000),
    ]


def test_unknown_category_rule_is_invalid_input() -> None:
    rules = VoucherRules(expense_accounts={ExpenseCategory.TRAVEL: "6602.01"})
    with pytest.raises(InvalidInput) as info:
        build_claim_voucher(make_claim(cl(ExpenseCategory.MEETING, 100)), rules, DAY)
    assert info.value.field == "category"


# --- build_claim_voucher --------------------------------------------------------------------


def test_travel_line_with_vat() -> None:
    claim = make_claim(cl(ExpenseCategory.TRAVEL, 109000, 9000))
    draft = build_claim_voucher(claim, RULES, DAY, applicant_name="张三")
    assert [(e.line, e.account_code, e.debit_fen, e.credit_fen) for e in draft.entries] == [
        (1, "6602.01", 100000, 0),
        (2, "2221.01.01", 9000, 0),
        (3, "2241", 0, 109000),
    ]
    for entry in draft.entries:
        assert entry.aux == Aux(department="D-3", employee="E-7", project="P-1")
        assert entry.summary == "报销 张三 北京出差"
    assert draft.summary == "报销 张三 北京出差"
    assert draft.total_fen == 109000
    assert draft.period == "2024-05"
    assert draft.voucher_date == DAY
    assert draft.word == "记"
    assert draft.currency == "CNY"


def test_summary_falls_back_to_applicant_id() -> None:
    draft = build_claim_voucher(make_claim(cl(ExpenseCategory.OFFICE, 100)), RULES, DAY)
    assert draft.summary == "报销 E-7 北京出差"


def test_aux_project_may_be_absent() -> None:
    draft = build_claim_voucher(
        make_claim(cl(ExpenseCategory.OFFICE, 100), project_id=None), RULES, DAY
    )
    assert all(e.aux == Aux("D-3", "E-7", None) for e in draft.entries)


def test_entertainment_without_tax_has_no_vat_entry() -> None:
    draft = build_claim_voucher(make_claim(cl(ExpenseCategory.ENTERTAINMENT, 88800)), RULES, DAY)
    accounts = [e.account_code for e in draft.entries]
    assert accounts == ["6602.03", "2241"]
    assert "2221.01.01" not in accounts
    assert draft.entries[0].debit_fen == 88800
    assert draft.entries[1].credit_fen == 88800


def test_lines_of_the_same_category_are_merged() -> None:
    claim = make_claim(
        cl(ExpenseCategory.TRAVEL, 109000, 9000),
        cl(ExpenseCategory.LODGING, 53000, 3000),
        cl(ExpenseCategory.TRAVEL, 21800, 1800),
        cl(ExpenseCategory.TRAVEL, 500),
    )
    draft = build_claim_voucher(claim, RULES, DAY)
    by_account = entries_by_account(draft.entries)
    assert set(by_account) == {"6602.01", "6602.02", "2221.01.01", "2241"}
    assert by_account["6602.01"].debit_fen == 100000 + 20000 + 500
    assert by_account["6602.02"].debit_fen == 50000
    assert by_account["2221.01.01"].debit_fen == 9000 + 3000 + 1800
    assert by_account["2241"].credit_fen == claim.total_fen == 184300
    assert [e.line for e in draft.entries] == [1, 2, 3, 4]
    assert draft.entries[-1].account_code == "2241"


def test_summary_is_truncated_to_200_characters() -> None:
    draft = build_claim_voucher(
        make_claim(cl(ExpenseCategory.OFFICE, 100), title="长" * 500), RULES, DAY
    )
    assert len(draft.summary) == 200
    assert all(e.summary == draft.summary for e in draft.entries)


@st.composite
def claim_line(draw: st.DrawFn) -> ClaimLine:
    category = draw(st.sampled_from(list(ExpenseCategory)))
    amount = draw(st.integers(min_value=1, max_value=10**9))
    tax = draw(st.integers(min_value=0, max_value=amount - 1))
    return cl(category, amount, tax)


claim_lines = st.lists(claim_line(), min_size=1, max_size=20)


@settings(max_examples=200)
@given(claim_lines)
def test_generated_voucher_always_balances(lines: list[ClaimLine]) -> None:
    assert all(0 <= ln.tax_fen < ln.amount_fen for ln in lines)
    claim = make_claim(*lines)
    draft = build_claim_voucher(claim, RULES, DAY)
    debits = sum(e.debit_fen for e in draft.entries)
    credits = sum(e.credit_fen for e in draft.entries)
    assert debits == credits == claim.total_fen == draft.total_fen
    for entry in draft.entries:
        assert (entry.debit_fen == 0) != (entry.credit_fen == 0)
        assert entry.debit_fen >= 0 and entry.credit_fen >= 0
    # one entry per distinct expense account, one VAT entry iff there is tax, one credit
    expected_accounts = {RULES.expense_account(ln.category) for ln in lines}
    if any(ln.tax_fen for ln in lines):
        expected_accounts.add(RULES.input_vat_account)
    expected_accounts.add(RULES.payable_account)
    assert [e.account_code for e in draft.entries].count(RULES.payable_account) == 1
    assert set(entries_by_account(draft.entries)) == expected_accounts
    assert [e.line for e in draft.entries] == list(range(1, len(draft.entries) + 1))
    check_balanced(draft.entries)


# --- check_balanced -------------------------------------------------------------------------


def entry(line: int, debit: int = 0, credit: int = 0, account: str = "6602.01") -> VoucherEntry:
    return VoucherEntry(line, account, "s", debit_fen=debit, credit_fen=credit)


def test_check_balanced_accepts_balanced_entries() -> None:
    check_balanced([entry(1, debit=70), entry(2, debit=30), entry(3, credit=100)])


def test_check_balanced_refuses_unbalanced() -> None:
    with pytest.raises(UnbalancedVoucher) as info:
        check_balanced([entry(1, debit=100), entry(2, credit=99)])
    assert info.value.field == "entries"
    assert "100" in info.value.message and "99" in info.value.message


def test_check_balanced_refuses_entry_with_both_sides() -> None:
    with pytest.raises(UnbalancedVoucher) as info:
        check_balanced([entry(1, debit=100), entry(2, debit=50, credit=150), entry(3, credit=0)])
    assert info.value.field == "entries[2]"


def test_check_balanced_refuses_entry_with_neither_side() -> None:
    with pytest.raises(UnbalancedVoucher) as info:
        check_balanced([entry(1, debit=100), entry(2, credit=100), entry(3)])
    assert info.value.field == "entries[3]"


@pytest.mark.parametrize("entries", [[], [entry(1, debit=100)], [entry(1, credit=5)]])
def test_check_balanced_refuses_fewer_than_two_entries(entries: list[VoucherEntry]) -> None:
    with pytest.raises(UnbalancedVoucher) as info:
        check_balanced(entries)
    assert info.value.field == "entries"
    assert "two entries" in info.value.message


def test_check_balanced_accepts_a_generator() -> None:
    check_balanced(e for e in [entry(1, debit=1), entry(2, credit=1)])


# --- numbering and periods ------------------------------------------------------------------


def test_format_voucher_no() -> None:
    assert format_voucher_no("记", 7) == "记-0007"
    assert format_voucher_no("记", 1) == "记-0001"
    assert format_voucher_no("转", 1234) == "转-1234"
    assert format_voucher_no("记", 12345) == "记-12345"


@pytest.mark.parametrize(
    ("day", "period"),
    [(date(2024, 1, 31), "2024-01"), (date(2024, 12, 1), "2024-12"), (date(999, 3, 3), "0999-03")],
)
def test_accounting_period(day: date, period: str) -> None:
    assert accounting_period(day) == period


def test_voucher_dated_in_company_time_at_one_on_1_february_is_february() -> None:
    day = company_date(datetime(2026, 1, 31, 17, 0, tzinfo=UTC), ZoneInfo("Asia/Shanghai"))
    draft = build_claim_voucher(make_claim(cl(ExpenseCategory.OFFICE, 100)), RULES, day)
    assert (draft.period, draft.voucher_date) == ("2026-02", date(2026, 2, 1))
    reversal = reversal_of(draft, "记-0001", day)
    assert (reversal.period, reversal.voucher_date) == ("2026-02", date(2026, 2, 1))


# --- reversal -------------------------------------------------------------------------------


def test_reversal_negates_every_amount_and_keeps_accounts() -> None:
    claim = make_claim(cl(ExpenseCategory.TRAVEL, 109000, 9000), cl(ExpenseCategory.MEETING, 30000))
    original = build_claim_voucher(claim, RULES, DAY)
    reversal = reversal_of(original, "记-0007", date(2024, 7, 2))
    assert len(reversal.entries) == len(original.entries)
    for orig, rev in zip(original.entries, reversal.entries, strict=True):
        assert rev.line == orig.line
        assert rev.account_code == orig.account_code
        assert rev.debit_fen == -orig.debit_fen
        assert rev.credit_fen == -orig.credit_fen
        assert rev.aux == orig.aux
        assert rev.summary == reversal.summary
    assert sum(e.debit_fen for e in reversal.entries) == sum(e.credit_fen for e in reversal.entries)
    assert reversal.total_fen == -original.total_fen == -139000
    assert reversal.summary.startswith("冲销 记-0007 ")
    assert original.summary in reversal.summary
    assert reversal.period == "2024-07"
    assert reversal.voucher_date == date(2024, 7, 2)
    assert reversal.word == original.word
    assert reversal.currency == original.currency
    check_balanced(reversal.entries)


def test_reversal_of_reversal_restores_amounts() -> None:
    original = build_claim_voucher(
        make_claim(cl(ExpenseCategory.TRAINING, 20000, 1000)), RULES, DAY
    )
    twice = reversal_of(reversal_of(original, "记-0001", DAY), "记-0002", DAY)
    assert [(e.account_code, e.debit_fen, e.credit_fen) for e in twice.entries] == [
        (e.account_code, e.debit_fen, e.credit_fen) for e in original.entries
    ]


def test_reversal_refuses_an_unbalanced_draft() -> None:
    original = build_claim_voucher(make_claim(cl(ExpenseCategory.OFFICE, 100)), RULES, DAY)
    broken = replace(
        original, entries=(original.entries[0], replace(original.entries[1], credit_fen=99))
    )
    with pytest.raises(UnbalancedVoucher):
        reversal_of(broken, "记-0003", DAY)


# --- advances and payment requests ----------------------------------------------------------


def test_an_advance_is_owed_by_the_employee() -> None:
    """借款 3,000 元: Dr 1221 其他应收款 with the employee, Cr 1002 (or 2241, as configured)."""
    advance = replace(
        make_claim(cl(ExpenseCategory.TRAVEL, 300_000)), document_type=DocumentType.ADVANCE
    )
    draft = build_claim_voucher(advance, RULES, DAY, "李伟")
    assert [(e.account_code, e.debit_fen, e.credit_fen) for e in draft.entries] == [
        ("1221", 300_000, 0),
        ("1002", 0, 300_000),
    ]
    assert draft.entries[0].aux.employee == "E-7" and draft.summary.startswith("借款 李伟")
    owed = build_claim_voucher(advance, replace(RULES, advance_credit_account="2241"), DAY)
    assert owed.entries[1].account_code == "2241"


def test_a_payment_request_clears_payables_or_books_the_expense() -> None:
    """付款 1,060 元 with 60 元 VAT: Dr 2202 / Cr 1002; or, configured `expense`, the line's
    expense account and input VAT / Cr 1002."""
    payment = replace(
        make_claim(cl(ExpenseCategory.OFFICE, 106_000, 6_000)),
        document_type=DocumentType.PAYMENT_REQUEST,
    )
    payable = build_claim_voucher(payment, RULES, DAY)
    assert [(e.account_code, e.debit_fen, e.credit_fen) for e in payable.entries] == [
        ("2202", 106_000, 0),
        ("1002", 0, 106_000),
    ]
    expense = build_claim_voucher(payment, replace(RULES, payment_debit="expense"), DAY)
    assert [(e.account_code, e.debit_fen, e.credit_fen) for e in expense.entries] == [
        ("6602.05", 100_000, 0),
        ("2221.01.01", 6_000, 0),
        ("1002", 0, 106_000),
    ]
