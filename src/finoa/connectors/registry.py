"""Finding connectors (entry-point group `finoa.connectors`) and building the configured ones."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import httpx

from finoa.config import Settings
from finoa.connectors.base import Connector, ConnectorFactory

ENTRY_POINT_GROUP = "finoa.connectors"


def available_connectors() -> dict[str, ConnectorFactory]:
    """Every installed connector class, by entry-point name."""
    found: dict[str, ConnectorFactory] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.load()
    return found


def destinations(settings: Settings) -> dict[str, tuple[str, dict[str, Any]]]:
    """Outbox destination -> (connector name, config). `oa` and `erp` by default."""
    timeout = settings.connector_timeout_seconds
    configured = {
        "oa": (
            "generic-oa",
            {
                "base_url": settings.oa_base_url,
                "api_key": settings.oa_api_key,
                "timeout_seconds": timeout,
            },
        ),
        "erp": (
            "generic-erp",
            {
                "base_url": settings.erp_base_url,
                "api_key": settings.erp_api_key,
                "timeout_seconds": timeout,
            },
        ),
    }
    for name, spec in (settings.extra.get("destinations") or {}).items():
        configured[name] = (spec["connector"], dict(spec.get("config") or {}))
    return configured


def build_connectors(settings: Settings, http: httpx.AsyncClient) -> dict[str, Connector]:
    """Instantiate the connector behind each destination; unknown names fail loudly."""
    factories = available_connectors()
    built: dict[str, Connector] = {}
    for destination, (connector_name, config) in destinations(settings).items():
        factory = factories.get(connector_name)
        if factory is None:
            raise LookupError(
                f"destination {destination!r}: no connector named {connector_name!r} is installed"
                f" (installed: {', '.join(sorted(factories)) or 'none'})"
            )
        built[destination] = factory(config, http)
    return built
