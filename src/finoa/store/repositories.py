"""Reads and writes of business records, in SQL. Use cases call these inside a unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, and_, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from finoa.domain.claim import Attachment, Claim, ClaimLine, ExpenseCategory
from finoa.store.tables import (
    approval_tasks,
    attachments,
    claim_lines,
    claims,
    voucher_entries,
    voucher_sequences,
    vouchers,
)


def _locked(stmt: Select[Any], conn: Connection) -> Select[Any]:
    return stmt.with_for_update() if conn.dialect.name == "postgresql" else stmt


def claim_row(conn: Connection, claim_id: str, *, lock: bool = False) -> Any:
    stmt = select(claims).where(claims.c.id == claim_id)
    return conn.execute(_locked(stmt, conn) if lock else stmt).first()


def claim_by_business_key(conn: Connection, source: str, external_id: str, version: int) -> Any:
    return conn.execute(
        select(claims).where(
            and_(
                claims.c.source == source,
                claims.c.external_id == external_id,
                claims.c.version == version,
            )
        )
    ).first()


def load_claim(conn: Connection, claim_id: str) -> Claim:
    return claim_from_row(conn, claim_row(conn, claim_id), with_attachments=True)


def claim_from_row(conn: Connection, row: Any, *, with_attachments: bool = False) -> Claim:
    """The domain claim for a claims row, with its lines (and attachments if asked)."""
    claim_id = row.id
    lines = conn.execute(
        select(claim_lines)
        .where(claim_lines.c.claim_id == claim_id)
        .order_by(claim_lines.c.line_no)
    )
    files = (
        conn.execute(
            select(attachments)
            .where(attachments.c.claim_id == claim_id)
            .order_by(attachments.c.seq)
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
    conn: Connection, claim_id: str, status: str, seq: int, now: Any, **extra: Any
) -> None:
    conn.execute(
        update(claims)
        .where(claims.c.id == claim_id)
        .values(status=status, status_seq=seq, updated_at=now, **extra)
    )


def task_row(conn: Connection, task_id: str, *, lock: bool = False) -> Any:
    stmt = select(approval_tasks).where(approval_tasks.c.id == task_id)
    return conn.execute(_locked(stmt, conn) if lock else stmt).first()


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


def next_voucher_number(conn: Connection, period: str, word: str) -> int:
    """Allocate the next voucher number of a period (凭证号), gap-free within a transaction."""
    stmt = (
        update(voucher_sequences)
        .where(voucher_sequences.c.period == period, voucher_sequences.c.word == word)
        .values(last_number=voucher_sequences.c.last_number + 1)
        .returning(voucher_sequences.c.last_number)
    )
    row = conn.execute(stmt).first()
    if row is not None:
        return int(row[0])
    if conn.dialect.name == "postgresql":
        conn.execute(
            pg_insert(voucher_sequences)
            .values(period=period, word=word, last_number=0)
            .on_conflict_do_nothing()
        )
    else:
        conn.execute(
            sqlite_insert(voucher_sequences)
            .values(period=period, word=word, last_number=0)
            .on_conflict_do_nothing()
        )
    return int(conn.execute(stmt).scalar_one())


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
