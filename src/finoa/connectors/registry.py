"""Finding connectors (entry-point group `finoa.connectors`) and building the configured ones."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import httpx

from finoa.connectors.base import Connector, ConnectorFactory

if TYPE_CHECKING:
    from finoa.connectors.instances import ConnectorInstances

ENTRY_POINT_GROUP = "finoa.connectors"


def available_connectors() -> dict[str, ConnectorFactory]:
    """Every installed connector class, by entry-point name."""
    found: dict[str, ConnectorFactory] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.load()
    return found


def destinations(instances: ConnectorInstances) -> dict[str, str]:
    """Outbox destination -> instance name: every instance under its own name, and the
    names `oa` / `erp` of rows queued before named instances for the default instances."""
    return {**{name: name for name in instances.instances}, **instances.legacy_destinations()}


def build_connectors(
    instances: ConnectorInstances, http: httpx.AsyncClient
) -> dict[str, Connector]:
    """One connector per instance, reachable under each of its outbox destinations."""
    factories = available_connectors()
    built: dict[str, Connector] = {}
    for name, instance in instances.instances.items():
        built[name] = factories[instance.connector](dict(instance.config), http)
    return {destination: built[name] for destination, name in destinations(instances).items()}
