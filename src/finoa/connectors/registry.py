"""Finding connectors (entry-point group `finoa.connectors`) and building the configured ones."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

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
    instances: ConnectorInstances,
    http: httpx.AsyncClient,
    resources: Mapping[str, Any] | None = None,
) -> dict[str, Connector]:
    """One connector per instance, reachable under each of its outbox destinations.

    A connector class that needs more than its config and the HTTP client names it in
    `resources` (a class attribute, e.g. `("archive_store",)`); each named one found in
    `resources` is passed as a keyword argument. One it is not given it must do without
    (deliver then answers a CONFIG error)."""
    factories = available_connectors()
    given = resources or {}
    built: dict[str, Connector] = {}
    for name, instance in instances.instances.items():
        factory: Any = factories[instance.connector]  # may take resources beside its config
        wanted = getattr(factory, "resources", ())
        extras = {key: given[key] for key in wanted if key in given}
        built[name] = factory(dict(instance.config), http, **extras)
    return {destination: built[name] for destination, name in destinations(instances).items()}
