"""The inbox: every inbound message recorded once under (source, message id).

A message seen before returns the result stored the first time and changes nothing. The
business key (source system, external document id, version) is checked by the use case, so a
manual resync of the same document is idempotent too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, select

from finoa.security.audit import digest
from finoa.store.prepared import Prepared
from finoa.store.tables import inbox
from finoa.store.uow import UnitOfWork

SEEN = Prepared(
    select(inbox.c.result).where(
        inbox.c.source == bindparam("source"), inbox.c.message_id == bindparam("message_id")
    )
)
INSERT_INBOX = Prepared(insert(inbox))


def seen(uow: UnitOfWork, source: str, message_id: str) -> dict[str, Any] | None:
    """The stored result of a message already processed, or None."""
    row = SEEN.first(uow.conn, {"source": source, "message_id": message_id})
    if row is None:
        return None
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
