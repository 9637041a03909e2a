"""What the Yonyou connectors are: manifests, config schemas, and the answer codes both the
clients and the simulators speak."""

from __future__ import annotations

from typing import Any

from finoa.connectors.base import ConnectorKind, ConnectorManifest, Direction
from finoa.messaging.retry import ErrorClass

_COMMON: dict[str, Any] = {
    "base_url": {
        "type": "string",
        "format": "uri",
        "pattern": "^https?://",
        "description": "Root URL, e.g. https://api.yonyouup.com or http://nc.example.com",
    },
    "timeout_seconds": {
        "type": "number",
        "exclusiveMinimum": 0,
        "default": 5,
        "description": "Per-request timeout",
    },
    "enter": {
        "type": "string",
        "minLength": 1,
        "default": "finoa",
        "description": "The preparer (制单人) written into each voucher",
    },
}

U8_CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        **_COMMON,
        "app_key": {"type": "string", "minLength": 1, "description": "The app's app_key"},
        "app_secret": {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "The app's app_secret (exchanged for a token)",
        },
        "from_account": {"type": "string", "minLength": 1, "description": "from_account"},
        "to_account": {
            "type": "string",
            "minLength": 1,
            "description": "to_account: the enterprise (U8 account set) the vouchers go to",
        },
    },
    "required": ["base_url", "app_key", "app_secret", "from_account", "to_account"],
    "additionalProperties": False,
}

NC_CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        **_COMMON,
        "account": {"type": "string", "minLength": 1, "description": "NC account (账套) code"},
        "groupcode": {"type": "string", "minLength": 1, "description": "NC group code"},
        "sender": {
            "type": "string",
            "minLength": 1,
            "description": "The external system code registered in NC's exchange platform",
        },
        "receiver": {"type": "string", "minLength": 1, "description": "NC's receiver code"},
        "company": {"type": "string", "minLength": 1, "description": "Company (公司) code"},
        "encoding": {
            "type": "string",
            "enum": ["UTF-8", "GBK", "GB2312"],
            "default": "UTF-8",
            "description": "Encoding of the voucher XML, declared in its prolog",
        },
    },
    "required": ["base_url", "account", "groupcode", "sender", "receiver", "company"],
    "additionalProperties": False,
}

U8_MANIFEST = ConnectorManifest(
    name="yonyou-u8",
    kind=ConnectorKind.ERP,
    direction=Direction.OUTBOUND,
    actions=("voucher.post",),
    config_schema=U8_CONFIG_SCHEMA,
    auth="app_key/app_secret token",
    max_batch=1,
    description="Yonyou U8 OpenAPI: vouchers added under a tradeid, found again by reserve2.",
)

NC_MANIFEST = ConnectorManifest(
    name="yonyou-nc",
    kind=ConnectorKind.ERP,
    direction=Direction.OUTBOUND,
    actions=("voucher.post",),
    config_schema=NC_CONFIG_SCHEMA,
    auth="registered sender",
    max_batch=1,
    description="Yonyou NC / NCC: ufinterface voucher XML through XChangeServlet.",
)

# U8 OpenAPI answers HTTP 200 with `errcode` / `errmsg`; "0" is success.
U8_OK = "0"
U8_TOKEN_INVALID = "20002"  # the token is unknown or has expired: fetch another
U8_BAD_APP = "20001"  # app_key / app_secret / from_account not accepted
U8_BAD_PARAMETER = "40001"
U8_BASE_DATA = "40004"  # an account, voucher type or auxiliary code does not exist
U8_UNBALANCED = "40005"
U8_RATE_LIMITED = "42900"
U8_BUSY = "50000"
U8_CODES: dict[str, ErrorClass] = {
    U8_TOKEN_INVALID: ErrorClass.AUTH,
    U8_BAD_APP: ErrorClass.CONFIG,
    U8_BAD_PARAMETER: ErrorClass.PERMANENT,
    U8_BASE_DATA: ErrorClass.PERMANENT,
    U8_UNBALANCED: ErrorClass.PERMANENT,
    U8_RATE_LIMITED: ErrorClass.RATE_LIMITED,
    U8_BUSY: ErrorClass.TRANSIENT,
}

# NC's `sendresult/resultcode`: "1" is success.
NC_OK = "1"
NC_NOT_XML = "-1"  # the document could not be read
NC_SENDER = "-10"  # the sender is not a registered external system
NC_TRANSLATE = "-31"  # base data could not be translated: an unknown code
NC_BUSINESS = "-32"  # the voucher failed NC's checks (unbalanced, closed period)
NC_SYSTEM = "-5"  # NC failed inside (database, locks): try again
NC_CODES: dict[str, ErrorClass] = {
    NC_NOT_XML: ErrorClass.PERMANENT,
    NC_SENDER: ErrorClass.CONFIG,
    NC_TRANSLATE: ErrorClass.PERMANENT,
    NC_BUSINESS: ErrorClass.PERMANENT,
    NC_SYSTEM: ErrorClass.TRANSIENT,
}
