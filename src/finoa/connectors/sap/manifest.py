"""What the SAP connector (`sap`) is: its manifest and its config schema."""

from __future__ import annotations

from typing import Any

from finoa.connectors.base import ConnectorKind, ConnectorManifest, Direction


def _text(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _code_table(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": description,
    }


CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["base_url", "username", "password", "company_code"],
    "additionalProperties": False,
    "properties": {
        "base_url": _text(
            "The gateway's root, e.g. https://sap-gw.example.com/finoa", pattern="^https?://"
        ),
        "username": _text("The RFC user (basic auth; also the document's USERNAME)"),
        "password": _text("The RFC user's password", writeOnly=True),
        "sap_client": _text("The SAP client (sent as the sap-client query parameter)"),
        "company_code": _text("COMP_CODE (BUKRS) the vouchers are posted in", maxLength=4),
        "logical_system": _text("OBJ_SYS: the hub's logical system", default="FINOA"),
        "document_type": _text("DOC_TYPE (BLART)", default="SA"),
        "reversal_reason": _text("REASON_REV for BAPI_ACC_DOCUMENT_REV_POST", default="01"),
        "gl_accounts": _code_table("finoa account code -> SAP G/L account (default: no dots)"),
        "vendors": _code_table("employee id -> vendor number (default: the employee id)"),
        "cost_centers": _code_table("department id -> cost center (default: the department id)"),
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "default": 5},
    },
}

MANIFEST = ConnectorManifest(
    name="sap",
    kind=ConnectorKind.ERP,
    direction=Direction.OUTBOUND,
    actions=("voucher.post",),
    config_schema=CONFIG_SCHEMA,
    auth="basic+csrf",
    max_batch=1,
    description="SAP FI: BAPI_ACC_DOCUMENT_CHECK/POST/COMMIT through an HTTP gateway, "
    "found again by REF_DOC_NO, reversed with BAPI_ACC_DOCUMENT_REV_POST.",
)
