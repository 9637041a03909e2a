"""What the Weaver e-cology connector (`weaver`) is: its manifest and its config schema."""

from __future__ import annotations

from typing import Any

from finoa.connectors.base import ConnectorKind, ConnectorManifest, Direction

DEFAULT_TOLERANCE_SECONDS = 300
DEFAULT_TOKEN_SECONDS = 1800


def _text(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["base_url", "appid", "secret", "spk", "user_id", "syscode", "callback_secret"],
    "additionalProperties": False,
    "properties": {
        "base_url": _text("e-cology's address, e.g. https://oa.example.com"),
        "appid": _text("The app id (许可证号码) registered in ECOLOGY_BIZ_EC"),
        "secret": _text("The secret `regist` answered", writeOnly=True),
        "spk": _text("e-cology's RSA public key that `regist` answered (base64 DER)"),
        "user_id": _text("The numeric e-cology user id the hub acts as"),
        "syscode": _text("The unified-todo system code (异构系统标识)"),
        "callback_secret": _text("Signs the decisions e-cology posts to the hub", writeOnly=True),
        "hub_url": _text("The hub's address, for the todos' links"),
        "message_code": _text(
            "The code (a number) of the message source (消息来源) set up for the hub in "
            "e-cology's message centre (消息中心); notices (`notice.send`) need it",
            pattern="^[0-9]+$",
        ),
        "workflow_id": _text("The expense workflow's id", default="6"),
        "detail_table": _text("Its detail table", default="formtable_main_214_dt1"),
        "token_seconds": {
            "type": "integer",
            "minimum": 60,
            "default": DEFAULT_TOKEN_SECONDS,
            "description": "The token lifetime asked of applytoken",
        },
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 5},
        "callback_tolerance_seconds": {
            "type": "integer",
            "minimum": 1,
            "default": DEFAULT_TOLERANCE_SECONDS,
        },
        "company_timezone": _text("Times in todos are in this zone", default="Asia/Shanghai"),
        "sweep_employees": {
            "type": "boolean",
            "default": True,
            "description": "Sweeps also list each employed user's own requests (one call per "
            "user), so a request an employee started whose start was lost is found",
        },
    },
}

MANIFEST = ConnectorManifest(
    name="weaver",
    kind=ConnectorKind.OA,
    direction=Direction.BOTH,
    actions=("approval.create", "todo.push", "status.writeback", "notice.send"),
    config_schema=CONFIG_SCHEMA,
    auth="weaver-e9-token",
    max_batch=100,
    description="Weaver e-cology E9: unified todos for hub-led approvals, workflow requests "
    "for OA-led ones (REST and SOAP), notices through the message centre, HRM master data; "
    "signed callbacks in.",
)
