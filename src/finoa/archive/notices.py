"""OA notices (消息通知) about the archive: a package archived, a 四性检测 failed, a borrowing
granted or expired. Each is an outbox message `notice.send` to the OA instance, queued in the
use case's transaction under a stable key, so a fact is told once.

The generic OA connector delivers them (`POST /api/notices:batch`), Feishu as a message from
the app's bot (`im/v1/messages`), DingTalk as a work notification (工作通知), WeCom as an
application message (应用消息) and Weaver as a message of the hub's message source in
e-cology's message centre (消息中心). An OA whose connector does not list `notice.send` has
no channel for them: the dispatcher settles such a notice as not sent, with the reason
(`messaging/dispatcher.py` COURTESY_ACTIONS), never a dead letter.
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


def archive_keeper(uow: UnitOfWork) -> str | None:
    """Who keeps the archive, from the org data: the active finance director (财务总监)."""
    from sqlalchemy import select

    from finoa.store.tables import employees

    row = uow.conn.execute(
        select(employees.c.id)
        .where(employees.c.role == "finance_director", employees.c.active.is_(True))
        .order_by(employees.c.id)
        .limit(1)
    ).first()
    return row[0] if row else None


def package_archived(uow: UnitOfWork, record: Any, passed: bool, failed: list[str]) -> None:
    """Tell the applicant the voucher is archived; a failed 四性检测 also goes to the keeper."""
    send_notice(uow, f"archived:{record.package_id}", record.applicant_id,
                f"凭证 {record.voucher_no} 已归档 {record.archive_no}",
                f"报销单 {record.claim_id} 的会计凭证已归档, 档号 {record.archive_no}",
                subject_type="archive_package", subject_id=record.package_id)  # fmt: skip
    if not passed:
        check_failed(uow, record, failed)


def check_failed(uow: UnitOfWork, record: Any, failed: list[str]) -> None:
    """Tell the keeper and the applicant that a package failed its 四性检测."""
    keeper = archive_keeper(uow)
    for recipient in dict.fromkeys(r for r in (keeper, record.applicant_id) if r):
        send_notice(uow, f"check_failed:{record.package_id}:{uow.now.isoformat()}:{recipient}",
                    recipient, f"四性检测未通过 {record.archive_no}", "; ".join(failed),
                    subject_type="archive_package", subject_id=record.package_id)  # fmt: skip
