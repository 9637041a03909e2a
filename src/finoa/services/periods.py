"""Accounting periods (会计期间): list, close and reopen them; place vouchers into open ones.

A period never mentioned in `accounting_periods` is open. Closing and opening are audited
(`period.closed`, `period.opened`). A voucher dated in a closed period follows the configured
`closed_period_policy` (see `finoa.domain.periods.place_voucher`); a move is audited as
`voucher.period_moved`.

On PostgreSQL, placing a voucher holds a shared advisory lock on its period until commit and
closing holds an exclusive one, so a period cannot be closed between the moment a voucher's
period is checked and the moment that voucher commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update

from finoa.domain.periods import (
    ClosedPeriodPolicy,
    Period,
    PeriodStatus,
    Placement,
    company_date,
    place_voucher,
)
from finoa.services.context import Hub
from finoa.store.locks import LockClass
from finoa.store.prepared import Prepared, run_sql
from finoa.store.tables import accounting_periods, vouchers
from finoa.store.uow import Database, UnitOfWork

CLOSED_FROM = Prepared(
    select(accounting_periods.c.period).where(
        accounting_periods.c.status == PeriodStatus.CLOSED.value,
        accounting_periods.c.period >= bindparam("period"),
    )
)
PERIOD_ROW = Prepared(
    accounting_periods.select().where(accounting_periods.c.period == bindparam("period"))
)


@dataclass(frozen=True)
class PeriodState:
    """A period as the hub sees it: its status, who closed it and how many vouchers it holds."""

    period: str
    status: str
    closed_at: datetime | None = None
    closed_by: str | None = None
    vouchers: int = 0


def today(hub: Hub, uow: UnitOfWork) -> date:
    """The company's calendar day at the unit of work's instant."""
    return company_date(uow.now, hub.settings.company_zone)


def _lock_period(uow: UnitOfWork, period: Period, *, exclusive: bool) -> None:
    if uow.conn.dialect.name != "postgresql":
        return  # SQLite: one writer at a time already
    kind = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    key = period.year * 100 + period.month
    run_sql(uow.conn, f"SELECT {kind}({int(LockClass.PERIOD_STATUS)}, {key})")


def place_in_open_period(hub: Hub, uow: UnitOfWork, wanted: date, voucher_id: str) -> Placement:
    """Where the voucher `voucher_id`, dated `wanted`, goes under the closed-period policy.

    Raises Conflict (409, field `period`) when the policy refuses. The status of the
    period it lands in cannot change before this unit of work commits.
    """
    policy = ClosedPeriodPolicy(hub.settings.closed_period_policy)
    first = Period.of(wanted)
    locked = {first}
    _lock_period(uow, first, exclusive=False)
    while True:
        closed = {Period.parse(r.period) for r in CLOSED_FROM.all(uow.conn, {"period": str(first)})}
        placement = place_voucher(wanted, closed, policy)
        if placement.period in locked:
            break
        # read again under the lock of the period it moves to: it may just have been closed
        _lock_period(uow, placement.period, exclusive=False)
        locked.add(placement.period)
    if placement.moved_from is not None:
        uow.audit(
            "voucher.period_moved",
            "voucher",
            voucher_id,
            {
                "from": str(placement.moved_from),
                "to": str(placement.period),
                "requested_date": wanted.isoformat(),
                "voucher_date": placement.voucher_date.isoformat(),
                "policy": policy.value,
            },
        )
    return placement


def list_periods(db: Database) -> list[PeriodState]:
    """Every period that has vouchers or a recorded status, oldest first."""
    with db.engine.connect() as conn:
        recorded = {str(r.period): r for r in conn.execute(accounting_periods.select())}
        counted = select(vouchers.c.period, func.count().label("vouchers")).group_by(
            vouchers.c.period
        )
        counts: dict[str, int] = {r.period: r.vouchers for r in conn.execute(counted)}
    states = []
    for name in sorted(set(recorded) | set(counts)):
        row = recorded.get(name)
        states.append(
            PeriodState(
                period=name,
                status=row.status if row is not None else PeriodStatus.OPEN.value,
                closed_at=row.closed_at if row is not None else None,
                closed_by=row.closed_by if row is not None else None,
                vouchers=int(counts.get(name, 0)),
            )
        )
    return states


def close_period(db: Database, period: str, *, actor: str) -> PeriodState:
    """Close a period: later vouchers dated in it follow the closed-period policy."""
    return _set_status(db, Period.parse(period), PeriodStatus.CLOSED, actor)


def open_period(db: Database, period: str, *, actor: str) -> PeriodState:
    """Reopen a period; one never closed is open already and nothing changes."""
    return _set_status(db, Period.parse(period), PeriodStatus.OPEN, actor)


def _set_status(db: Database, period: Period, status: PeriodStatus, actor: str) -> PeriodState:
    """Record the period's new status and audit it; asking for the status it has changes
    nothing and records nothing."""
    with db.uow(actor) as uow:
        _lock_period(uow, period, exclusive=True)
        row = PERIOD_ROW.first(uow.conn, {"period": str(period)})
        current = PeriodStatus(row.status) if row is not None else PeriodStatus.OPEN
        if current is status:
            return _state(uow, period, row)
        values: dict[str, Any] = {
            "status": status.value,
            "closed_at": uow.now if status is PeriodStatus.CLOSED else None,
            "closed_by": actor if status is PeriodStatus.CLOSED else None,
        }
        if row is None:
            uow.conn.execute(insert(accounting_periods).values(period=str(period), **values))
        else:
            uow.conn.execute(
                update(accounting_periods)
                .where(accounting_periods.c.period == str(period))
                .values(**values)
            )
        action = "period.closed" if status is PeriodStatus.CLOSED else "period.opened"
        uow.audit(action, "period", str(period), {"period": str(period), "status": status.value})
        state = _state(uow, period, PERIOD_ROW.first(uow.conn, {"period": str(period)}))
        uow.commit()
    return state


def _state(uow: UnitOfWork, period: Period, row: Any) -> PeriodState:
    count = uow.conn.execute(
        select(func.count()).select_from(vouchers).where(vouchers.c.period == str(period))
    ).scalar_one()
    if row is None:
        return PeriodState(str(period), PeriodStatus.OPEN.value, vouchers=int(count))
    return PeriodState(str(period), row.status, row.closed_at, row.closed_by, int(count))
