"""An OA notice (`notice.send` payload) as the archive queues it, for the vendor OA tests."""

from __future__ import annotations

NOTICE = {
    "notice_id": "archived:PK-1",
    "recipient_id": "E0011",
    "title": "凭证 记-0001 已归档",
    "body": "报销单 CL0001 的会计凭证已归档",
    "subject_type": "archive_package",
    "subject_id": "PK-1",
    "at": "2026-11-30T08:00:00Z",
}
