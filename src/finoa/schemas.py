"""The published data dictionary (数据字典) and API bodies, as pydantic models.

Field titles carry the Chinese label, descriptions the English meaning; `finoa schema` prints
the JSON Schemas. Money travels as integer fen (`*_fen`) on the way out; on the way in, amounts
are decimal yuan with at most two decimals and are converted to fen exactly.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from finoa.domain.claim import ClaimStatus, DocumentType, ExpenseCategory
from finoa.domain.money import NOT_PLAIN, is_plain_decimal

ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"

# -- input rules for text ----------------------------------------------------------------------
# PostgreSQL refuses NUL in text and lone surrogates cannot be encoded at all, so both are
# refused here, before any database sees them; other control characters have no place in a
# business text either. Free text (descriptions, comments) may hold tabs and line breaks.
_CONTROL_IN_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_IN_PARAGRAPH = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def has_visible(text: str) -> bool:
    """Whether `text` shows anything: not only spaces (NBSP included), zero-width
    characters, byte-order marks and other invisible format characters."""
    return any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in text)


def _check_text(text: str, control: re.Pattern[str]) -> str:
    bad = control.search(text)
    if bad is not None:
        raise ValueError(f"contains the control character U+{ord(bad.group()):04X}")
    if text and not has_visible(text):
        raise ValueError("is empty once invisible characters are removed")
    return text


def line_text(text: str) -> str:
    """A single-line text: no control characters, and not only invisible characters."""
    return _check_text(text, _CONTROL_IN_LINE)


def paragraph_text(text: str) -> str:
    """Free text: tabs and line breaks allowed, other control characters not."""
    return _check_text(text, _CONTROL_IN_PARAGRAPH)


def file_name(name: str) -> str:
    """An attachment's bare file name: no directories, nothing that climbs out of one."""
    if "/" in name or "\\" in name:
        raise ValueError("must be a bare file name without / or \\")
    if name.strip(".") == "":
        raise ValueError("must be a file name, not . or ..")
    return name


def plain_amount(value: Any) -> Any:
    """Amounts in yuan arrive as plain decimals: "1280.50" or a JSON number without exponent."""
    if isinstance(value, bool):
        raise ValueError("must be a decimal number, not true or false")
    if isinstance(value, str) and not is_plain_decimal(value):
        raise ValueError(NOT_PLAIN)
    if not isinstance(value, str | int | float | Decimal):
        raise ValueError(NOT_PLAIN)
    return value


Line = Annotated[str, AfterValidator(line_text)]
Paragraph = Annotated[str, AfterValidator(paragraph_text)]
FileName = Annotated[str, AfterValidator(line_text), AfterValidator(file_name)]
CANONICAL = {"canonical": True}  # serialization context: the form content digests are taken of


def amount_json(value: Decimal, info: SerializationInfo) -> str:
    """An amount in JSON: as received ("100.0"), or, under the CANONICAL context, in one form
    for every way of writing the same number ("100", 100, "100.00" → "100")."""
    if info.context is not None and info.context.get("canonical"):
        return format(value.normalize(), "f")
    return str(value)


Yuan = Annotated[
    Decimal, BeforeValidator(plain_amount), PlainSerializer(amount_json, when_used="json")
]
InvoiceRef = Annotated[
    str, Field(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z][0-9A-Za-z-]*$")
]
MIME_TYPE = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$"


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Stored times are UTC; some databases hand them back without a zone.
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class AttachmentIn(_In):
    name: FileName = Field(
        min_length=1, max_length=255, title="附件名称", description="File name, without directories"
    )
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", title="哈希值", description="SHA-256 of the file, hex"
    )
    size: int = Field(ge=0, le=100 * 1024 * 1024, title="大小", description="Size in bytes")
    content_type: str = Field(
        default="application/octet-stream",
        max_length=100,
        pattern=MIME_TYPE,
        title="类型",
        description="MIME type",
    )


class ClaimLineIn(_In):
    category: ExpenseCategory = Field(title="费用类别", description="Expense category")
    amount: Yuan = Field(
        gt=0,
        max_digits=15,
        decimal_places=2,
        title="金额",
        description="Gross amount in yuan, at most 2 decimals, tax included",
    )
    tax: Yuan = Field(
        default=Decimal(0),
        ge=0,
        max_digits=15,
        decimal_places=2,
        title="可抵扣进项税额",
        description="Deductible input VAT included in the amount, in yuan",
    )
    expense_date: date = Field(title="费用日期", description="Date the expense was incurred")
    description: Paragraph = Field(
        default="", max_length=500, title="说明", description="Description"
    )
    invoice_refs: list[InvoiceRef] = Field(
        default_factory=list,
        max_length=20,
        title="发票号码",
        description="Invoice numbers (数电票 20 digits, or code+number)",
    )
    city: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^\S(.*\S)?$",
        title="城市",
        description="Where the expense was incurred; the expense policy's city tier follows it",
    )
    nights: int | None = Field(
        default=None, ge=1, le=366, title="住宿晚数", description="Nights of a lodging line"
    )
    days: int | None = Field(
        default=None,
        ge=1,
        le=366,
        title="天数",
        description="Days a per-day line covers, e.g. the per-diem allowance (出差补助)",
    )


