"""What the Feishu connector (`feishu`) is: its manifest and its config schema."""

from __future__ import annotations

from typing import Any

from finoa.connectors.base import ConnectorKind, ConnectorManifest, Direction

BASE_URL = "https://open.feishu.cn"  # Lark (international): https://open.larksuite.com
DEFAULT_TOLERANCE_SECONDS = 300
# Feishu's approval open APIs allow 50 calls per second (and 1000 per minute) per app.
RATE_LIMIT_PER_SECOND = 50.0

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "app_id": {"type": "string", "minLength": 1, "description": "The app's App ID (cli_…)"},
        "app_secret": {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "The app's App Secret",
        },
        "verification_token": {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "Events & callbacks: the Verification Token",
        },
        "encrypt_key": {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "Events & callbacks: the Encrypt Key",
        },
        "approval_code": {
            "type": "string",
            "minLength": 1,
            "description": "The expense approval definition's code in Feishu 审批",
        },
        "external_approval_code": {
            "type": "string",
            "minLength": 1,
            "description": "The external approval definition finoa's own approvals show under "
            "in the Approval Center (hub-led)",
        },
        "callback_url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "finoa's public URL of this instance's webhook, for the links of "
            "external instances",
        },
        "base_url": {"type": "string", "pattern": "^https?://", "default": BASE_URL},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 5},
        "rate_limit_per_second": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": RATE_LIMIT_PER_SECOND,
            "description": "How fast the client calls Feishu at most",
        },
        "callback_tolerance_seconds": {
            "type": "integer",
            "minimum": 1,
            "default": DEFAULT_TOLERANCE_SECONDS,
            "description": "How far an event's X-Lark-Request-Timestamp may be from the hub's "
            "clock",
        },
    },
    "required": ["app_id", "app_secret", "verification_token", "encrypt_key", "approval_code"],
    "additionalProperties": False,
}

MANIFEST = ConnectorManifest(
    name="feishu",
    kind=ConnectorKind.OA,
    direction=Direction.BOTH,
    actions=("approval.create", "todo.push", "status.writeback", "notice.send"),
    config_schema=CONFIG_SCHEMA,
    auth="feishu-tenant-access-token",
    rate_limit_per_second=RATE_LIMIT_PER_SECOND,
    max_batch=20,
    description="Feishu 审批 (OA-led) and Approval Center external instances (hub-led); "
    "encrypted, signed approval events in.",
)
