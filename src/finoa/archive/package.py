"""Building a voucher's archive package from what the hub holds: the files and their record.

A package holds the voucher as XML and as PDF, the original invoices as received, the claim,
its approval trail, its attachment references and the metadata XML describing them all.
Everything but the archiving time is derived from stored data, so a package built again
from the same voucher has the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from lxml import etree
from sqlalchemy import Connection, select

from finoa.archive.metadata import NS as METADATA_NS
from finoa.archive.metadata import metadata_xml
from finoa.archive.model import (
    ArchiveNoScheme,
    FileRole,
    PackageFile,
    PackageRecord,
    RecordKind,
    retention_for,
)
from finoa.archive.pdf import PdfFont, pdf_font, voucher_pdf
from finoa.archive.storage import ArchiveStore, sha256_hex, sm3_hex
from finoa.invoices.storage import InvoiceFiles
from finoa.store.tables import (
    accounts,
    approval_tasks,
    attachments,
    claim_lines,
    claims,
    employees,
    invoices,
    voucher_entries,
    vouchers,
)

VOUCHER_NS = "https://finoa.dev/archive/voucher/v1"
INVOICE_MEDIA = {
    "xml": "application/xml",
    "ofd": "application/ofd",
    "pdf": "application/pdf",
    "xbrl": "application/xml",
    "jpeg": "image/jpeg",
    "png": "image/png",
}


class BuildRefused(Exception):
    """The voucher cannot be archived (yet): not posted, or an original is missing."""


@dataclass(frozen=True)
class BuiltPackage:
    record: PackageRecord
    contents: dict[str, bytes]  # file name -> bytes, every file including metadata.xml


@dataclass(frozen=True)
class ArchiveSettings:
    fonds: str
    scheme: ArchiveNoScheme
    font: str
    company: str


def package_id_for(voucher_id: str) -> str:
    return f"AP-{voucher_id}"


_BaseData = tuple[dict[str, str], dict[str, str]]  # employee names, account names


def base_data(conn: Connection) -> _BaseData:
    """Employee and account names: read once for a batch, whose packages all name the same
    people and accounts."""
    names = {r.id: r.name for r in conn.execute(select(employees.c.id, employees.c.name))}
    account_names = {
        r.code: r.name_zh for r in conn.execute(select(accounts.c.code, accounts.c.name_zh))
    }
    return names, account_names


def _file(name: str, role: FileRole, media_type: str, data: bytes) -> PackageFile:
    return PackageFile(name, role, media_type, len(data), sha256_hex(data), sm3_hex(data))


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)


def build_package(
    conn: Connection,
    voucher_id: str,
    config: ArchiveSettings,
    invoice_files: InvoiceFiles,
    store: ArchiveStore,
    archived_at: datetime,
    *,
    base: _BaseData | None = None,
    end_reads: bool = False,
) -> BuiltPackage:
    """The package of a posted voucher (files built, not stored). `base`: employee and
    account names read beforehand; `end_reads`: end `conn`'s transaction once the rows are
    read, so that rendering the files holds no snapshot (a reader holding one keeps SQLite
    from checkpointing its WAL, and every other query slows as the WAL grows)."""
    voucher = conn.execute(select(vouchers).where(vouchers.c.id == voucher_id)).first()
    if voucher is None:
        raise BuildRefused(f"{voucher_id}: no such voucher")
    if voucher.status not in ("posted", "reversed"):
        raise BuildRefused(f"{voucher_id}: not posted (status {voucher.status})")
    claim = conn.execute(select(claims).where(claims.c.id == voucher.claim_id)).one()
    names, account_names = base if base is not None else base_data(conn)
    entries = conn.execute(
        select(voucher_entries)
        .where(voucher_entries.c.voucher_id == voucher_id)
        .order_by(voucher_entries.c.line)
    ).all()
    lines = conn.execute(
        select(claim_lines)
        .where(claim_lines.c.claim_id == claim.id)
        .order_by(claim_lines.c.line_no)
    ).all()
    tasks = conn.execute(
        select(approval_tasks)
        .where(approval_tasks.c.claim_id == claim.id)
        .order_by(approval_tasks.c.created_at, approval_tasks.c.id)
    ).all()
    invoice_rows = conn.execute(
        select(invoices)
        .where(invoices.c.claim_id == claim.id, invoices.c.released_at.is_(None))
        .order_by(invoices.c.line_no, invoices.c.uploaded_at, invoices.c.id)
    ).all()
    attachment_rows = conn.execute(
        select(attachments).where(attachments.c.claim_id == claim.id).order_by(attachments.c.seq)
    ).all()
    if end_reads:
        conn.rollback()

    fiscal_year = int(voucher.period[:4])
    retention = retention_for(RecordKind.VOUCHER, fiscal_year)
    archive_no = config.scheme.format(
        fonds=config.fonds,
        year=fiscal_year,
        period=voucher.period,
        retention=retention.code,
        voucher_no=voucher.voucher_no,
    )
    oa = claim.oa_instance or claim.source
    applicant_name = names.get(claim.applicant_id, claim.applicant_id)
    approvals = [
        {
            "task_id": t.id,
            "step": t.label,
            "role": t.role,
            "assignee_id": t.assignee_id,
            "assignee_name": names.get(t.assignee_id, t.assignee_id),
            "decision": t.status,
            "comment": t.comment,
            "assigned_at": t.created_at.isoformat() if t.created_at else None,
            "decided_at": t.decided_at.isoformat() if t.decided_at else None,
            "oa": oa,
        }
        for t in tasks
    ]
    contents: dict[str, bytes] = {}
    files: list[PackageFile] = []

    def add(name: str, role: FileRole, media_type: str, data: bytes) -> None:
        contents[name] = data
        files.append(_file(name, role, media_type, data))

    add(
        "voucher.xml",
        FileRole.VOUCHER_XML,
        "application/xml",
        _voucher_xml(voucher, entries, account_names, archive_no),
    )
    pdf_view = {
        "archive_no": archive_no,
        "company": config.company,
        "voucher_no": voucher.voucher_no,
        "date": voucher.voucher_date.isoformat(),
        "summary": voucher.summary,
        "entries": [
            {
                "account": e.account_code,
                "name": account_names.get(e.account_code, ""),
                "summary": e.summary,
                "debit_fen": e.debit_fen,
                "credit_fen": e.credit_fen,
            }
            for e in entries
        ],
        "total_fen": voucher.total_fen,
        "preparer": applicant_name,
        "approvals": [
            {
                "at": (a["decided_at"] or "")[:19],
                "role": a["step"],
                "who": a["assignee_name"],
                "action": {"approved": "同意", "rejected": "驳回"}.get(
                    a["decision"], a["decision"]
                ),
                "oa": a["oa"],
            }
            for a in approvals
        ],
        "invoices": [
            {"number": i.number or "", "total_fen": i.total_fen or 0} for i in invoice_rows
        ],
    }
    add(
        "voucher.pdf",
        FileRole.VOUCHER_PDF,
        "application/pdf",
        voucher_pdf(pdf_view, font=config.font),
    )
    add("claim.json", FileRole.CLAIM, "application/json", _json(_claim_view(claim, lines, names)))
    add(
        "approvals.json",
        FileRole.APPROVALS,
        "application/json",
        _json({"oa": oa, "steps": approvals}),
    )
    for n, row in enumerate(invoice_rows, start=1):
        data = invoice_files.get(row.sha256)
        extension = row.source_format if row.source_format in INVOICE_MEDIA else "bin"
        media = INVOICE_MEDIA.get(row.source_format, row.media_type)
        add(f"invoice-{n:02d}-{row.number or row.id}.{extension}", FileRole.INVOICE, media, data)
    add(
        "attachments.json",
        FileRole.ATTACHMENTS,
        "application/json",
        _json(
            [
                {"name": a.name, "sha256": a.sha256, "size": a.size, "content_type": a.content_type}
                for a in attachment_rows
            ]
        ),
    )
    record = PackageRecord(
        package_id=package_id_for(voucher_id),
        voucher_id=voucher_id,
        archive_no=archive_no,
        fonds=config.fonds,
        fiscal_year=fiscal_year,
        period=voucher.period,
        word=voucher.word,
        voucher_number=voucher.number,
        voucher_no=voucher.voucher_no,
        record_kind=RecordKind.VOUCHER.value,
        retention=retention.code,
        retain_until=retention.until,
        total_fen=voucher.total_fen,
        currency=voucher.currency,
        claim_id=claim.id,
        applicant_id=claim.applicant_id,
        applicant_name=applicant_name,
        invoice_numbers=tuple(sorted({i.number for i in invoice_rows if i.number})),
        files=tuple(files),
        metadata_sha256="",
    )
    people = [{"type": "制单", "name": applicant_name, "code": claim.applicant_id}] + [
        {"type": "审批", "name": a["assignee_name"], "code": a["assignee_id"]}
        for a in approvals
        if a["decision"] == "approved"
    ]
    metadata = metadata_xml(
        record,
        title=voucher.summary,
        voucher_date=voucher.voucher_date.isoformat(),
        people=people,
        archived_at=archived_at.isoformat(timespec="seconds"),
        location=type(store).__name__,
    )
    metadata = _with_pdf_font(metadata, pdf_font(config.font))
    contents["metadata.xml"] = metadata
    meta_file = _file("metadata.xml", FileRole.METADATA, "application/xml", metadata)
    record = PackageRecord(
        **{**record.__dict__, "files": (*files, meta_file), "metadata_sha256": meta_file.sha256}
    )
    return BuiltPackage(record, contents)


def _with_pdf_font(metadata: bytes, font: PdfFont) -> bytes:
    """The metadata with the voucher PDF's 格式信息: which font it is written in, embedded or
    not (a PDF naming a font it does not embed needs that font where it is read)."""
    root = etree.fromstring(metadata, etree.XMLParser(remove_blank_text=True))
    role = FileRole.VOUCHER_PDF.value
    for item in root.iterfind(f"{{{METADATA_NS}}}文件实体/{{{METADATA_NS}}}计算机文件/*"):
        if item.get("角色") == role:
            etree.SubElement(
                item, f"{{{METADATA_NS}}}格式信息", 字体嵌入="是" if font.embedded else "否"
            ).text = font.description
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _voucher_xml(
    voucher: Any, entries: Any, account_names: dict[str, str], archive_no: str
) -> bytes:
    def q(name: str) -> str:
        return f"{{{VOUCHER_NS}}}{name}"

    root = etree.Element(q("Voucher"), nsmap={None: VOUCHER_NS})
    for name, value in (
        ("ArchiveNo", archive_no),
        ("VoucherId", voucher.id),
        ("VoucherNo", voucher.voucher_no),
        ("Word", voucher.word),
        ("Number", str(voucher.number)),
        ("Period", voucher.period),
        ("Date", voucher.voucher_date.isoformat()),
        ("Summary", voucher.summary),
        ("Currency", voucher.currency),
        ("TotalFen", str(voucher.total_fen)),
        ("ClaimId", voucher.claim_id),
        ("ErpInstance", voucher.erp_instance or ""),
        ("ErpVoucherNo", voucher.erp_voucher_no or ""),
        ("ReversalOf", voucher.reversal_of or ""),
        ("PostedAt", voucher.posted_at.isoformat() if voucher.posted_at else ""),
    ):
        etree.SubElement(root, q(name)).text = value
    lines = etree.SubElement(root, q("Entries"))
    for e in entries:
        entry = etree.SubElement(lines, q("Entry"), line=str(e.line))
        for name, value in (
            ("AccountCode", e.account_code),
            ("AccountName", account_names.get(e.account_code, "")),
            ("Summary", e.summary),
            ("DebitFen", str(e.debit_fen)),
            ("CreditFen", str(e.credit_fen)),
            ("Department", e.aux_department or ""),
            ("Employee", e.aux_employee or ""),
            ("Project", e.aux_project or ""),
        ):
            etree.SubElement(entry, q(name)).text = value
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _claim_view(claim: Any, lines: Any, names: dict[str, str]) -> dict[str, Any]:
    return {
        "claim_id": claim.id,
        "source": claim.source,
        "external_id": claim.external_id,
        "version": claim.version,
        "title": claim.title,
        "applicant_id": claim.applicant_id,
        "applicant_name": names.get(claim.applicant_id, ""),
        "department_id": claim.department_id,
        "cost_center_id": claim.cost_center_id,
        "project_id": claim.project_id,
        "currency": claim.currency,
        "total_fen": claim.total_fen,
        "tax_fen": claim.tax_fen,
        "submitted_at": claim.submitted_at.isoformat(),
        "lines": [
            {
                "line_no": line.line_no,
                "category": line.category,
                "amount_fen": line.amount_fen,
                "tax_fen": line.tax_fen,
                "expense_date": line.expense_date.isoformat(),
                "description": line.description,
                "invoice_refs": line.invoice_refs,
            }
            for line in lines
        ],
    }
