"""Read-side queries: claims with their tasks and voucher, dead letters and held messages,
loop statistics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import String, cast, func, literal, select
from sqlalchemy.orm import aliased

from finoa.domain.errors import NotFound
from finoa.schemas import (
    ApprovalTaskOut,
    AttachmentOut,
    ClaimLineOut,
    ClaimOut,
    VoucherEntryOut,
    VoucherOut,
)
from finoa.store import repositories as repo
from finoa.store.tables import attachments, claim_lines, claims, outbox
from finoa.store.uow import Database


@dataclass(frozen=True)
class ClaimFilter:
    status: str | None = None
    applicant_id: str | None = None
    department_id: str | None = None
    submitted_from: date | None = None
    submitted_to: date | None = None


def get_claim(db: Database, claim_id: str) -> ClaimOut:
    with db.engine.connect() as conn:
        row = repo.claim_row(conn, claim_id)
        if row is None:
            raise NotFound("claim_id", f"unknown claim {claim_id}")
        return _claims_out(conn, [row])[0]


def latest_claim_id(db: Database, source: str, external_id: str) -> str:
    """The id of the latest version's claim of a document `source` sent; NotFound naming
    `external_id` when it sent none."""
    stmt = (
        select(claims.c.id)
        .where(claims.c.source == source, claims.c.external_id == external_id)
        .order_by(claims.c.version.desc())
        .limit(1)
    )
    with db.engine.connect() as conn:
        claim_id = conn.execute(stmt).scalar()
    if claim_id is None:
        raise NotFound("external_id", f"no claim with external id {external_id}")
    return str(claim_id)


def list_claims(
    db: Database, flt: ClaimFilter, page: int, page_size: int
) -> tuple[list[ClaimOut], int]:
    stmt = select(claims)
    if flt.status:
        stmt = stmt.where(claims.c.status == flt.status)
    if flt.applicant_id:
        stmt = stmt.where(claims.c.applicant_id == flt.applicant_id)
    if flt.department_id:
        stmt = stmt.where(claims.c.department_id == flt.department_id)
    if flt.submitted_from:
        stmt = stmt.where(claims.c.submitted_at >= datetime.combine(flt.submitted_from, time.min))
    if flt.submitted_to:
        stmt = stmt.where(claims.c.submitted_at <= datetime.combine(flt.submitted_to, time.max))
    with db.engine.connect() as conn:
        total = repo.count(conn, stmt)
        rows = list(
            conn.execute(
                stmt.order_by(claims.c.submitted_at.desc(), claims.c.id.desc())
                .limit(page_size)
                .offset((page - 1) * page_size)
            )
        )
        return _claims_out(conn, rows), total


def _claims_out(conn: Any, rows: list[Any]) -> list[ClaimOut]:
    ids = [r.id for r in rows]
    lines: dict[str, list[ClaimLineOut]] = {i: [] for i in ids}
    files: dict[str, list[AttachmentOut]] = {i: [] for i in ids}
    if ids:
        for line in conn.execute(
            select(claim_lines)
            .where(claim_lines.c.claim_id.in_(ids))
            .order_by(claim_lines.c.line_no)
        ):
            lines[line.claim_id].append(ClaimLineOut.model_validate(line))
        for f in conn.execute(select(attachments).where(attachments.c.claim_id.in_(ids))):
            files[f.claim_id].append(AttachmentOut.model_validate(f))
    tasks = repo.tasks_for_claims(conn, ids)
    result = []
    for row in rows:
        voucher = repo.voucher_for_claim(conn, row.id) if row.voucher_id else None
        result.append(
            ClaimOut.model_validate(
                {
                    **row._mapping,
                    "lines": lines[row.id],
                    "attachments": files[row.id],
                    "tasks": [ApprovalTaskOut.model_validate(t) for t in tasks[row.id]],
                    "voucher": _voucher_out(*voucher) if voucher else None,
                }
            )
        )
    return result


def _voucher_out(row: Any, entries: list[Any]) -> VoucherOut:
    return VoucherOut.model_validate(
        {**row._mapping, "entries": [VoucherEntryOut.model_validate(e) for e in entries]}
    )


@dataclass(frozen=True)
class OutboxFilter:
    """Which outbox rows to list: by destination, action, document and error class."""

    destination: str | None = None
    action: str | None = None
    aggregate_id: str | None = None
    error_class: str | None = None

    def apply(self, stmt: Any) -> Any:
        for column, value in (
            (outbox.c.destination, self.destination),
            (outbox.c.action, self.action),
            (outbox.c.aggregate_id, self.aggregate_id),
            (outbox.c.error_class, self.error_class),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        return stmt


def _letter(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "destination": r.destination,
        "action": r.action,
        "aggregate_type": r.aggregate_type,
        "aggregate_id": r.aggregate_id,
        "idempotency_key": r.idempotency_key,
        "attempts": r.attempts,
        "error_class": r.error_class,
        "reason": r.last_error,
        "payload": r.payload,
    }


def dead_letters(
    db: Database,
    flt: OutboxFilter | None = None,
    page: int = 1,
    page_size: int = 100,
) -> tuple[list[dict[str, Any]], int]:
    """One page of dead letters, oldest first, and how many match in all."""
    flt = flt or OutboxFilter()
    where = flt.apply(select(outbox).where(outbox.c.status == "dead"))
    with db.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(where.subquery())).scalar_one()
        rows = conn.execute(
            where.order_by(outbox.c.id).offset((page - 1) * page_size).limit(page_size)
        )
        return [_letter(r) for r in rows], int(total)


def held_rows(
    db: Database,
    flt: OutboxFilter | None = None,
    page: int = 1,
    page_size: int = 100,
) -> tuple[list[dict[str, Any]], int]:
    """Messages waiting behind an earlier message for the same document that is not done
    (messages for one document go in order), each with what it waits on: "waiting on dead
    letter N" until N is replayed and delivered, or the earlier row still being retried."""
    flt = flt or OutboxFilter()
    earlier = aliased(outbox)
    blocker = (
        select(func.min(earlier.c.id))
        .where(
            earlier.c.ordering_key == outbox.c.ordering_key,
            earlier.c.id < outbox.c.id,
            earlier.c.status != "done",
        )
        .scalar_subquery()
    )
    where = flt.apply(
        select(outbox, blocker.label("blocked_by")).where(
            outbox.c.status == "pending", blocker.is_not(None)
        )
    )
    with db.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(where.subquery())).scalar_one()
        rows = conn.execute(
            where.order_by(outbox.c.id).offset((page - 1) * page_size).limit(page_size)
        ).all()
        blockers = {
            r.id: r
            for r in conn.execute(
                select(outbox.c.id, outbox.c.status, outbox.c.last_error).where(
                    outbox.c.id.in_({r.blocked_by for r in rows})
                )
            )
        }
    items = []
    for r in rows:
        first = blockers[r.blocked_by]
        if first.status == "dead":
            reason = f"waiting on dead letter {first.id}"
        else:
            retrying = f": {first.last_error[:200]}" if first.last_error else ""
            reason = f"waiting on row {first.id} ({first.status}{retrying})"
        items.append(
            {
                "id": r.id,
                "destination": r.destination,
                "action": r.action,
                "aggregate_id": r.aggregate_id,
                "idempotency_key": r.idempotency_key,
                "waiting_on": first.id,
                "reason": reason,
            }
        )
    return items, int(total)


