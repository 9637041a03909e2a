"""Named connector instances (`connectors:` in finoa.yaml) and where each message goes.

```yaml
connectors:
  hq-oa:    {connector: generic-oa, config: {base_url: …, api_key_env: FINOA_HQ_OA_KEY,
                                             webhook_secret_file: /run/secrets/hq-oa}}
  erp-main: {connector: generic-erp, config: {…}, companies: [D00], org_units: [D01, D02]}
```

Each instance has its own credentials: a secret field `x` of the connector's config schema may
be given as `x_env` (an environment variable) or `x_file` (a file holding it). Secrets are
resolved here, once, and never shown: `repr` and `describe()` print `***` for them. Without a
`connectors:` section the embedded defaults are `generic-oa` and `generic-erp`, built from
`oa_base_url`, `oa_api_key`, `oa_webhook_secret`, `erp_base_url` and `erp_api_key`.

Routing: a claim's todos and status write-backs go to the OA instance it came from (REST
claims: the default OA instance); a voucher goes to the ERP instance its org unit, or the
nearest enclosing org unit listed (under `org_units`, or as a company under `companies`), is
mapped to, else to the default ERP instance (the only one, or the one marked
`default: true`). The same can be said in one table, beside `connectors:`:

```yaml
routing:
  erp:
    by: org_unit            # or company: only the claim's company (the top of its org tree)
    table: {D01: erp-tryton, D05: erp-kingdee}
    default: erp-tryton
```

`by: org_unit` looks the claim's org unit up, then each enclosing one (as `org_units:`
lists); `by: company` looks up only its company. A table entry and an instance's own list
may not disagree, nor `default` and `default: true`. The outbox names `oa` and `erp`, used
before instances existed, stand for the default instances.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finoa.config import Settings
from finoa.connectors.base import ConnectorKind, Direction, InboundHandler
from finoa.connectors.registry import available_connectors
from finoa.domain.errors import Conflict

log = logging.getLogger(__name__)

DEFAULT_OA = "generic-oa"
DEFAULT_ERP = "generic-erp"
DEFAULT_ARCHIVE = "generic-archive"
LEGACY_DESTINATIONS = {"oa": ConnectorKind.OA, "erp": ConnectorKind.ERP}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
INSTANCE_FIELDS = (
    "connector", "config", "companies", "org_units", "default", "approvals", "mode",
)  # fmt: skip
# Whether an external archive is kept beside the built-in one (the built-in archive stays the
# record) or instead of it (the external archive's status is what counts).
BESIDE, INSTEAD = "beside", "instead"
ARCHIVE_MODES = (BESIDE, INSTEAD)
# How a document type's approval runs (`approvals:` of an OA instance): in finoa's BPMN with
# todos pushed to the OA (hub-led, the default), or in the OA's own approval app (oa-led).
HUB_LED, OA_LED = "hub-led", "oa-led"
APPROVAL_MODES = (HUB_LED, OA_LED)
DOCUMENT_TYPES = ("expense_claim",)
REDACTED = "***"
MAPPINGS_KEY = "mappings"  # the config key carrying finoa.yaml's `mappings:` overrides
ROUTE_BY_ORG_UNIT, ROUTE_BY_COMPANY = "org_unit", "company"
ROUTING_FIELDS = ("by", "table", "default")


class ConnectorConfigError(ValueError):
    """A `connectors:` entry that cannot work; one line naming the instance and field."""


@dataclass(frozen=True, repr=False)
class ConnectorInstance:
    """One configured instance: its name, connector, resolved config and what maps to it."""

    name: str
    connector: str
    kind: ConnectorKind
    direction: Direction
    config: Mapping[str, Any]
    secret_fields: frozenset[str] = frozenset()
    companies: tuple[str, ...] = ()
    org_units: tuple[str, ...] = ()
    default: bool = False
    inbound: InboundHandler | None = field(default=None, compare=False)
    approvals: Mapping[str, str] = field(default_factory=dict)  # document type -> mode
    mode: str | None = None  # archive instances: BESIDE or INSTEAD

    def describe(self) -> dict[str, Any]:
        """The instance as diagnostics show it: secrets replaced by `***`."""
        config = {
            key: REDACTED if key in self.secret_fields else value
            for key, value in self.config.items()
        }
        return {
            "name": self.name,
            "connector": self.connector,
            "kind": self.kind.value,
            "config": config,
            "companies": list(self.companies),
            "org_units": list(self.org_units),
            "default": self.default,
            "inbound": self.inbound is not None,
            "approvals": {doc: self.approval_mode(doc) for doc in DOCUMENT_TYPES},
            **({"mode": self.mode} if self.mode is not None else {}),
        }

    def approval_mode(self, document_type: str) -> str:
        """`oa-led` or `hub-led` (the default) for a document type."""
        return self.approvals.get(document_type, HUB_LED)

    def __repr__(self) -> str:
        return f"ConnectorInstance({self.describe()!r})"


@dataclass(frozen=True)
class ConnectorInstances:
    """Every configured instance, the defaults per kind, and the org-unit map of the ERPs."""

    instances: Mapping[str, ConnectorInstance]
    default_oa: str | None
    default_erp: str | None
    erp_of_unit: Mapping[str, str]  # org unit (or company) id -> ERP instance
    route_by: str = ROUTE_BY_ORG_UNIT  # or ROUTE_BY_COMPANY: only the company decides

    def of_kind(self, kind: ConnectorKind) -> list[str]:
        return [name for name, i in self.instances.items() if i.kind is kind]

    def legacy_destinations(self) -> dict[str, str]:
        """`oa` / `erp` (outbox rows queued before instances) -> the default instances."""
        defaults = {ConnectorKind.OA: self.default_oa, ConnectorKind.ERP: self.default_erp}
        return {
            alias: name
            for alias, kind in LEGACY_DESTINATIONS.items()
            if (name := defaults[kind]) is not None
        }

    def inbound(self, name: str) -> InboundHandler | None:
        instance = self.instances.get(name)
        return instance.inbound if instance is not None else None

    def approval_mode(self, name: str, document_type: str = "expense_claim") -> str:
        """How the approval of `document_type` runs for the OA instance `name` (an outbox
        alias such as `oa` stands for the default): `oa-led` or `hub-led`."""
        instance = self.instances.get(self.legacy_destinations().get(name, name))
        return instance.approval_mode(document_type) if instance is not None else HUB_LED

    @property
    def archive(self) -> ConnectorInstance | None:
        """The external archive instance packages are pushed to, when one is configured."""
        found = self.of_kind(ConnectorKind.ARCHIVE)
        return self.instances[found[0]] if found else None

    def oa_for_rest(self) -> str:
        """Where claims submitted through the REST API write back: the default OA."""
        return self.default_oa or "oa"

    def erp_for(self, department_id: str, parents: Mapping[str, str | None]) -> str:
        """The ERP instance a voucher of `department_id` is posted to; a Conflict naming
        `department_id` when no mapping and no default decides it."""
        unit: str | None = department_id
        seen: set[str] = set()
        chain: list[str] = []
        while unit is not None and unit not in seen:
            seen.add(unit)
            chain.append(unit)
            unit = parents.get(unit)
        if self.route_by == ROUTE_BY_COMPANY:
            chain = chain[-1:]  # the company: the top of the unit's tree
        for unit in chain:
            mapped = self.erp_of_unit.get(unit)
            if mapped is not None:
                return mapped
        if self.default_erp is not None:
            return self.default_erp
        erps = ", ".join(self.of_kind(ConnectorKind.ERP)) or "none is configured"
        raise Conflict(
            "department_id",
            f"org unit {department_id} is mapped to no ERP instance ({erps}): list it or its "
            "company under one instance's org_units or companies, or mark one default: true",
        )


def load_instances(settings: Settings) -> ConnectorInstances:
    """The instances of `settings` (`connectors:`, else the embedded defaults), checked:
    raises ConnectorConfigError naming the instance and field."""
    raw = settings.extra.get("connectors")
    specs = embedded_defaults(settings) if raw is None else raw
    if not isinstance(specs, Mapping) or not specs:
        raise ConnectorConfigError("connectors: a mapping of instance names to connectors")
    factories = available_connectors()
    instances: dict[str, ConnectorInstance] = {}
    mappings = settings.extra.get("mappings")
    for name, spec in specs.items():
        instances[str(name)] = _instance(str(name), spec, factories, os.environ, mappings)
    return _with_routing(instances, settings.extra.get("routing"))


async def close_inbound_handlers(instances: ConnectorInstances) -> None:
    """Close every instance's inbound handler (their HTTP clients to the vendors): on the
    hub's shutdown. One that fails to close does not keep the others open."""
    for name, instance in instances.instances.items():
        if instance.inbound is None:
            continue
        try:
            await instance.inbound.aclose()
        except Exception:
            log.exception("closing the inbound handler of %s failed", name)


