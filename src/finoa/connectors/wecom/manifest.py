"""What the WeCom connector (`wecom`) is: its manifest and its config schema."""

from __future__ import annotations

from typing import Any

from finoa.connectors.base import ConnectorKind, ConnectorManifest, Direction
from finoa.connectors.pacing import rate_limit_schema

API_BASE_URL = "https://qyapi.weixin.qq.com"
DEFAULT_TOLERANCE_SECONDS = 300
RATE_LIMIT_PER_SECOND = 20.0  # well under WeCom's per-app limits on the approval API

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "corp_id": {"type": "string", "minLength": 1, "description": "The CorpID (企业ID)"},
        "corp_secret": {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "The Secret of the app (or of the 审批 app) that calls the API",
        },
        "token": {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "The callback's Token (接收消息 settings)",
        },
        "aes_key": {
            "type": "string",
            "minLength": 43,
            "maxLength": 43,
            "writeOnly": True,
            "description": "The callback's 43-character EncodingAESKey",
        },
        "agent_id": {"type": "integer", "description": "The app's AgentId"},
        "template_id": {
            "type": "string",
            "minLength": 1,
            "description": "The expense approval template's id in WeCom 审批",
        },
        "task_template_id": {
            "type": "string",
            "minLength": 1,
            "description": "The template of the per-task approvals (hub-led); default: template_id",
        },
        "task_creator_userid": {
            "type": "string",
            "minLength": 1,
            "description": "Who submits the per-task approvals (hub-led), e.g. a finance account",
        },
        "api_base_url": {"type": "string", "pattern": "^https?://", "default": API_BASE_URL},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 5},
        "rate_limit_per_second": rate_limit_schema(RATE_LIMIT_PER_SECOND, "WeCom"),
        "callback_tolerance_seconds": {
            "type": "integer",
            "minimum": 1,
            "default": DEFAULT_TOLERANCE_SECONDS,
            "description": "How far a callback's timestamp may be from the hub's clock",
        },
    },
    "required": ["corp_id", "corp_secret", "token", "aes_key", "template_id"],
    "additionalProperties": False,
}

MANIFEST = ConnectorManifest(
    name="wecom",
    kind=ConnectorKind.OA,
    direction=Direction.BOTH,
    actions=("approval.create", "todo.push", "status.writeback", "notice.send"),
    config_schema=CONFIG_SCHEMA,
    auth="wecom-access-token",
    rate_limit_per_second=RATE_LIMIT_PER_SECOND,
    # WeCom has no batch calls: a chunk's messages are sent four at a time (`each_call`,
    # paced at the app's quota) and settled together; an approval's id is known to the
    # callbacks as soon as WeCom answers (`created_here`), not once the chunk is settled
    max_batch=20,
    description="WeCom 审批: the claim's approval (OA-led) or one per task (hub-led); "
    "encrypted sys_approval_change callbacks in.",
)
