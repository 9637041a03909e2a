"""What the Tryton connector (`tryton`) is: its manifest and config schema."""

from __future__ import annotations

from typing import Any

from finoa.connectors.base import ConnectorKind, ConnectorManifest, Direction

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "base_url": {
            "type": "string",
            "format": "uri",
            "pattern": "^https?://",
            "description": "Root URL of the trytond server, e.g. http://127.0.0.1:8000",
        },
        "database": {"type": "string", "minLength": 1, "description": "Tryton database name"},
        "login": {"type": "string", "minLength": 1, "description": "Tryton user finoa logs in as"},
        "password": {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "That user's password",
        },
        "journal": {
            "type": "string",
            "minLength": 1,
            "default": "MISC",
            "description": "Code of the account journal moves are made in",
        },
        "account_codes": {
            "type": "object",
            "additionalProperties": {"type": "string", "minLength": 1},
            "default": {},
            "description": "finoa account code -> the Tryton account code it posts to, where "
            "they differ (e.g. {'6602.01': '660201'})",
        },
        "moves_per_call": {
            "type": "integer",
            "minimum": 1,
            "maximum": 1000,
            "default": 200,
            "description": "The most moves created and posted in one call: the chunks that "
            "wait while a batch is in Tryton are joined up to this",
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 30,
            "description": "Per-call timeout",
        },
        "base_data_ttl_seconds": {
            "type": "number",
            "minimum": 0,
            "default": 60,
            "description": "How long accounts, periods and parties read from Tryton are kept",
        },
    },
    "required": ["base_url", "database", "login", "password"],
    "additionalProperties": False,
}

MANIFEST = ConnectorManifest(
    name="tryton",
    kind=ConnectorKind.ERP,
    direction=Direction.OUTBOUND,
    actions=("voucher.post",),
    config_schema=CONFIG_SCHEMA,
    auth="tryton-session",
    max_batch=100,  # a chunk; the chunks waiting for Tryton are joined (`moves_per_call`)
    description="Tryton (trytond JSON-RPC): account moves created, posted and found again by "
    "their finoa reference; reversals through Tryton's own cancel.",
)
