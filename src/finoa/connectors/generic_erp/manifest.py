"""What the generic ERP connector (`generic-erp`) is: its manifest."""

from __future__ import annotations

from finoa.connectors.base import ConnectorKind, ConnectorManifest, Direction
from finoa.connectors.rest import CONFIG_SCHEMA

MANIFEST = ConnectorManifest(
    name="generic-erp",
    kind=ConnectorKind.ERP,
    direction=Direction.OUTBOUND,
    actions=("voucher.post",),
    config_schema={
        **CONFIG_SCHEMA,
        "properties": {
            **CONFIG_SCHEMA["properties"],
            "check_base_data": {
                "type": "boolean",
                "default": False,
                "description": "Check every voucher against GET /api/base-data before posting",
            },
        },
    },
    auth="bearer",
    max_batch=50,
    description="Generic REST ERP: vouchers posted with an Idempotency-Key.",
)