def loop_stats(db: Database) -> dict[str, Any]:
    """Counts along the loop and submit→written-back latency of claims in a final state."""
    with db.engine.connect() as conn:
        by_status: dict[str, int] = dict(
            conn.execute(select(claims.c.status, func.count()).group_by(claims.c.status)).all()
        )
        by_outbox: dict[str, int] = dict(
            conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all()
        )
        final_key = (
            literal("status:") + claims.c.id + literal(":") + cast(claims.c.status_seq, String)
        )
        latencies = [
            float(r[0])
            for r in conn.execute(
                select(outbox.c.done_epoch - claims.c.submitted_epoch)
                .select_from(claims.join(outbox, outbox.c.idempotency_key == final_key))
                .where(
                    claims.c.status.in_(["posted", "rejected"]),
                    outbox.c.status == "done",
                )
            )
        ]
    latencies.sort()
    return {
        "claims": by_status,
        "outbox": by_outbox,
        "written_back_final": len(latencies),
        "latency_p50_ms": _percentile(latencies, 50) * 1000 if latencies else None,
        "latency_p99_ms": _percentile(latencies, 99) * 1000 if latencies else None,
    }


def _percentile(values: list[float], pct: float) -> float:
    index = min(len(values) - 1, max(0, round(pct / 100 * len(values) + 0.5) - 1))
    return values[index]
