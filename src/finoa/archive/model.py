"""What the archive is made of, without I/O: record kinds and their retention (保管期限),
the 档号 scheme, package files and 四性检测 results."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any


class RecordKind(StrEnum):
    """Kinds of 会计档案 with their minimum retention (会计档案管理办法, 附表1, enterprises)."""

    VOUCHER = "voucher"  # 原始凭证, 记账凭证
    LEDGER = "ledger"  # 总账, 明细账, 日记账, 其他辅助性账簿
    MONTHLY_REPORT = "monthly_report"  # 月度/季度/半年度财务会计报告
    ANNUAL_REPORT = "annual_report"  # 年度财务会计报告
    BANK_STATEMENT = "bank_statement"  # 银行存款余额调节表, 银行对账单
    TAX_RETURN = "tax_return"  # 纳税申报表
    HANDOVER_REGISTER = "handover_register"  # 会计档案移交清册
    CUSTODY_REGISTER = "custody_register"  # 会计档案保管清册, 销毁清册, 鉴定意见书


PERMANENT = "Y"  # 永久
RETENTION_YEARS: dict[RecordKind, int | None] = {
    RecordKind.VOUCHER: 30,
    RecordKind.LEDGER: 30,
    RecordKind.MONTHLY_REPORT: 10,
    RecordKind.ANNUAL_REPORT: None,
    RecordKind.BANK_STATEMENT: 10,
    RecordKind.TAX_RETURN: 10,
    RecordKind.HANDOVER_REGISTER: 30,
    RecordKind.CUSTODY_REGISTER: None,
}


@dataclass(frozen=True)
class Retention:
    code: str  # D30, D10 or Y
    years: int | None  # None: permanent
    starts: date  # the day after the fiscal year ends (第十四条)
    until: date | None  # the last day it must be kept; None: permanent

    @property
    def label(self) -> str:
        return "永久" if self.years is None else f"{self.years}年"


def retention_for(kind: RecordKind, fiscal_year: int) -> Retention:
    """The retention of a record of `fiscal_year` (a calendar year in China): counted from the
    first day after that year ends, so a voucher of 2026-12-31 and one of 2026-01-01 both
    count from 2027-01-01 and a voucher of 2027-01-01 a year later."""
    years = RETENTION_YEARS[kind]
    starts = date(fiscal_year + 1, 1, 1)
    if years is None:
        return Retention(PERMANENT, None, starts, None)
    return Retention(f"D{years}", years, starts, date(fiscal_year + years, 12, 31))


ARCHIVE_NO_FIELDS = ("fonds", "year", "period", "retention", "voucher_no")
_FIELD_PATTERNS = {
    "fonds": r"[0-9A-Za-z]{1,16}",
    "year": r"\d{4}",
    "period": r"(?:0[1-9]|1[0-2])",
    "retention": r"(?:D\d{1,3}|Y)",
    "voucher_no": r"[^\s/\\]{1,24}-\d{4,}",
}


class ArchiveNoScheme:
    """The 档号 template (`archive_no_template`): each field once, any literal text between."""

    def __init__(self, template: str) -> None:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        unknown = sorted(set(names) - set(ARCHIVE_NO_FIELDS))
        if unknown:
            raise ValueError(
                f"archive_no_template: unknown field(s) {', '.join(unknown)}; "
                f"use {', '.join('{' + f + '}' for f in ARCHIVE_NO_FIELDS)}"
            )
        if "voucher_no" not in names or "year" not in names:
            raise ValueError("archive_no_template: needs {year} and {voucher_no} to be unique")
        if len(names) != len(set(names)):
            raise ValueError("archive_no_template: a field may appear only once")
        self.template = template
        pattern = ""
        for literal, name, _, _ in string.Formatter().parse(template):
            pattern += re.escape(literal)
            if name is not None:
                pattern += f"(?P<{name}>{_FIELD_PATTERNS[name]})"
        self.pattern = re.compile(pattern)

    def format(self, *, fonds: str, year: int, period: str, retention: str, voucher_no: str) -> str:
        return self.template.format(
            fonds=fonds,
            year=f"{year:04d}",
            period=period[-2:],
            retention=retention,
            voucher_no=voucher_no,
        )

    def matches(self, archive_no: str) -> bool:
        return self.pattern.fullmatch(archive_no) is not None


class FileRole(StrEnum):
    VOUCHER_XML = "voucher_xml"  # the 记账凭证 as structured XML
    VOUCHER_PDF = "voucher_pdf"  # the same, human-readable
    CLAIM = "claim"  # the 报销单
    APPROVALS = "approvals"  # who decided what, when, in which OA
    INVOICE = "invoice"  # an original invoice, bytes as received
    ATTACHMENTS = "attachments"  # the claim's attachment references
    METADATA = "metadata"  # the DA/T 94-style description of all the others


REQUIRED_ROLES = (
    FileRole.VOUCHER_XML,
    FileRole.VOUCHER_PDF,
    FileRole.CLAIM,
    FileRole.APPROVALS,
    FileRole.METADATA,
)


@dataclass(frozen=True)
class PackageFile:
    name: str
    role: FileRole
    media_type: str
    size: int
    sha256: str
    sm3: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role.value,
            "media_type": self.media_type,
            "size": self.size,
            "sha256": self.sha256,
            "sm3": self.sm3,
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> PackageFile:
        return cls(
            str(value["name"]),
            FileRole(value["role"]),
            str(value["media_type"]),
            int(value["size"]),
            str(value["sha256"]),
            str(value["sm3"]),
        )


@dataclass(frozen=True)
class PackageRecord:
    """A package as the catalog knows it: what its metadata must agree with."""

    package_id: str
    voucher_id: str
    archive_no: str
    fonds: str
    fiscal_year: int
    period: str
    word: str
    voucher_number: int
    voucher_no: str
    record_kind: str
    retention: str
    retain_until: date | None
    total_fen: int
    currency: str
    claim_id: str
    applicant_id: str
    applicant_name: str
    invoice_numbers: tuple[str, ...]
    files: tuple[PackageFile, ...]
    metadata_sha256: str

    def file(self, role: FileRole) -> PackageFile | None:
        return next((f for f in self.files if f.role is role), None)


class Group(StrEnum):
    AUTHENTICITY = "authenticity"  # 真实性
    INTEGRITY = "integrity"  # 完整性
    USABILITY = "usability"  # 可用性
    SECURITY = "security"  # 安全性


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckItem:
    item: str  # e.g. authenticity.fixity
    outcome: Outcome
    detail: str = ""

    @property
    def group(self) -> Group:
        return Group(self.item.split(".", 1)[0])

    def as_dict(self) -> dict[str, str]:
        return {"item": self.item, "outcome": self.outcome.value, "detail": self.detail}


@dataclass(frozen=True)
class CheckReport:
    """四性检测 of one package (or of a period's set, `archive_no` empty)."""

    archive_no: str
    items: tuple[CheckItem, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(i.outcome is not Outcome.FAIL for i in self.items)

    def failed(self) -> list[CheckItem]:
        return [i for i in self.items if i.outcome is Outcome.FAIL]

    def as_dict(self) -> dict[str, Any]:
        return {
            "archive_no": self.archive_no,
            "passed": self.passed,
            "items": [i.as_dict() for i in self.items],
        }
