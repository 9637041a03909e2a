"""Delegations (委托): while someone is away, their new approval tasks go to a delegate.

A delegation runs from `starts_on` to `ends_on` (company dates, both inclusive), for every
document type or only `document_type`. When a task is opened for the delegator on a date a
delegation covers, it goes to the delegate instead and keeps the delegator as
`on_behalf_of`; tasks opened before stay where they are. Delegations do not chain (the
delegate's own delegation is not followed), a delegate who is no longer an active employee is
passed over, and of several delegations in force the latest one set wins. Revoking one ends it
at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, or_, select, update

from finoa.domain.errors import InvalidInput, NotFound
from finoa.store.prepared import Prepared
from finoa.store.tables import approval_delegations, employees
from finoa.store.uow import Database, UnitOfWork

__all__ = [
    "MAX_DELEGATION_DAYS",
    "Delegation",
    "delegate_for",
    "list_delegations",
    "revoke_delegation",
    "set_delegation",
]

MAX_DELEGATION_DAYS = 366
"""The longest window one delegation may cover."""

DEFAULT_DOCUMENT_TYPE = "expense_claim"

IN_FORCE = Prepared(
    select(approval_delegations.c.delegate_id)
    .select_from(
        approval_delegations.join(employees, employees.c.id == approval_delegations.c.delegate_id)
    )
    .where(
        approval_delegations.c.delegator_id == bindparam("delegator_id"),
        approval_delegations.c.starts_on <= bindparam("on"),
        approval_delegations.c.ends_on >= bindparam("on"),
        approval_delegations.c.revoked_at.is_(None),
        or_(
            approval_delegations.c.document_type.is_(None),
            approval_delegations.c.document_type == bindparam("document_type"),
        ),
        employees.c.active.is_(True),
    )
    .order_by(approval_delegations.c.created_at.desc(), approval_delegations.c.id.desc())
    .limit(1)
)


@dataclass(frozen=True)
class Delegation:
    id: str
    delegator_id: str
    delegate_id: str
    starts_on: date
    ends_on: date
    document_type: str | None
    created_at: datetime
    revoked_at: datetime | None


def delegate_for(
    conn: Connection, delegator_id: str, on: date, document_type: str | None = None
) -> str | None:
    """Who takes `delegator_id`'s new tasks on `on` (None: they take them themselves)."""
    row = IN_FORCE.first(
        conn,
        {
            "delegator_id": delegator_id,
            "on": on,
            "document_type": document_type or DEFAULT_DOCUMENT_TYPE,
        },
    )
    if row is None or row.delegate_id == delegator_id:
        return None
    return str(row.delegate_id)


def _check(delegator_id: str, delegate_id: str, starts_on: date, ends_on: date) -> None:
    if delegator_id == delegate_id:
        raise InvalidInput("delegate_id", "one cannot delegate to oneself")
    if ends_on < starts_on:
        raise InvalidInput("ends_on", f"{ends_on} is before starts_on {starts_on}")
    if (ends_on - starts_on).days >= MAX_DELEGATION_DAYS:
        raise InvalidInput("ends_on", f"a delegation covers at most {MAX_DELEGATION_DAYS} days")


def set_delegation(
    db: Database,
    delegator_id: str,
    delegate_id: str,
    starts_on: date,
    ends_on: date,
    document_type: str | None = None,
    *,
    actor: str,
) -> Delegation:
    """Record a delegation (audited as `delegation.set`); bad dates change nothing."""
    _check(delegator_id, delegate_id, starts_on, ends_on)

    def command(uow: UnitOfWork) -> Delegation:
        row: dict[str, Any] = {
            "id": f"DLG-{uuid.uuid4().hex[:16]}",
            "delegator_id": delegator_id,
            "delegate_id": delegate_id,
            "starts_on": starts_on,
            "ends_on": ends_on,
            "document_type": document_type,
            "created_at": uow.now,
            "revoked_at": None,
        }
        uow.conn.execute(insert(approval_delegations).values(**row))
        uow.audit(
            "delegation.set",
            "delegation",
            row["id"],
            {
                "delegator_id": delegator_id,
                "delegate_id": delegate_id,
                "starts_on": starts_on.isoformat(),
                "ends_on": ends_on.isoformat(),
                "document_type": document_type,
            },
        )
        return Delegation(**row)

    return db.perform(command, actor=actor)


def revoke_delegation(db: Database, delegation_id: str, *, actor: str) -> Delegation:
    """End a delegation now; tasks it already routed stay with the delegate."""

    def command(uow: UnitOfWork) -> Delegation:
        table = approval_delegations
        row = uow.conn.execute(select(table).where(table.c.id == delegation_id)).first()
        if row is None:
            raise NotFound("delegation_id", f"unknown delegation {delegation_id}")
        if row.revoked_at is None:
            uow.conn.execute(
                update(table).where(table.c.id == delegation_id).values(revoked_at=uow.now)
            )
            uow.audit("delegation.revoked", "delegation", delegation_id, {})
        again = uow.conn.execute(select(table).where(table.c.id == delegation_id)).one()
        return Delegation(**again._asdict())

    return db.perform(command, actor=actor)


def list_delegations(db: Database, delegator_id: str | None = None) -> list[Delegation]:
    """Every delegation (or one person's), newest first."""
    table = approval_delegations
    stmt = select(table).order_by(table.c.created_at.desc(), table.c.id.desc())
    if delegator_id is not None:
        stmt = stmt.where(table.c.delegator_id == delegator_id)
    with db.engine.connect() as conn:
        return [Delegation(**row._asdict()) for row in conn.execute(stmt)]