def embedded_defaults(settings: Settings) -> dict[str, Any]:
    """`generic-oa` and `generic-erp` from today's settings (no `connectors:` section), and
    `generic-archive` when `archive_external_url` is set."""
    timeout = settings.connector_timeout_seconds
    archive: dict[str, Any] = {}
    if settings.archive_external_url:
        config: dict[str, Any] = {
            "base_url": settings.archive_external_url,
            "api_key": settings.archive_external_api_key,
            "timeout_seconds": timeout,
        }
        if settings.archive_external_webhook_secret:
            config["webhook_secret"] = settings.archive_external_webhook_secret
            config["webhook_tolerance_seconds"] = settings.webhook_tolerance_seconds
        archive[DEFAULT_ARCHIVE] = {
            "connector": "generic-archive",
            "config": config,
            "mode": settings.archive_external_mode,
        }
    return {
        **archive,
        DEFAULT_OA: {
            "connector": "generic-oa",
            "config": {
                "base_url": settings.oa_base_url,
                "api_key": settings.oa_api_key,
                "timeout_seconds": timeout,
                "webhook_secret": settings.oa_webhook_secret,
                "webhook_tolerance_seconds": settings.webhook_tolerance_seconds,
            },
        },
        DEFAULT_ERP: {
            "connector": "generic-erp",
            "config": {
                "base_url": settings.erp_base_url,
                "api_key": settings.erp_api_key,
                "timeout_seconds": timeout,
            },
        },
    }


