"""Reading and verifying the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from finoa.security.audit import ChainReport, verify_chain
from finoa.store.tables import audit_events
from finoa.store.uow import Database


def _events(db: Database, batch: int = 5000) -> Iterator[dict[str, Any]]:
    last = 0
    with db.engine.connect() as conn:
        while True:
            rows = list(
                conn.execute(
                    select(audit_events)
                    .where(audit_events.c.seq > last)
                    .order_by(audit_events.c.seq)
                    .limit(batch)
                )
            )
            if not rows:
                return
            for row in rows:
                yield dict(row._mapping)
            last = rows[-1].seq


def verify_audit_chain(db: Database) -> ChainReport:
    """Recompute every link of the chain, streaming in batches."""
    return verify_chain(_events(db))
