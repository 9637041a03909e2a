"""What the generic archive connector (`generic-archive`) is: its manifest and config schema."""

from __future__ import annotations

from typing import Any

from finoa.connectors.base import ConnectorKind, ConnectorManifest, Direction
from finoa.connectors.generic_oa.manifest import OA_CONFIG_SCHEMA

# The generic REST settings, and the secret its status callbacks are signed with (optional:
# without it the instance takes no webhooks and its synchronous answers are all there is).
ARCHIVE_CONFIG_SCHEMA: dict[str, Any] = {
    **OA_CONFIG_SCHEMA,
    "properties": {
        **OA_CONFIG_SCHEMA["properties"],
        "webhook_secret": {
            **OA_CONFIG_SCHEMA["properties"]["webhook_secret"],
            "description": "Signs the archive's status callbacks: `whsec_` + base64 of the key",
        },
    },
}

MANIFEST = ConnectorManifest(
    name="generic-archive",
    kind=ConnectorKind.ARCHIVE,
    direction=Direction.BOTH,
    actions=("archive.push",),
    config_schema=ARCHIVE_CONFIG_SCHEMA,
    auth="bearer",
    max_batch=1,
    description="Generic REST archive: a package with its metadata and files in, its status "
    "(archived, 四性检测 result) back, in the answer or later by a signed callback.",
)