class ClaimSubmission(_In):
    """An expense claim as submitted by an OA system or a person (报销单)."""

    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=ID,
        title="外部单号",
        description="The claim's id in the submitting system",
    )
    version: int = Field(default=1, ge=1, le=1000, title="版本", description="Document version")
    applicant_id: Line = Field(
        min_length=1, max_length=32, title="申请人", description="Employee id"
    )
    department_id: Line = Field(
        min_length=1, max_length=32, title="部门", description="Org unit charged"
    )
    cost_center_id: Line | None = Field(
        default=None, max_length=32, title="成本中心", description="Cost center"
    )
    project_id: Line | None = Field(
        default=None, max_length=32, title="项目", description="Project"
    )
    currency: Literal["CNY"] = Field(default="CNY", title="币种", description="ISO 4217 currency")
    title: Line = Field(min_length=1, max_length=200, title="事由", description="Purpose")
    lines: list[ClaimLineIn] = Field(
        min_length=1, max_length=200, title="费用明细", description="Expense lines"
    )
    attachments: list[AttachmentIn] = Field(
        default_factory=list, max_length=50, title="附件", description="Attachments"
    )
    document_type: DocumentType | None = Field(
        default=None,
        title="单据类型",
        description="expense_claim (the default), advance (借款), payment_request (付款申请) "
        "or requisition (事前申请); selects the approval process",
    )
    requisition_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        pattern=ID,
        title="事前申请单号",
        description="The approved requisition (its claim id) this spending draws on",
    )

    @model_serializer(mode="wrap")
    def _without_unset_document(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Submissions without these fields keep the digest they had before the fields existed.
        data: dict[str, Any] = handler(self)
        for name in ("document_type", "requisition_id"):
            if data.get(name) is None:
                data.pop(name, None)
        return data

    @property
    def kind(self) -> DocumentType:
        """The document type, defaulted."""
        return self.document_type or DocumentType.EXPENSE_CLAIM


class DecisionIn(_In):
    """A decision on an approval task (审批意见): approve, reject, or one of the patterns --
    transfer (转交) or add a signer (加签) naming `target_id`, return (退回) to the applicant or
    to an earlier step (`to_step`), withdraw (撤回, by the applicant as `approver_id`)."""

    approver_id: Line = Field(
        min_length=1, max_length=32, title="审批人", description="Employee id"
    )
    decision: Literal["approve", "reject", "transfer", "add_signer", "return", "withdraw"] = Field(
        title="审批结果", description="approve / reject / transfer / add_signer / return / withdraw"
    )
    comment: Paragraph | None = Field(
        default=None, max_length=1000, title="意见", description="Comment"
    )
    target_id: Line | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        title="转交/加签给",
        description="transfer / add_signer: the employee the task goes to or who is added",
    )
    position: Literal["before", "after"] | None = Field(
        default=None,
        title="加签位置",
        description="add_signer: the added person decides before (default) or after you",
    )
    to_step: Line | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        title="退回到",
        description="return: the earlier step (its BPMN id, e.g. manager_approval);"
        " absent: back to the applicant",
    )

    @model_validator(mode="after")
    def _reason_for_rejection(self) -> DecisionIn:
        if self.decision in ("reject", "return") and not (
            self.comment and has_visible(self.comment)
        ):
            what = "rejection" if self.decision == "reject" else "return"
            raise ValueError(f"comment: a {what} needs a reason")
        if self.decision in ("transfer", "add_signer") and self.target_id is None:
            raise ValueError(f"target_id: {self.decision} names the employee it goes to")
        if self.decision not in ("transfer", "add_signer") and self.target_id is not None:
            raise ValueError("target_id: only transfer and add_signer name an employee")
        if self.decision != "add_signer" and self.position is not None:
            raise ValueError("position: only add_signer has a position")
        if self.decision != "return" and self.to_step is not None:
            raise ValueError("to_step: only return goes back to a step")
        return self

    @property
    def target(self) -> str | None:
        """Who a transfer or 加签 names, or the step a return goes back to."""
        return self.target_id if self.target_id is not None else self.to_step


