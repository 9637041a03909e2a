"""Invoices on claims: attach (once across all claims), list, release, and the VAT they
put on the voucher.

An upload is checked in three steps, the first two before any transaction: the file is read
and validated (`check_upload`), verified at the tax platform when one is configured, and
stored write-once under its SHA-256; then the command `invoice_attachment` records it on the
claim line. The duplicate block (防止重复入账) is the partial unique index
`uq_invoices_active_number`: one active row per invoice number across all claims. Two
uploads of one invoice racing on PostgreSQL both pass the first look; the index makes the
later one fail, and its retry finds and names the claim that won. A rejected or withdrawn
claim releases its invoices (`release_claim_invoices`, run with the status change).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from finoa.domain.claim import Claim, ClaimStatus, ExpenseCategory
from finoa.domain.errors import Conflict, InvalidInput, NotFound
from finoa.invoices.model import ReadInvoice
from finoa.invoices.parsing import read_invoice
from finoa.invoices.storage import sha256_hex
from finoa.invoices.validation import check_company_tax_id, validate_invoice
from finoa.invoices.vat import deductible_vat
from finoa.invoices.verification import VerificationState
from finoa.store.prepared import Prepared
from finoa.store.tables import claim_lines, claims, invoices
from finoa.store.uow import UnitOfWork

RACE_RETRIES = 3
ATTACHABLE = frozenset({ClaimStatus.SUBMITTED, ClaimStatus.IN_APPROVAL})
RELEASING = frozenset({ClaimStatus.REJECTED.value, ClaimStatus.WITHDRAWN.value})
_ACTIVE = invoices.c.released_at.is_(None)
ACTIVE_BY_NUMBER = Prepared(
    select(invoices).where(invoices.c.number == bindparam("number"), _ACTIVE)
)
CLAIM_LOCKED = Prepared(
    select(claims.c.id, claims.c.status)
    .where(claims.c.id == bindparam("claim_id"))
    .with_for_update()
)
CLAIM = Prepared(select(claims.c.id, claims.c.status).where(claims.c.id == bindparam("claim_id")))
LINE = Prepared(
    select(claim_lines.c.category, claim_lines.c.amount_fen).where(
        claim_lines.c.claim_id == bindparam("claim_id"),
        claim_lines.c.line_no == bindparam("line_no"),
    )
)
ACTIVE_ON_CLAIM = Prepared(
    select(invoices).where(invoices.c.claim_id == bindparam("claim_id"), _ACTIVE)
)
INSERT_INVOICE = Prepared(insert(invoices))
RELEASE = Prepared(
    update(invoices)
    .where(invoices.c.claim_id == bindparam("b_claim_id"), _ACTIVE)
    .values(released_at=bindparam("b_now"), released_reason=bindparam("b_reason"))
)
VAT_BY_LINE = Prepared(
    select(invoices.c.line_no, func.sum(invoices.c.deductible_vat_fen))
    .where(
        invoices.c.claim_id == bindparam("claim_id"),
        _ACTIVE,
        invoices.c.number.is_not(None),
    )
    .group_by(invoices.c.line_no)
)


class DuplicateInvoice(Conflict):
    """The invoice is already booked on another claim (防止重复入账)."""

    title = "Duplicate invoice"

    def __init__(self, number: str, first_claim_id: str, line_no: int) -> None:
        super().__init__(
            "file",
            f"invoice {number} is already on claim {first_claim_id} (line {line_no}); an "
            "invoice is booked once (防止重复入账)",
        )
        self.number = number
        self.first_claim_id = first_claim_id


class FileTooLarge(InvalidInput):
    status = 413
    title = "Invoice file too large"


@dataclass(frozen=True)
class CheckedUpload:
    """An uploaded file, read and validated: what the command records."""

    read: ReadInvoice
    data: bytes
    sha256: str
    file_name: str


@dataclass(frozen=True)
class AttachResult:
    invoice: dict[str, Any]
    duplicate: bool  # the same file was already on this line: nothing changed


def new_invoice_id() -> str:
    return f"IN{int(time.time() * 1000):011x}{secrets.token_hex(4)}"


def check_upload(
    data: bytes, file_name: str, *, company_tax_id: str, max_bytes: int
) -> CheckedUpload:
    """Read and validate an uploaded invoice; touches no database. Raises naming the field."""
    if len(data) > max_bytes:
        raise FileTooLarge("file", f"larger than the {max_bytes}-byte limit for invoice files")
    read = read_invoice(data)
    if read.invoice is not None:
        check_company_tax_id(company_tax_id)
        validate_invoice(read.invoice, company_tax_id)
    return CheckedUpload(read, data, sha256_hex(data), file_name)


def invoice_attachment(
    upload: CheckedUpload, claim_id: str, line_no: int, verification: VerificationState
) -> Callable[[UnitOfWork], AttachResult]:
    """The command that attaches a checked invoice to a claim line."""

    def command(uow: UnitOfWork) -> AttachResult:
        if uow.db.is_sqlite:  # one writer: no concurrent upload can slip in
            return _attach(uow, upload, claim_id, line_no, verification)
        for _ in range(RACE_RETRIES):
            try:
                with uow.step(uow.actor):
                    return _attach(uow, upload, claim_id, line_no, verification)
            except IntegrityError:
                continue  # a concurrent upload of this number committed first: look again
        return _attach(uow, upload, claim_id, line_no, verification)

    return command


def _attach(
    uow: UnitOfWork,
    upload: CheckedUpload,
    claim_id: str,
    line_no: int,
    verification: VerificationState,
) -> AttachResult:
    conn = uow.conn
    line = attachable_line(conn, claim_id, line_no, lock=not uow.db.is_sqlite)
    on_claim = ACTIVE_ON_CLAIM.all(conn, {"claim_id": claim_id})
    for row in on_claim:
        if row.sha256 == upload.sha256 and row.line_no == line_no:
            return AttachResult(invoice_view(row), duplicate=True)
    invoice = upload.read.invoice
    if invoice is not None:
        first = ACTIVE_BY_NUMBER.first(conn, {"number": invoice.number})
        if first is not None:
            raise DuplicateInvoice(invoice.number, first.claim_id, first.line_no)
        used = sum(row.total_fen or 0 for row in on_claim if row.line_no == line_no)
        if used + invoice.total_fen > line.amount_fen:
            raise InvalidInput(
                "file",
                f"the line's invoices would total {used + invoice.total_fen} fen, more than "
                f"the line amount {line.amount_fen} fen",
            )
        vat, rule = deductible_vat(invoice, ExpenseCategory(line.category))
    else:
        vat, rule = 0, "awaiting manual entry"
        verification = VerificationState.MANUAL_ENTRY
    row = {
        "id": new_invoice_id(),
        "claim_id": claim_id,
        "line_no": line_no,
        "number": invoice.number if invoice else None,
        "kind": invoice.kind.value if invoice else None,
        "source_format": upload.read.source_format.value,
        "issue_date": invoice.issue_date if invoice else None,
        "seller_tax_id": invoice.seller_tax_id[:20] if invoice else None,
        "seller_name": invoice.seller_name[:200] if invoice else None,
        "buyer_tax_id": invoice.buyer_tax_id[:20] if invoice else None,
        "amount_fen": invoice.amount_fen if invoice else None,
        "tax_fen": invoice.tax_fen if invoice else None,
        "total_fen": invoice.total_fen if invoice else None,
        "deductible_vat_fen": vat,
        "vat_rule": rule[:200],
        "manual_entry_reason": upload.read.manual_entry_reason or None,
        "verification": verification.value,
        "file_name": upload.file_name,
        "media_type": upload.read.media_type,
        "data_path": upload.read.data_path[:255],
        "sha256": upload.sha256,
        "size": len(upload.data),
        "uploaded_at": uow.now,
        "uploaded_by": uow.actor[:100],
        "released_at": None,
        "released_reason": None,
    }
    INSERT_INVOICE.run(conn, row)
    uow.audit(
        "invoice.attached",
        "claim",
        claim_id,
        {
            "invoice_id": row["id"],
            "line_no": line_no,
            "number": row["number"],
            "sha256": upload.sha256,
            "deductible_vat_fen": vat,
            "verification": verification.value,
            "manual_entry_reason": row["manual_entry_reason"],
        },
    )
    return AttachResult(invoice_view(row), duplicate=False)


def attachable_line(conn: Connection, claim_id: str, line_no: int, *, lock: bool = False) -> Any:
    """The claim line an invoice is to go on; refused unless the claim is still open.
    `lock` holds the claim row (PostgreSQL) against a decision until the transaction ends."""
    claim = (CLAIM_LOCKED if lock else CLAIM).first(conn, {"claim_id": claim_id})
    if claim is None:
        raise NotFound("claim_id", f"unknown claim {claim_id}")
    if ClaimStatus(claim.status) not in ATTACHABLE:
        raise Conflict(
            "claim_id",
            f"claim {claim_id} is {claim.status}; invoices attach only while it is submitted "
            "or in approval",
        )
    line = LINE.first(conn, {"claim_id": claim_id, "line_no": line_no})
    if line is None:
        raise NotFound("line_no", f"claim {claim_id} has no line {line_no}")
    return line


def release_claim_invoices(conn: Connection, claim_id: str, status: str, now: Any) -> None:
    """Free a claim's invoices for other claims once it is rejected or withdrawn."""
    if status in RELEASING:
        RELEASE.run(conn, {"b_claim_id": claim_id, "b_now": now, "b_reason": f"claim {status}"})


