"""The generic archive's wire format (both sides).

`POST /api/packages` with `Idempotency-Key: <package id>` and a JSON body
`{"archive_no", "package_id", "metadata": {...catalog fields}, "files": [{"name", "role",
"media_type", "size", "sha256", "sm3", "content_base64"}]}`. The archive refuses (422,
problem+json with `file` naming it) a package missing a listed file's content or whose
content does not hash to its `sha256` or `size`. It answers `{"archive_no", "package_id",
"status", "check": {"passed", "items": [{"item", "outcome", "detail"}]}, "received_at"}`:
`archived` (or `rejected` when its 四性检测 fails) at once, or `received` with no check yet
when it checks later; the same key again answers the first answer.
`GET /api/packages/{archive_no}` reads the package's current answer back (404: unknown).

An archive that checks later reports the outcome by a callback to the hub,
`POST /api/v1/webhooks/<instance>`, signed the Standard Webhooks way (headers `webhook-id`,
`webhook-timestamp`, `webhook-signature` over `id.timestamp.body` with the instance's
`webhook_secret`), body `{"type": "package.status", "data": {"package_id", "archive_no",
"status", "check": {"passed", "items"}}}`.
"""

from __future__ import annotations

from typing import Any

PUSH_PATH = "/api/packages"
STATUS_EVENT = "package.status"
RECEIVED, ARCHIVED, REJECTED = "received", "archived", "rejected"


def answer_view(value: Any) -> dict[str, Any]:
    """The archive's answer about one package as the hub records it: `archive_no`,
    `package_id`, `status`, `check_passed` and the check's `items`. ValueError naming the
    field when the answer lacks one."""
    if not isinstance(value, dict):
        raise ValueError("answer: not a JSON object")
    for key in ("archive_no", "status"):
        if not isinstance(value.get(key), str) or not value[key]:
            raise ValueError(f"answer.{key}: missing")
    check = value.get("check") or {}
    if not isinstance(check, dict):
        raise ValueError("answer.check: not an object")
    items = check.get("items") or []
    if not isinstance(items, list):
        raise ValueError("answer.check.items: not a list")
    return {
        "archive_no": value["archive_no"],
        "package_id": value.get("package_id"),
        "status": value["status"],
        "check_passed": check.get("passed") is True,
        "items": items,
    }
