"""OA notices (消息通知) about the archive: a package archived, a 四性检测 failed, a borrowing
granted or expired. Each is an outbox message `notice.send` to the OA instance, queued in the
use case's transaction under a stable key, so a fact is told once.

The generic OA connector delivers them (`POST /api/notices:batch`); vendor connectors that
do not list `notice.send` in their manifest leave them to the default OA instance.
"""

from __future__ import annotations

from typing import Any

from finoa.messaging.outbox import OA
from finoa.store.uow import OutboxMessage, UnitOfWork


def send_notice(
    uow: UnitOfWork,
    key: str,
    recipient_id: str,
    title: str,
    body: str,
    *,
    subject_type: str,
    subject_id: str,
    destination: str = OA,
) -> None:
    """Queue one notice to `recipient_id`; `key` names the fact (the same fact, one notice)."""
    payload: dict[str, Any] = {
        "notice_id": key,
        "recipient_id": recipient_id,
        "title": title[:200],
        "body": body[:2000],
        "subject_type": subject_type,
        "subject_id": subject_id,
        "at": uow.now.isoformat().replace("+00:00", "Z"),
    }
    uow.enqueue(
        OutboxMessage(
            destination=destination,
            action="notice.send",
            aggregate_type=subject_type,
            aggregate_id=subject_id,
            idempotency_key=f"notice:{key}",
            payload=payload,
        )
    )