def _instance(
    name: str,
    spec: Any,
    factories: Mapping[str, Any],
    env: Mapping[str, str],
    mappings: Any = None,
) -> ConnectorInstance:
    where = f"connectors.{name}"
    if not NAME.match(name):
        raise ConnectorConfigError(
            f"{where}: an instance name is 1-64 letters, digits, '.', '_' or '-'"
        )
    if name in LEGACY_DESTINATIONS:
        raise ConnectorConfigError(
            f"{where}: the names oa and erp stand for the default instances; choose another"
        )
    if not isinstance(spec, Mapping):
        raise ConnectorConfigError(f"{where}: a mapping with connector and config")
    unknown = sorted(set(spec) - set(INSTANCE_FIELDS))
    if unknown:
        raise ConnectorConfigError(f"{where}.{unknown[0]}: is not a known field")
    connector = spec.get("connector")
    factory = factories.get(connector) if isinstance(connector, str) else None
    if factory is None:
        installed = ", ".join(sorted(factories)) or "none"
        raise ConnectorConfigError(
            f"{where}.connector: no connector named {connector!r} is installed ({installed})"
        )
    manifest = factory.manifest
    config, secrets = _resolve_secrets(where, spec.get("config") or {}, manifest.config_schema, env)
    if getattr(factory, "uses_mappings", False) and mappings is not None:
        # A connector built on the mapping engine sees the `mappings:` overrides of finoa.yaml.
        config[MAPPINGS_KEY] = mappings
    try:
        check = getattr(factory, "check_config", None)
        if check is not None:
            check(config)
        inbound_factory = getattr(factory, "inbound", None)
        inbound = inbound_factory(config) if inbound_factory is not None else None
    except ValueError as exc:
        raise ConnectorConfigError(f"{where}.config.{exc}") from None
    units = {key: _ids(where, key, spec.get(key)) for key in ("companies", "org_units")}
    if manifest.kind is not ConnectorKind.ERP and (units["companies"] or units["org_units"]):
        raise ConnectorConfigError(f"{where}.org_units: only ERP instances take org units")
    default = spec.get("default", False)
    if not isinstance(default, bool):
        raise ConnectorConfigError(f"{where}.default: true or false")
    approvals = _approvals(where, spec.get("approvals"), manifest)
    mode = spec.get("mode")
    if manifest.kind is ConnectorKind.ARCHIVE:
        mode = BESIDE if mode is None else mode
        if mode not in ARCHIVE_MODES:
            raise ConnectorConfigError(f"{where}.mode: {mode!r} is not one of beside, instead")
    elif mode is not None:
        raise ConnectorConfigError(f"{where}.mode: only archive instances take a mode")
    return ConnectorInstance(
        name=name,
        connector=str(connector),
        kind=manifest.kind,
        direction=manifest.direction,
        config=config,
        secret_fields=secrets,
        companies=units["companies"],
        org_units=units["org_units"],
        default=default,
        inbound=inbound,
        approvals=approvals,
        mode=mode,
    )


