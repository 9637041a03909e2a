"""Operations on the message flow: replaying dead letters (F5)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import select, update

from finoa.domain.errors import NotFound
from finoa.store.tables import outbox
from finoa.store.uow import Database


def replay_dead_letters(db: Database, ids: Sequence[int] | None, *, actor: str) -> list[int]:
    """Send dead letters again with their original payload and idempotency key.

    `ids=None` replays every dead letter. Before each is sent, the connector's posted-lookup
    is asked whether it had in fact arrived, so a replay never makes a second voucher even at
    an ERP that keeps no idempotency keys. Messages held behind a dead letter follow it, in
    order, once it is delivered.
    """
    with db.uow(actor) as uow:
        stmt = select(outbox.c.id).where(outbox.c.status == "dead")
        if ids is not None:
            stmt = stmt.where(outbox.c.id.in_(list(ids)))
        found = [r[0] for r in uow.conn.execute(stmt.order_by(outbox.c.id))]
        if ids is not None:
            missing = sorted(set(ids) - set(found))
            if missing:
                raise NotFound("id", f"no dead letter with id {', '.join(map(str, missing))}")
        if found:
            uow.conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(found))
                .values(
                    status="pending",
                    attempts=0,
                    next_attempt_at=time.time(),
                    needs_lookup=True,
                    failing_since=None,
                )
            )
            for row_id in found:
                uow.audit("outbox.replayed", "outbox", str(row_id), {"by": actor})
            # marks the transaction as having outbox work, so the dispatcher is woken
            uow.mark_outbox_changed()
        uow.commit()
    return found
