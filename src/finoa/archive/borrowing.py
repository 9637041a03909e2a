"""Borrowing (档案利用): an employee asks to use packages for some days; the archive keeper
approves in the OA todo list; once granted, each view or export inside the loan is logged in
`archive_access_log`, and after `expires_at` access is refused naming the expiry.

Time is the database's clock (`Database.clock`), so tests move it instead of waiting.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from finoa.archive.model import PackageRecord
from finoa.archive.notices import send_notice
from finoa.archive.service import record_from_row
from finoa.archive.tasks import ARCHIVE_KEEPER, Step, TaskOutcome, decide, open_steps, role_holder
from finoa.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from finoa.services.context import Hub
from finoa.store.tables import archive_access_log, archive_borrowings, archive_packages
from finoa.store.uow import Database, UnitOfWork

MAX_DAYS = 365
ACCESS_ACTIONS = ("view", "export")


def aware(at: datetime) -> datetime:
    """SQLite gives naive datetimes back: they are UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def resolve_packages(conn: Connection, refs: Sequence[str]) -> list[Any]:
    """Package rows by id or 档号, in the order given; NotFound naming the first unknown."""
    if not refs:
        raise InvalidInput("packages", "name at least one package (id or 档号)")
    t = archive_packages
    rows = conn.execute(select(t).where(or_(t.c.id.in_(refs), t.c.archive_no.in_(refs)))).all()
    found = {r.id: r for r in rows} | {r.archive_no: r for r in rows}
    for ref in refs:
        if ref not in found:
            raise NotFound("packages", f"no archive package {ref}")
    return list({found[ref].id: found[ref] for ref in refs}.values())


@dataclass(frozen=True)
class BorrowingRequest:
    borrowing_id: str
    task_id: str
    approver_id: str


