"""The inbox: every inbound message recorded once under (source, message id).

A message seen before returns the result stored the first time and changes nothing; an id
already used by a message of another kind (a decision's id on a claim, say) is refused. The
business key (source system, external document id, version) is checked by the use case, so a
manual resync of the same document is idempotent too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, select

from finoa.domain.errors import Conflict
from finoa.security.audit import digest
from finoa.store.prepared import Prepared
from finoa.store.tables import inbox
from finoa.store.uow import UnitOfWork

SEEN = Prepared(
    select(inbox.c.kind, inbox.c.result).where(
        inbox.c.source == bindparam("source"), inbox.c.message_id == bindparam("message_id")
    )
)
INSERT_INBOX = Prepared(insert(inbox))


def seen(uow: UnitOfWork, source: str, message_id: str, kind: str) -> dict[str, Any] | None:
    """The stored result of a `kind` message already processed, or None if it is new.

    Raises Conflict when the id was taken by a message of another kind: that is a sender's
    mistake, and answering it as a duplicate would silently drop the message.
    """
    row = SEEN.first(uow.conn, {"source": source, "message_id": message_id})
    if row is None:
        return None
    if row.kind != kind:
        raise Conflict(
            "message_id",
            f"the message id {message_id} was already used by a {row.kind} message from "
            f"{source}; this {kind} message needs an id of its own",
        )
    return dict(row.result or {})


def record(
    uow: UnitOfWork,
    source: str,
    message_id: str,
    kind: str,
    body: Any,
    result: dict[str, Any],
    business_key: str | None = None,
) -> None:
    """Remember a processed message and its result, in the use case's transaction."""
    INSERT_INBOX.run(
        uow.conn,
        {
            "source": source,
            "message_id": message_id,
            "kind": kind,
            "business_key": business_key,
            "digest": digest(body),
            "result": result,
            "received_at": uow.now,
        },
    )
