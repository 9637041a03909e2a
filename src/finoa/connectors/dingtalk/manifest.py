"""What the DingTalk connector (`dingtalk`) is: its manifest and its config schema."""

from __future__ import annotations

from typing import Any

from finoa.connectors.base import ConnectorKind, ConnectorManifest, Direction
from finoa.connectors.pacing import rate_limit_schema

API_BASE_URL = "https://api.dingtalk.com"  # the v1.0 open API
OAPI_BASE_URL = "https://oapi.dingtalk.com"  # the older topapi (contacts)
DEFAULT_TOLERANCE_SECONDS = 300
RATE_LIMIT_PER_SECOND = 20.0  # DingTalk's default per-app QPS for most open APIs

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "app_key": {
            "type": "string",
            "minLength": 1,
            "description": "The app's AppKey (Client ID)",
        },
        "app_secret": {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "The app's AppSecret (Client Secret)",
        },
        "token": {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "The event subscription's signing token",
        },
        "aes_key": {
            "type": "string",
            "minLength": 43,
            "maxLength": 43,
            "writeOnly": True,
            "description": "The event subscription's 43-character EncodingAESKey",
        },
        "owner_key": {
            "type": "string",
            "description": "What callbacks are encrypted for: the AppKey (default) or the CorpId",
        },
        "process_code": {
            "type": "string",
            "minLength": 1,
            "description": "The expense form's processCode (PROC-…) in DingTalk 审批",
        },
        "agent_id": {"type": "integer", "description": "The app's AgentId (microappAgentId)"},
        "callback_url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "finoa's public URL of this instance's webhook, for todo buttons",
        },
        "api_base_url": {"type": "string", "pattern": "^https?://", "default": API_BASE_URL},
        "oapi_base_url": {"type": "string", "pattern": "^https?://", "default": OAPI_BASE_URL},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 5},
        "rate_limit_per_second": rate_limit_schema(RATE_LIMIT_PER_SECOND, "DingTalk"),
        "callback_tolerance_seconds": {
            "type": "integer",
            "minimum": 1,
            "default": DEFAULT_TOLERANCE_SECONDS,
            "description": "How far a callback's timestamp may be from the hub's clock",
        },
    },
    "required": ["app_key", "app_secret", "token", "aes_key", "process_code"],
    "additionalProperties": False,
}

MANIFEST = ConnectorManifest(
    name="dingtalk",
    kind=ConnectorKind.OA,
    direction=Direction.BOTH,
    actions=("approval.create", "todo.push", "status.writeback", "notice.send"),
    config_schema=CONFIG_SCHEMA,
    auth="dingtalk-access-token",
    rate_limit_per_second=RATE_LIMIT_PER_SECOND,
    # DingTalk has no batch calls: a chunk's messages are sent four at a time (`each_call`,
    # paced at the app's quota) and settled together; an approval's id is known to the
    # callbacks as soon as DingTalk answers (`created_here`), not once the chunk is settled
    max_batch=20,
    description="DingTalk 审批 (OA-led) and 待办 (hub-led); encrypted bpms callbacks in.",
)
