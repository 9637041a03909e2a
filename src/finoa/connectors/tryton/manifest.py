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
    max_batch=100,  # create+post of 100 moves: the best of 25/50/100/200 (bench/tryton_burst.py)
    description="Tryton (trytond JSON-RPC): account moves created, posted and found again by "
    "their finoa reference; reversals through Tryton's own cancel.",
)
