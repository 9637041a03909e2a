"""The inbox: every inbound message recorded once under (source, message id).

Each entry keeps a digest of the message's canonical content: the parsed, validated message
dumped as JSON with sorted keys, so whitespace and key order do not count. A message seen
before with the same content returns the result stored the first time and changes nothing.
The same id with different content is refused (409): answering it as a duplicate would
silently drop the new content. An id already used by a message of another kind (a decision's
id on a claim, say) is refused too. The business key (source system, external document id,
version) is checked by the use case, so a manual resync of the same document is idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from sqlalchemy import bindparam, insert, select

from finoa.domain.errors import Conflict
from finoa.schemas import CANONICAL
from finoa.security.audit import digest
from finoa.store.prepared import Prepared
from finoa.store.tables import inbox
from finoa.store.uow import UnitOfWork

SEEN = Prepared(
    select(inbox.c.kind, inbox.c.digest, inbox.c.result).where(
        inbox.c.source == bindparam("source"), inbox.c.message_id == bindparam("message_id")
    )
)
INSERT_INBOX = Prepared(insert(inbox))


Content = BaseModel | Mapping[str, Any]


def content_digest(content: Content) -> str:
    """SHA-256 of a message's canonical content: a validated model dumped in JSON mode with
    amounts in one form (`schemas.CANONICAL`: "100.0" and 100 are the same amount), or the
    mapping of its parsed values, serialized with sorted keys and no whitespace."""
    if isinstance(content, BaseModel):
        return digest(content.model_dump(mode="json", context=CANONICAL))
    return digest(content)


def same_content(stored: str | None, content: Content) -> bool:
    """Whether a stored digest is of this content. Digests stored before amounts had one
    form were taken of the amounts as written; those still match the same writing."""
    if stored is None or stored == content_digest(content):
        return True
    return isinstance(content, BaseModel) and stored == digest(content.model_dump(mode="json"))


def seen(
    uow: UnitOfWork,
    source: str,
    message_id: str,
    kind: str,
    body: Content,
    *,
    field: str = "message_id",
) -> dict[str, Any] | None:
    """The stored result of a `kind` message already processed, or None if it is new.

    `body` is the message's parsed content (see `content_digest`). Raises Conflict naming
    `field` (where the sender put the id: `message_id`, `Idempotency-Key`) when the id was
    taken by a message of another kind or with other content: that is a sender's mistake,
    and answering it as a duplicate would silently drop the message.
    """
    row = SEEN.first(uow.conn, {"source": source, "message_id": message_id})
    if row is None:
        return None
    if row.kind != kind:
        raise Conflict(
            field,
            f"the message id {message_id} was already used by a {row.kind} message from "
            f"{source}; this {kind} message needs an id of its own",
        )
    if not same_content(row.digest, body):
        raise Conflict(
            field,
            f"the message id {message_id} was already used by a {kind} message from {source} "
            "with different content; a changed message needs an id of its own",
        )
    return dict(row.result or {})


def record(
    uow: UnitOfWork,
    source: str,
    message_id: str,
    kind: str,
    body: Content,
    result: dict[str, Any],
    business_key: str | None = None,
) -> None:
    """Remember a processed message (the digest of its content) and its result, in the use
    case's transaction."""
    INSERT_INBOX.run(
        uow.conn,
        {
            "source": source,
            "message_id": message_id,
            "kind": kind,
            "business_key": business_key,
            "digest": content_digest(body),
            "result": result,
            "received_at": uow.now,
        },
    )