def _approvals(where: str, value: Any, manifest: Any) -> dict[str, str]:
    """`approvals: {expense_claim: oa-led}`, checked: OA instances only, known document
    types and modes, and oa-led only where the connector can create the OA's instance."""
    if value is None:
        return {}
    if manifest.kind is not ConnectorKind.OA:
        raise ConnectorConfigError(f"{where}.approvals: only OA instances run approvals")
    if not isinstance(value, Mapping):
        raise ConnectorConfigError(f"{where}.approvals: a mapping of document type to mode")
    modes: dict[str, str] = {}
    for document, mode in value.items():
        if document not in DOCUMENT_TYPES:
            raise ConnectorConfigError(
                f"{where}.approvals.{document}: unknown document type ({', '.join(DOCUMENT_TYPES)})"
            )
        if mode not in APPROVAL_MODES:
            raise ConnectorConfigError(
                f"{where}.approvals.{document}: {mode!r} is not one of {', '.join(APPROVAL_MODES)}"
            )
        if mode == OA_LED and "approval.create" not in manifest.actions:
            raise ConnectorConfigError(
                f"{where}.approvals.{document}: {manifest.name} cannot run approvals in the OA"
            )
        modes[str(document)] = str(mode)
    return modes


def _resolve_secrets(
    where: str, raw: Any, schema: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], frozenset[str]]:
    """Replace `x_env` / `x_file` by `x` for each field `x` of the schema; return the config
    and the names of its secret fields (resolved ones, and those the schema marks writeOnly)."""
    if not isinstance(raw, Mapping):
        raise ConnectorConfigError(f"{where}.config: a mapping of the connector's settings")
    properties: Mapping[str, Any] = schema.get("properties", {})
    config: dict[str, Any] = {}
    secrets = {key for key, prop in properties.items() if prop.get("writeOnly")}
    for key, value in raw.items():
        base, _, suffix = str(key).rpartition("_")
        if suffix not in ("env", "file") or base not in properties or key in properties:
            config[str(key)] = value
            continue
        if base in raw or base in config:
            raise ConnectorConfigError(
                f"{where}.config.{key}: give {base}, {base}_env or {base}_file, only one"
            )
        if not isinstance(value, str) or not value:
            raise ConnectorConfigError(f"{where}.config.{key}: the name of a variable or file")
        if suffix == "env":
            secret = env.get(value)
            if not secret:
                raise ConnectorConfigError(
                    f"{where}.config.{key}: the environment variable {value} is not set"
                )
        else:
            try:
                secret = Path(value).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConnectorConfigError(
                    f"{where}.config.{key}: cannot read {value}: {exc.strerror}"
                ) from None
            if not secret:
                raise ConnectorConfigError(f"{where}.config.{key}: the file {value} is empty")
        config[base] = secret
        secrets.add(base)
    return config, frozenset(secrets)


