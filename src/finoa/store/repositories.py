"""Reads and writes of business records, in SQL. Use cases call these inside a unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, func, select, update

from finoa.domain.claim import Attachment, Claim, ClaimLine, DocumentType, ExpenseCategory
from finoa.invoices.service import release_claim_invoices
from finoa.store.prepared import Prepared
from finoa.store.tables import (
    approval_tasks,
    attachments,
    claim_lines,
    claims,
    voucher_entries,
    vouchers,
)

# Statements on the hot path are built once; executing a prebuilt statement with parameters
# skips most of SQLAlchemy's per-call construction work.
_CLAIM_BY_ID = select(claims).where(claims.c.id == bindparam("claim_id"))
CLAIM_BY_ID = Prepared(_CLAIM_BY_ID)
CLAIM_BY_ID_LOCKED = Prepared(_CLAIM_BY_ID.with_for_update())
CLAIM_BY_BUSINESS_KEY = Prepared(
    select(claims.c.id).where(
        and_(
            claims.c.source == bindparam("source"),
            claims.c.external_id == bindparam("external_id"),
            claims.c.version == bindparam("version"),
        )
    )
)
LINES_OF_CLAIM = Prepared(
    select(claim_lines)
    .where(claim_lines.c.claim_id == bindparam("claim_id"))
    .order_by(claim_lines.c.line_no)
)
_TASK_BY_ID = select(approval_tasks).where(approval_tasks.c.id == bindparam("task_id"))
TASK_BY_ID = Prepared(_TASK_BY_ID)
TASK_BY_ID_LOCKED = Prepared(_TASK_BY_ID.with_for_update())
SET_CLAIM_STATUS = Prepared(
    update(claims)
    .where(claims.c.id == bindparam("b_claim_id"))
    .values(
        status=bindparam("b_status"),
        status_seq=bindparam("b_seq"),
        updated_at=bindparam("b_now"),
        reason=func.coalesce(bindparam("b_reason", type_=claims.c.reason.type), claims.c.reason),
        voucher_id=func.coalesce(
            bindparam("b_voucher_id", type_=claims.c.voucher_id.type), claims.c.voucher_id
        ),
    )
)


def _postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def claim_row(conn: Connection, claim_id: str, *, lock: bool = False) -> Any:
    stmt = CLAIM_BY_ID_LOCKED if lock and _postgres(conn) else CLAIM_BY_ID
    return stmt.first(conn, {"claim_id": claim_id})


def claim_id_by_business_key(
    conn: Connection, source: str, external_id: str, version: int
) -> str | None:
    row = CLAIM_BY_BUSINESS_KEY.first(
        conn, {"source": source, "external_id": external_id, "version": version}
    )
    return None if row is None else str(row[0])


def load_claim(conn: Connection, claim_id: str) -> Claim:
    return claim_from_row(conn, claim_row(conn, claim_id), with_attachments=True)


def claim_from_row(conn: Connection, row: Any, *, with_attachments: bool = False) -> Claim:
    """The domain claim for a claims row, with its lines (and attachments if asked)."""
    claim_id = row.id
    lines = LINES_OF_CLAIM.all(conn, {"claim_id": claim_id})
    files: list[Any] = (
        list(
            conn.execute(
                select(attachments)
                .where(attachments.c.claim_id == claim_id)
                .order_by(attachments.c.seq)
            )
        )
        if with_attachments
        else []
    )
    return Claim(
        claim_id=row.id,
        source=row.source,
        external_id=row.external_id,
        version=row.version,
        applicant_id=row.applicant_id,
        department_id=row.department_id,
        currency=row.currency,
        title=row.title,
        cost_center_id=row.cost_center_id,
        project_id=row.project_id,
        document_type=DocumentType(getattr(row, "document_type", None) or "expense_claim"),
        lines=tuple(
            ClaimLine(
                category=ExpenseCategory(line.category),
                amount_fen=line.amount_fen,
                tax_fen=line.tax_fen,
                expense_date=line.expense_date,
                description=line.description,
                invoice_refs=tuple(line.invoice_refs),
            )
            for line in lines
        ),
        attachments=tuple(Attachment(f.name, f.sha256, f.size, f.content_type) for f in files),
    )


def set_claim_status(
    conn: Connection,
    claim_id: str,
    status: str,
    seq: int,
    now: Any,
    *,
    reason: str | None = None,
    voucher_id: str | None = None,
) -> None:
    """Move a claim to `status` (the `seq`-th status change); reason and voucher id, when
    given, are recorded too. A rejected or withdrawn claim releases its invoices."""
    SET_CLAIM_STATUS.run(
        conn,
        {
            "b_claim_id": claim_id,
            "b_status": status,
            "b_seq": seq,
            "b_now": now,
            "b_reason": reason,
            "b_voucher_id": voucher_id,
        },
    )
    release_claim_invoices(conn, claim_id, status, now)


def task_row(conn: Connection, task_id: str, *, lock: bool = False) -> Any:
    stmt = TASK_BY_ID_LOCKED if lock and _postgres(conn) else TASK_BY_ID
    return stmt.first(conn, {"task_id": task_id})


def tasks_for_claims(conn: Connection, claim_ids: Sequence[str]) -> dict[str, list[Any]]:
    result: dict[str, list[Any]] = {cid: [] for cid in claim_ids}
    if not claim_ids:
        return result
    rows = conn.execute(
        select(approval_tasks)
        .where(approval_tasks.c.claim_id.in_(claim_ids))
        .order_by(approval_tasks.c.created_at, approval_tasks.c.id)
    )
    for row in rows:
        result[row.claim_id].append(row)
    return result


def voucher_for_claim(conn: Connection, claim_id: str) -> tuple[Any, list[Any]] | None:
    row = conn.execute(
        select(vouchers)
        .where(vouchers.c.claim_id == claim_id, vouchers.c.reversal_of.is_(None))
        .order_by(vouchers.c.created_at)
    ).first()
    if row is None:
        return None
    return row, voucher_lines(conn, row.id)


def voucher_lines(conn: Connection, voucher_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(voucher_entries)
            .where(voucher_entries.c.voucher_id == voucher_id)
            .order_by(voucher_entries.c.line)
        )
    )


def count(conn: Connection, stmt: Select[Any]) -> int:
    return int(conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())
