"""What the generic archive connector (`generic-archive`) is."""

from __future__ import annotations

from finoa.connectors.base import ConnectorKind, ConnectorManifest, Direction
from finoa.connectors.rest import CONFIG_SCHEMA

MANIFEST = ConnectorManifest(
    name="generic-archive",
    kind=ConnectorKind.ARCHIVE,
    direction=Direction.BOTH,
    actions=("archive.push",),
    config_schema=CONFIG_SCHEMA,
    auth="bearer",
    max_batch=1,
    description="Generic REST archive: a package with its metadata and files in, its status "
    "(archived, 四性检测 result) back.",
)