def _ids(where: str, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConnectorConfigError(f"{where}.{key}: a list of org unit ids")
    return tuple(value)


def _erp_routing(
    raw: Any, instances: Mapping[str, ConnectorInstance]
) -> tuple[str, dict[str, str], str | None]:
    """`routing: {erp: {by, table, default}}`, checked: (by, unit -> instance, default)."""
    if raw is None:
        return ROUTE_BY_ORG_UNIT, {}, None
    if not isinstance(raw, Mapping):
        raise ConnectorConfigError("routing: a mapping with erp")
    unknown = sorted(str(k) for k in raw if k != "erp")
    if unknown:
        raise ConnectorConfigError(f"routing.{unknown[0]}: only erp is routed (erp)")
    spec = raw.get("erp") or {}
    if not isinstance(spec, Mapping):
        raise ConnectorConfigError("routing.erp: a mapping with by, table and default")
    extra = sorted(str(k) for k in spec if k not in ROUTING_FIELDS)
    if extra:
        raise ConnectorConfigError(
            f"routing.erp.{extra[0]}: is not a known field (by, table, default)"
        )
    by = spec.get("by", ROUTE_BY_ORG_UNIT)
    if by not in (ROUTE_BY_ORG_UNIT, ROUTE_BY_COMPANY):
        raise ConnectorConfigError(f"routing.erp.by: {by!r} is not one of org_unit, company")
    erps = [n for n, i in instances.items() if i.kind is ConnectorKind.ERP]

    def erp_instance(where: str, name: Any) -> str:
        if not isinstance(name, str) or name not in erps:
            known = ", ".join(erps) or "none is configured"
            raise ConnectorConfigError(f"{where}: no ERP instance named {name!r} ({known})")
        return name

    table = spec.get("table") or {}
    if not isinstance(table, Mapping):
        raise ConnectorConfigError("routing.erp.table: a mapping of org unit id to ERP instance")
    routes = {
        str(unit): erp_instance(f"routing.erp.table.{unit}", name) for unit, name in table.items()
    }
    default = spec.get("default")
    return by, routes, None if default is None else erp_instance("routing.erp.default", default)


def _with_routing(
    instances: dict[str, ConnectorInstance], routing: Any = None
) -> ConnectorInstances:
    by, routes, routed_default = _erp_routing(routing, instances)
    archives = [n for n, i in instances.items() if i.kind is ConnectorKind.ARCHIVE]
    if len(archives) > 1:
        raise ConnectorConfigError(
            f"connectors.{archives[1]}: {archives[0]} is the external archive already; "
            "packages go to one archive instance"
        )
    defaults: dict[ConnectorKind, str | None] = {}
    for kind in (ConnectorKind.OA, ConnectorKind.ERP):
        names = [n for n, i in instances.items() if i.kind is kind]
        flagged = [n for n in names if instances[n].default]
        if len(flagged) > 1:
            raise ConnectorConfigError(
                f"connectors.{flagged[1]}.default: {flagged[0]} is the default {kind.value} "
                "instance already"
            )
        if flagged:
            defaults[kind] = flagged[0]
        elif len(names) == 1:
            defaults[kind] = names[0]
        elif kind is ConnectorKind.OA and names:
            raise ConnectorConfigError(
                f"connectors.{names[0]}.default: several OA instances ({', '.join(names)}); "
                "mark the one REST-submitted claims write back to default: true"
            )
        else:
            defaults[kind] = None
    erp_of_unit: dict[str, str] = {}
    for name, instance in instances.items():
        for key, units in (("companies", instance.companies), ("org_units", instance.org_units)):
            for unit in units:
                other = erp_of_unit.setdefault(unit, name)
                if other != name:
                    raise ConnectorConfigError(
                        f"connectors.{name}.{key}: {unit} is mapped to {other} already"
                    )
    for unit, name in routes.items():
        other = erp_of_unit.setdefault(unit, name)
        if other != name:
            raise ConnectorConfigError(
                f"routing.erp.table.{unit}: says {name}, but connectors.{other} lists {unit}"
            )
    default_erp = defaults[ConnectorKind.ERP]
    if routed_default is not None:
        flagged = [n for n, i in instances.items() if i.kind is ConnectorKind.ERP and i.default]
        if flagged and flagged[0] != routed_default:
            raise ConnectorConfigError(
                f"routing.erp.default: says {routed_default}, but connectors.{flagged[0]} is "
                "marked default: true"
            )
        default_erp = routed_default
    return ConnectorInstances(instances, defaults[ConnectorKind.OA], default_erp, erp_of_unit, by)