def invoice_vat_by_line(conn: Connection, claim_id: str) -> dict[int, int]:
    """The deductible input VAT of each claim line that has read invoices."""
    return {int(line): int(vat) for line, vat in VAT_BY_LINE.all(conn, {"claim_id": claim_id})}


def with_invoice_vat(claim: Claim, vat_by_line: dict[int, int]) -> Claim:
    """The claim with each invoiced line's tax replaced by its invoices' deductible VAT; the
    lines without read invoices keep the tax they were submitted with."""
    if not vat_by_line:
        return claim
    lines = tuple(
        replace(line, tax_fen=vat_by_line[number]) if number in vat_by_line else line
        for number, line in enumerate(claim.lines, start=1)
    )
    return replace(claim, lines=lines)


def claim_invoices(conn: Connection, claim_id: str) -> list[dict[str, Any]]:
    """Every invoice attached to the claim, active or released, in upload order."""
    if CLAIM.first(conn, {"claim_id": claim_id}) is None:
        raise NotFound("claim_id", f"unknown claim {claim_id}")
    rows = conn.execute(
        select(invoices)
        .where(invoices.c.claim_id == claim_id)
        .order_by(invoices.c.uploaded_at, invoices.c.id)
    )
    return [invoice_view(row) for row in rows]


def invoice_row(conn: Connection, invoice_id: str) -> Any:
    row = conn.execute(select(invoices).where(invoices.c.id == invoice_id)).first()
    if row is None:
        raise NotFound("invoice_id", f"unknown invoice {invoice_id}")
    return row


def invoice_view(row: Any) -> dict[str, Any]:
    data = dict(row) if isinstance(row, dict) else dict(row._mapping)
    return {key: data[key] for key in data if key != "uploaded_by"}
