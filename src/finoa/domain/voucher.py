"""Accounting vouchers (记账凭证): rules, balancing, numbering, reversal (红冲)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from finoa.domain.claim import Claim, DocumentType, ExpenseCategory
from finoa.domain.errors import InvalidInput, UnbalancedVoucher
from finoa.domain.periods import Period

DEFAULT_WORD = "记"


@dataclass(frozen=True, slots=True)
class VoucherRules:
    """Which accounts a claim posts to. Loaded from YAML by the service layer."""

    expense_accounts: Mapping[ExpenseCategory, str]
    input_vat_account: str = "2221.01.01"
    payable_account: str = "2241"
    word: str = DEFAULT_WORD
    # 借款 advances: Dr other receivables (the employee) / Cr the bank or other payables
    advance_account: str = "1221"
    advance_credit_account: str = "1002"
    # 付款申请 payment requests: Dr accounts payable, or each line's expense account / Cr bank
    payment_debit: str = "payable"  # "payable" or "expense"
    trade_payable_account: str = "2202"
    bank_account: str = "1002"

    def expense_account(self, category: ExpenseCategory) -> str:
        try:
            return self.expense_accounts[category]
        except KeyError:
            raise InvalidInput("category", f"no voucher rule for category {category}") from None

    def accounts(self) -> set[str]:
        return {
            *self.expense_accounts.values(),
            self.input_vat_account,
            self.payable_account,
            self.advance_account,
            self.advance_credit_account,
            self.trade_payable_account,
            self.bank_account,
        }


@dataclass(frozen=True, slots=True)
class Aux:
    """Auxiliary accounting dimensions (辅助核算)."""

    department: str | None = None
    employee: str | None = None
    project: str | None = None


@dataclass(frozen=True, slots=True)
class VoucherEntry:
    """One line (分录). Exactly one of debit/credit is non-zero. A red-ink reversal (红字)
    carries negative amounts on the same side as the entry it reverses."""

    line: int
    account_code: str
    summary: str
    debit_fen: int = 0
    credit_fen: int = 0
    aux: Aux = field(default_factory=Aux)


@dataclass(frozen=True, slots=True)
class VoucherDraft:
    period: str  # YYYY-MM
    voucher_date: date
    word: str
    summary: str
    currency: str
    entries: tuple[VoucherEntry, ...]

    @property
    def total_fen(self) -> int:
        return sum(e.debit_fen for e in self.entries)


def accounting_period(day: date) -> str:
    """The period (YYYY-MM) of a voucher dated `day` in the company's calendar."""
    return str(Period.of(day))


def format_voucher_no(word: str, number: int) -> str:
    """记-0001 …: the voucher word and the number within its period."""
    return f"{word}-{number:04d}"


def check_balanced(entries: Iterable[VoucherEntry]) -> None:
    """Raise UnbalancedVoucher unless debits equal credits and each entry has one side."""
    debit = credit = 0
    count = 0
    for entry in entries:
        count += 1
        if (entry.debit_fen == 0) == (entry.credit_fen == 0):
            raise UnbalancedVoucher(
                f"entries[{entry.line}]", "exactly one of debit and credit must be non-zero"
            )
        debit += entry.debit_fen
        credit += entry.credit_fen
    if count < 2:
        raise UnbalancedVoucher("entries", "a voucher needs at least two entries")
    if debit != credit:
        raise UnbalancedVoucher("entries", f"debits {debit} fen != credits {credit} fen")


def build_claim_voucher(
    claim: Claim, rules: VoucherRules, voucher_date: date, applicant_name: str = ""
) -> VoucherDraft:
    """Generate the voucher for an approved claim.

    Per line: debit the category's expense account with the net amount and the input VAT
    account with the deductible tax; one credit to other payables (其他应付款) for the total
    owed to the employee. Lines of the same account and dimensions are merged.
    An advance (借款) debits other receivables (其他应收款, the employee as auxiliary) and
    credits the bank (or other payables, as configured); a payment request (付款申请) debits
    accounts payable (or the lines' expense accounts, as configured) and credits the bank.
    A requisition (事前申请) posts nothing and never comes here.
    """
    aux = Aux(claim.department_id, claim.applicant_id, claim.project_id)
    who = applicant_name or claim.applicant_id
    if claim.document_type is DocumentType.ADVANCE:
        summary = f"借款 {who} {claim.title}".strip()[:200]
        entries = [
            VoucherEntry(1, rules.advance_account, summary, debit_fen=claim.total_fen, aux=aux),
            VoucherEntry(2, rules.advance_credit_account, summary, credit_fen=claim.total_fen),
        ]
    elif claim.document_type is DocumentType.PAYMENT_REQUEST:
        summary = f"付款 {who} {claim.title}".strip()[:200]
        entries = []
        if rules.payment_debit == "expense":
            entries = _expense_debits(claim, rules, summary, aux)
        else:
            entries.append(
                VoucherEntry(
                    1, rules.trade_payable_account, summary, debit_fen=claim.total_fen, aux=aux
                )
            )
        entries.append(
            VoucherEntry(len(entries) + 1, rules.bank_account, summary, credit_fen=claim.total_fen)
        )
    else:
        summary = f"报销 {who} {claim.title}".strip()[:200]
        entries = _expense_debits(claim, rules, summary, aux)
        entries.append(
            VoucherEntry(
                len(entries) + 1,
                rules.payable_account,
                summary,
                credit_fen=claim.total_fen,
                aux=aux,
            )
        )
    draft = VoucherDraft(
        period=accounting_period(voucher_date),
        voucher_date=voucher_date,
        word=rules.word,
        summary=summary,
        currency=claim.currency,
        entries=tuple(entries),
    )
    check_balanced(draft.entries)
    return draft


def _expense_debits(
    claim: Claim, rules: VoucherRules, summary: str, aux: Aux
) -> list[VoucherEntry]:
    """Each line's expense account (net) and the deductible input VAT, merged by account."""
    debits: dict[str, int] = {}
    for line in claim.lines:
        account = rules.expense_account(line.category)
        debits[account] = debits.get(account, 0) + line.net_fen
        if line.tax_fen:
            debits[rules.input_vat_account] = debits.get(rules.input_vat_account, 0) + line.tax_fen
    return [
        VoucherEntry(i + 1, account, summary, debit_fen=amount, aux=aux)
        for i, (account, amount) in enumerate((a, n) for a, n in debits.items() if n)
    ]


def reversal_of(draft: VoucherDraft, original_no: str, reversal_date: date) -> VoucherDraft:
    """The red-ink reversal (红字冲销) of a voucher: same accounts, negated amounts."""
    summary = f"冲销 {original_no} {draft.summary}"[:200]
    entries = tuple(
        VoucherEntry(
            e.line,
            e.account_code,
            summary,
            debit_fen=-e.debit_fen,
            credit_fen=-e.credit_fen,
            aux=e.aux,
        )
        for e in draft.entries
    )
    reversed_draft = VoucherDraft(
        period=accounting_period(reversal_date),
        voucher_date=reversal_date,
        word=draft.word,
        summary=summary,
        currency=draft.currency,
        entries=entries,
    )
    check_balanced(reversed_draft.entries)
    return reversed_draft