class DecisionResult(BaseModel):
    """What a decision did: the task, its claim and the claim's status now."""

    task_id: str
    claim_id: str
    claim_status: ClaimStatus


class TokenOut(BaseModel):
    """An OAuth 2.0 access token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds the token stays valid")
    scope: str = Field(description="The granted scopes, space-separated")


class ClaimLineOut(_Out):
    line_no: int = Field(title="行号")
    category: ExpenseCategory = Field(title="费用类别")
    amount_fen: int = Field(title="金额(分)")
    tax_fen: int = Field(title="进项税额(分)")
    expense_date: date = Field(title="费用日期")
    description: str = Field(title="说明")
    invoice_refs: list[str] = Field(title="发票号码")


class AttachmentOut(_Out):
    name: str = Field(title="附件名称")
    sha256: str = Field(title="哈希值")
    size: int = Field(title="大小")
    content_type: str = Field(title="类型")


class ApprovalTaskOut(_Out):
    """An approval task (审批任务)."""

    id: str = Field(title="任务号")
    claim_id: str = Field(title="报销单号")
    role: str = Field(title="审批环节", description="manager / finance_director / cfo")
    label: str = Field(title="环节名称")
    assignee_id: str = Field(title="审批人")
    fallback_reason: str | None = Field(
        default=None,
        title="兜底审批原因",
        description="set when nobody holds the step's role and the fallback approver has it",
    )
    status: Literal[
        "pending",
        "approved",
        "rejected",
        "withdrawn",
        "transferred",
        "signer_added",
        "returned",
        "escalated",
    ] = Field(
        title="状态",
        description="pending; approved / rejected; transferred (转交); signer_added (加签 before:"
        " the added person decides first); returned (退回); escalated (no decision in time);"
        " withdrawn (no longer waited for)",
    )
    comment: str | None = Field(default=None, title="意见")
    created_at: UtcDatetime = Field(title="创建时间")
    decided_at: UtcDatetime | None = Field(default=None, title="审批时间")
    step_id: str | None = Field(default=None, title="审批节点", description="The workflow step")
    round: int | None = Field(default=None, title="轮次", description="Submission round (1 first)")
    on_behalf_of: str | None = Field(
        default=None, title="委托人", description="The delegator a delegate decides for (委托)"
    )


class VoucherEntryOut(_Out):
    line: int = Field(title="分录号")
    account_code: str = Field(title="科目编码")
    summary: str = Field(title="摘要")
    debit_fen: int = Field(title="借方金额(分)")
    credit_fen: int = Field(title="贷方金额(分)")
    aux_department: str | None = Field(default=None, title="辅助核算-部门")
    aux_employee: str | None = Field(default=None, title="辅助核算-职员")
    aux_project: str | None = Field(default=None, title="辅助核算-项目")


class VoucherOut(_Out):
    """An accounting voucher (记账凭证)."""

    id: str = Field(title="凭证ID")
    claim_id: str = Field(title="报销单号")
    period: str = Field(title="会计期间", description="YYYY-MM")
    voucher_no: str = Field(title="凭证号", description="Word and number in the period, 记-0001")
    voucher_date: date = Field(title="凭证日期")
    summary: str = Field(title="摘要")
    currency: str = Field(title="币种")
    total_fen: int = Field(title="金额(分)")
    status: Literal["posting", "posted", "reversed"] = Field(title="状态")
    erp_voucher_no: str | None = Field(default=None, title="ERP凭证号")
    reversal_of: str | None = Field(default=None, title="冲销凭证")
    entries: list[VoucherEntryOut] = Field(title="分录")


class PolicyLineCheckOut(_Out):
    """One claim line weighed against one expense-policy rule."""

    line: int = Field(title="行", description="index of the line in `lines`, from 0")
    rule: str = Field(title="规则")
    label: str = Field(title="规则名称")
    policy_version: str = Field(title="标准版本")
    grade: str = Field(title="职级")
    tier: str = Field(title="城市等级")
    limit_fen: int = Field(title="标准(分)", description="the line's limit, e.g. nights × rate")
    amount_fen: int = Field(title="金额(分)")
    action: Literal["flag", "block"] = Field(title="超标处理")


class PolicyCheckOut(_Out):
    """What the expense policy said of a claim at submission (费用标准检查)."""

    versions: list[str] = Field(title="标准版本", description="the policy versions applied")
    checks: list[PolicyLineCheckOut] = Field(title="检查", description="every line and its limit")
    breaches: list[PolicyLineCheckOut] = Field(title="超标", description="lines above their limit")


class ClaimOut(_Out):
    """An expense claim as finoa holds it (报销单)."""

    id: str = Field(title="报销单号")
    source: str = Field(title="来源系统")
    external_id: str = Field(title="外部单号")
    version: int = Field(title="版本")
    applicant_id: str = Field(title="申请人")
    department_id: str = Field(title="部门")
    cost_center_id: str | None = Field(default=None, title="成本中心")
    project_id: str | None = Field(default=None, title="项目")
    document_type: Annotated[
        DocumentType, BeforeValidator(lambda v: v or DocumentType.EXPENSE_CLAIM.value)
    ] = Field(default=DocumentType.EXPENSE_CLAIM, title="单据类型")
    requisition_id: str | None = Field(default=None, title="事前申请单号")
    currency: str = Field(title="币种")
    title: str = Field(title="事由")
    total_fen: int = Field(title="金额(分)")
    tax_fen: int = Field(title="进项税额(分)")
    status: ClaimStatus = Field(title="状态")
    reason: str | None = Field(default=None, title="驳回原因")
    submitted_at: UtcDatetime = Field(title="提交时间")
    updated_at: UtcDatetime = Field(title="更新时间")
    lines: list[ClaimLineOut] = Field(default_factory=list, title="费用明细")
    attachments: list[AttachmentOut] = Field(default_factory=list, title="附件")
    tasks: list[ApprovalTaskOut] = Field(default_factory=list, title="审批任务")
    voucher: VoucherOut | None = Field(default=None, title="凭证")
    budget_status: Literal["within", "exceeded"] | None = Field(
        default=None,
        title="预算",
        description="what the budgets said at submission: `exceeded` when a warn-mode budget "
        "went below zero; null when no budget applies",
    )
    policy_check: PolicyCheckOut | None = Field(
        default=None,
        title="费用标准",
        description="what the expense policy said at submission; null when no rule applies",
    )


class ClaimPage(BaseModel):
    items: list[ClaimOut]
    total: int
    page: int
    page_size: int


class OrgUnit(_Out):
    """An org unit (部门)."""

    id: str = Field(title="部门编码")
    name: str = Field(title="部门名称")
    parent_id: str | None = Field(default=None, title="上级部门")
    manager_id: str | None = Field(default=None, title="负责人")


class EmployeeOut(_Out):
    """An employee (员工)."""

    id: str = Field(title="工号")
    name: str = Field(title="姓名")
    department_id: str = Field(title="部门")
    manager_id: str | None = Field(default=None, title="直属上级")
    role: Literal["employee", "finance_director", "cfo"] = Field(title="角色")
    email: str | None = Field(default=None, title="邮箱")
    active: bool = Field(title="在职")


class CostCenter(_Out):
    id: str = Field(title="成本中心编码")
    name: str = Field(title="成本中心名称")
    department_id: str | None = Field(default=None, title="所属部门")
    owner_id: str | None = Field(default=None, title="负责人")


class Project(_Out):
    id: str = Field(title="项目编码")
    name: str = Field(title="项目名称")


class Account(_Out):
    """An account in the chart of accounts (会计科目)."""

    code: str = Field(title="科目编码")
    name_zh: str = Field(title="科目名称")
    name_en: str = Field(title="English name")
    balance_side: Literal["debit", "credit"] = Field(title="余额方向")


class AuditEventOut(_Out):
    """One link of the audit chain (审计事件)."""

    seq: int = Field(title="序号")
    at: UtcDatetime = Field(title="时间")
    actor: str = Field(title="操作人")
    action: str = Field(title="动作")
    object_type: str = Field(title="对象类型")
    object_id: str = Field(title="对象")
    data_digest: str = Field(title="数据摘要", description="SHA-256 of the canonical event data")
    prev_hash: str = Field(title="前一哈希")
    hash: str = Field(title="哈希值")


PUBLIC_TYPES: dict[str, type[BaseModel]] = {
    "ExpenseClaimSubmission": ClaimSubmission,
    "ExpenseClaim": ClaimOut,
    "ApprovalDecision": DecisionIn,
    "ApprovalTask": ApprovalTaskOut,
    "Voucher": VoucherOut,
    "Employee": EmployeeOut,
    "OrgUnit": OrgUnit,
    "CostCenter": CostCenter,
    "Project": Project,
    "Account": Account,
    "AuditEvent": AuditEventOut,
}


def data_dictionary() -> dict[str, Any]:
    """JSON Schemas of every public type, keyed by name."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "finoa data dictionary (数据字典)",
        "money": "Amounts are integer fen (分) with an ISO 4217 currency; never floats.",
        "types": {name: model.model_json_schema() for name, model in PUBLIC_TYPES.items()},
    }
