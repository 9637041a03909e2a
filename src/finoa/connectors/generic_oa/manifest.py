"""What the generic OA connector (`generic-oa`) is: its manifest and its config schema."""

from __future__ import annotations

from typing import Any

from finoa.connectors.base import ConnectorKind, ConnectorManifest, Direction
from finoa.connectors.rest import CONFIG_SCHEMA

DEFAULT_TOLERANCE_SECONDS = 300

OA_CONFIG_SCHEMA: dict[str, Any] = {
    **CONFIG_SCHEMA,
    "properties": {
        **CONFIG_SCHEMA["properties"],
        "webhook_secret": {
            "type": "string",
            "pattern": "^whsec_",
            "writeOnly": True,
            "description": "Signs the OA's webhooks: `whsec_` + base64 of the key bytes",
        },
        "webhook_tolerance_seconds": {
            "type": "integer",
            "minimum": 1,
            "default": DEFAULT_TOLERANCE_SECONDS,
            "description": "How far a webhook's timestamp may be from the hub's clock",
        },
    },
}

MANIFEST = ConnectorManifest(
    name="generic-oa",
    kind=ConnectorKind.OA,
    direction=Direction.BOTH,
    actions=("todo.push", "todo.remind", "status.writeback", "notice.send"),
    config_schema=OA_CONFIG_SCHEMA,
    auth="bearer",
    max_batch=100,
    description="Generic REST OA: approval todos, status write-back, notices; signed webhooks in.",
)