def request_borrowing(
    hub: Hub, refs: Sequence[str], borrower_id: str, days: int, reason: str, *, actor: str
) -> BorrowingRequest:
    """Record a borrowing request and push its approval to the keeper's OA todo list."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput("days", f"must be 1-{MAX_DAYS}")
    if not reason.strip() or len(reason) > 500:
        raise InvalidInput("reason", "must be 1-500 characters")
    people = hub.masterdata.get()
    if borrower_id not in people.employees:
        raise InvalidInput("by", f"unknown employee {borrower_id}")
    keeper = role_holder(people, hub.settings.extra, ARCHIVE_KEEPER)

    def command(uow: UnitOfWork) -> BorrowingRequest:
        packages = resolve_packages(uow.conn, refs)
        for row in packages:
            if row.status == "destroyed":
                raise Conflict("packages", f"{row.archive_no} was destroyed")
        borrowing_id = "BR-" + secrets.token_hex(6)
        uow.conn.execute(
            insert(archive_borrowings).values(
                id=borrowing_id,
                borrower_id=borrower_id,
                package_ids=[r.id for r in packages],
                reason=reason,
                days=days,
                status="pending",
                requested_at=uow.now,
            )
        )
        uow.audit("archive.borrowing_requested", "archive_borrowing", borrowing_id,
                  {"borrower_id": borrower_id, "packages": [r.archive_no for r in packages],
                   "days": days, "reason": reason})  # fmt: skip
        names = ", ".join(r.archive_no for r in packages)
        title = (
            f"档案借阅审批 {borrowing_id}: {people.employees[borrower_id].name} {names} {days}天"
        )
        task_ids = open_steps(uow, "borrowing", borrowing_id, [Step(ARCHIVE_KEEPER, keeper)], title)
        return BorrowingRequest(borrowing_id, task_ids[0], keeper)

    return hub.db.perform(command, actor=actor)


def finish_borrowing(uow: UnitOfWork, task: Any, approved: bool) -> str:
    t = archive_borrowings
    row = uow.conn.execute(select(t).where(t.c.id == task.subject_id)).one()
    if approved:
        expires = uow.now + timedelta(days=row.days)
        values: dict[str, Any] = {"status": "granted", "decided_at": uow.now, "expires_at": expires}
        status, text = "granted", f"借阅已批准, 有效期至 {expires.isoformat()}"
    else:
        values = {"status": "rejected", "decided_at": uow.now}
        status, text = "rejected", f"借阅未获批准: {task.comment or ''}"
    uow.conn.execute(update(t).where(t.c.id == row.id).values(**values))
    uow.audit(f"archive.borrowing_{status}", "archive_borrowing", row.id,
              {"expires_at": values.get("expires_at").isoformat() if approved else None})  # type: ignore[union-attr]  # fmt: skip
    send_notice(uow, f"borrowing:{row.id}:{status}", row.borrower_id,
                f"档案借阅 {row.id} {status}", text, subject_type="borrowing",
                subject_id=row.id)  # fmt: skip
    if approved:
        for package_id in row.package_ids:
            log_access(uow, package_id, f"employee:{row.borrower_id}", "lent",
                       {"borrowing_id": row.id, "expires_at": expires.isoformat()})  # fmt: skip
    return status


def finishers() -> dict[str, Any]:
    from finoa.archive.destruction import finish_destruction

    return {"borrowing": finish_borrowing, "destruction": finish_destruction}


def decide_archive_task(
    hub: Hub,
    task_id: str,
    approver_id: str,
    approve: bool,
    comment: str | None,
    *,
    actor: str,
    source: str | None = None,
    message_id: str | None = None,
) -> TaskOutcome:
    return hub.db.perform(lambda uow: archive_decision(
        uow, task_id, approver_id, approve, comment, source, message_id), actor=actor)  # fmt: skip


def archive_decision(
    uow: UnitOfWork,
    task_id: str,
    approver_id: str,
    approve: bool,
    comment: str | None,
    source: str | None = None,
    message_id: str | None = None,
) -> TaskOutcome:
    return decide(uow, task_id, approver_id, approve, comment, finishers(), source, message_id)


def log_access(
    uow: UnitOfWork, package_id: str, actor: str, action: str, detail: dict[str, Any]
) -> None:
    uow.conn.execute(
        insert(archive_access_log).values(
            package_id=package_id, at=uow.now, actor=actor, action=action, detail=detail
        )
    )


def access_package(
    db: Database, ref: str, employee_id: str, action: str
) -> tuple[PackageRecord, str]:
    """A borrower's view or export of a package: allowed inside a granted loan, logged; the
    record and the borrowing it came under. Forbidden (naming the expiry) otherwise."""
    if action not in ACCESS_ACTIONS:
        raise InvalidInput("action", f"must be one of {', '.join(ACCESS_ACTIONS)}")

    def command(uow: UnitOfWork) -> tuple[PackageRecord, str]:
        row = resolve_packages(uow.conn, [ref])[0]
        if row.status == "destroyed":
            raise Conflict("package", f"{row.archive_no} was destroyed")
        t = archive_borrowings
        loans = uow.conn.execute(
            select(t)
            .where(t.c.borrower_id == employee_id, t.c.status.in_(("granted", "expired")))
            .order_by(t.c.expires_at.desc())
        ).all()
        loans = [loan for loan in loans if row.id in loan.package_ids]
        live = [loan for loan in loans if aware(loan.expires_at) > uow.now]
        if not live:
            if loans:
                expired = aware(loans[0].expires_at).isoformat()
                raise Forbidden("package", f"the borrowing {loans[0].id} of {row.archive_no} "
                                f"by {employee_id} expired at {expired}")  # fmt: skip
            raise Forbidden(
                "package", f"{employee_id} has no granted borrowing of {row.archive_no}"
            )
        log_access(uow, row.id, f"employee:{employee_id}", action, {"borrowing_id": live[0].id})
        return record_from_row(row, ()), live[0].id

    return db.perform(command, actor=f"employee:{employee_id}")


def expire_borrowings(db: Database) -> list[str]:
    """Mark granted borrowings past their expiry as expired and tell each borrower (a sweep)."""

    def command(uow: UnitOfWork) -> list[str]:
        t = archive_borrowings
        rows = uow.conn.execute(select(t).where(t.c.status == "granted")).all()
        done = []
        for row in rows:
            if aware(row.expires_at) > uow.now:
                continue
            uow.conn.execute(update(t).where(t.c.id == row.id).values(status="expired"))
            uow.audit("archive.borrowing_expired", "archive_borrowing", row.id,
                      {"expires_at": aware(row.expires_at).isoformat()})  # fmt: skip
            send_notice(uow, f"borrowing:{row.id}:expired", row.borrower_id,
                        f"档案借阅 {row.id} 已到期",
                        f"借阅已于 {aware(row.expires_at).isoformat()} 到期",
                        subject_type="borrowing", subject_id=row.id)  # fmt: skip
            done.append(row.id)
        return done

    return db.perform(command, actor="archive")


def open_borrowings(conn: Connection, package_ids: Sequence[str], now: datetime) -> dict[str, str]:
    """Package id -> a borrowing still open on it (pending, or granted and not expired)."""
    t = archive_borrowings
    found: dict[str, str] = {}
    for row in conn.execute(select(t).where(t.c.status.in_(("pending", "granted")))):
        if row.status == "granted" and aware(row.expires_at) <= now:
            continue
        for package_id in row.package_ids:
            if package_id in package_ids:
                found.setdefault(package_id, row.id)
    return found
