"""The generic archive's wire format (both sides).

`POST /api/packages` with `Idempotency-Key: <package id>` and a JSON body
`{"archive_no", "package_id", "metadata": {...catalog fields}, "files": [{"name", "role",
"media_type", "size", "sha256", "sm3", "content_base64"}]}`. The archive refuses (422,
problem+json with `file` naming it) a package missing a listed file's content or whose
content does not hash to its `sha256` or `size`. It answers `{"archive_no", "status":
"archived", "check": {"passed", "items": [{"item", "outcome", "detail"}]}, "received_at"}`;
the same key again answers the first answer. `GET /api/packages/{archive_no}` reads it back.
"""

from __future__ import annotations

PUSH_PATH = "/api/packages"
