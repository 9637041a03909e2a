"""Expense claims (报销单): categories, lines, and the status machine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from finoa.domain.errors import Conflict, InvalidInput


class ExpenseCategory(StrEnum):
    """Expense categories; each maps to a 6602 sub-account in the voucher rules."""

    TRAVEL = "travel"  # 差旅费
    LODGING = "lodging"  # 住宿费
    ENTERTAINMENT = "entertainment"  # 业务招待费
    TRANSPORT = "transport"  # 交通费
    OFFICE = "office"  # 办公费
    COMMUNICATION = "communication"  # 通讯费
    TRAINING = "training"  # 培训费
    MEETING = "meeting"  # 会议费


CATEGORY_LABELS: dict[ExpenseCategory, str] = {
    ExpenseCategory.TRAVEL: "差旅费",
    ExpenseCategory.LODGING: "住宿费",
    ExpenseCategory.ENTERTAINMENT: "业务招待费",
    ExpenseCategory.TRANSPORT: "交通费",
    ExpenseCategory.OFFICE: "办公费",
    ExpenseCategory.COMMUNICATION: "通讯费",
    ExpenseCategory.TRAINING: "培训费",
    ExpenseCategory.MEETING: "会议费",
}


class DocumentType(StrEnum):
    """What a submission asks for; each has its own approval process and voucher rule."""

    EXPENSE_CLAIM = "expense_claim"  # 报销单
    ADVANCE = "advance"  # 借款单: an advance or loan to the employee
    PAYMENT_REQUEST = "payment_request"  # 付款申请
    REQUISITION = "requisition"  # 事前申请: approves spending ahead; posts nothing


class ClaimStatus(StrEnum):
    SUBMITTED = "submitted"  # 已提交
    IN_APPROVAL = "in_approval"  # 审批中
    APPROVED = "approved"  # 已审批
    REJECTED = "rejected"  # 已驳回
    POSTED = "posted"  # 已记账 (voucher in the ERP)
    WITHDRAWN = "withdrawn"  # 已撤回 (by the applicant, or superseded by a later version)
    RETURNED = "returned"  # 已退回: sent back to the applicant, who may resubmit it


STATUS_LABELS: dict[ClaimStatus, str] = {
    ClaimStatus.SUBMITTED: "已提交",
    ClaimStatus.IN_APPROVAL: "审批中",
    ClaimStatus.APPROVED: "已审批",
    ClaimStatus.REJECTED: "已驳回",
    ClaimStatus.POSTED: "已记账",
    ClaimStatus.WITHDRAWN: "已撤回",
    ClaimStatus.RETURNED: "已退回",
}

FINAL_STATUSES = frozenset({ClaimStatus.REJECTED, ClaimStatus.POSTED, ClaimStatus.WITHDRAWN})

# A claim in one of these is its document's current claim; a new version may replace it
# only while it is still open (not yet approved).
LIVE_STATUSES = frozenset(
    {
        ClaimStatus.SUBMITTED,
        ClaimStatus.IN_APPROVAL,
        ClaimStatus.RETURNED,
        ClaimStatus.APPROVED,
        ClaimStatus.POSTED,
    }
)
SUPERSEDABLE_STATUSES = frozenset(
    {ClaimStatus.SUBMITTED, ClaimStatus.IN_APPROVAL, ClaimStatus.RETURNED}
)

ALLOWED_TRANSITIONS: dict[ClaimStatus, frozenset[ClaimStatus]] = {
    ClaimStatus.SUBMITTED: frozenset({ClaimStatus.IN_APPROVAL, ClaimStatus.WITHDRAWN}),
    ClaimStatus.IN_APPROVAL: frozenset(
        {ClaimStatus.APPROVED, ClaimStatus.REJECTED, ClaimStatus.WITHDRAWN, ClaimStatus.RETURNED}
    ),
    ClaimStatus.RETURNED: frozenset({ClaimStatus.IN_APPROVAL, ClaimStatus.WITHDRAWN}),
    ClaimStatus.APPROVED: frozenset({ClaimStatus.POSTED}),
    ClaimStatus.REJECTED: frozenset(),
    ClaimStatus.POSTED: frozenset(),
    ClaimStatus.WITHDRAWN: frozenset(),
}


def transition(current: ClaimStatus, new: ClaimStatus) -> ClaimStatus:
    """Return `new` if the claim may move there from `current`, else raise Conflict."""
    if new not in ALLOWED_TRANSITIONS[current]:
        raise Conflict("status", f"a claim cannot go from {current} to {new}")
    return new


@dataclass(frozen=True, slots=True)
class DocumentClaim:
    """A claim already recorded for an external document: what a new version is weighed
    against."""

    claim_id: str
    version: int
    status: ClaimStatus
    voucher_no: str | None = None


def superseded_reason(version: int, claim_id: str) -> str:
    """The reason a withdrawn claim carries: which version replaced it."""
    return f"superseded by version {version} ({claim_id})"


def check_new_version(
    version: int, latest_version: int | None, live: Sequence[DocumentClaim]
) -> tuple[DocumentClaim, ...]:
    """Decide whether `version` of a document may become its claim.

    `latest_version` is the highest version recorded for the document (any status), and
    `live` its live claims (normally at most one). Returns the claims the new version
    supersedes, to be withdrawn. Raises Conflict on `version` when the version is not newer
    than the latest one, or when a live claim is already approved or posted: a booked claim
    is corrected by reversing its voucher (红冲), not by a new version.
    """
    if latest_version is not None and version <= latest_version:
        raise Conflict(
            "version",
            f"version {version} is not newer than the document's latest: the current version "
            f"is {latest_version}, send a higher version",
        )
    for current in live:
        if current.status not in SUPERSEDABLE_STATUSES:
            voucher = f" with voucher {current.voucher_no}" if current.voucher_no else ""
            raise Conflict(
                "version",
                f"version {current.version} of this document (claim {current.claim_id}) is "
                f"already {current.status}{voucher}; a new version cannot replace it, "
                "corrections go through a reversal (红冲) of its voucher",
            )
    return tuple(live)


@dataclass(frozen=True, slots=True)
class ClaimLine:
    """One expense line. `amount_fen` is the gross amount paid; `tax_fen` the deductible
    input VAT included in it (0 when the invoice allows no deduction)."""

    category: ExpenseCategory
    amount_fen: int
    tax_fen: int
    expense_date: date
    description: str = ""
    invoice_refs: tuple[str, ...] = ()

    @property
    def net_fen(self) -> int:
        return self.amount_fen - self.tax_fen


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    sha256: str
    size: int
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Claim:
    """The canonical expense claim, as finoa holds it."""

    claim_id: str
    source: str
    external_id: str
    version: int
    applicant_id: str
    department_id: str
    currency: str
    title: str
    lines: tuple[ClaimLine, ...]
    cost_center_id: str | None = None
    project_id: str | None = None
    attachments: tuple[Attachment, ...] = field(default=())
    document_type: DocumentType = DocumentType.EXPENSE_CLAIM

    @property
    def total_fen(self) -> int:
        return sum(line.amount_fen for line in self.lines)

    @property
    def tax_fen(self) -> int:
        return sum(line.tax_fen for line in self.lines)


def check_lines(lines: tuple[ClaimLine, ...]) -> None:
    """Business checks beyond types: positive amounts, tax within amount."""
    if not lines:
        raise InvalidInput("lines", "a claim needs at least one line")
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        if line.amount_fen <= 0:
            raise InvalidInput(f"{where}.amount", "must be greater than zero")
        if line.tax_fen < 0:
            raise InvalidInput(f"{where}.tax", "must not be negative")
        if line.tax_fen >= line.amount_fen:
            raise InvalidInput(f"{where}.tax", "must be less than the line amount")
