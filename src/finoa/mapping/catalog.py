"""Where mappings come from: the defaults shipped with finoa, and overrides in finoa.yaml.

Defaults live as package data, `finoa/mapping/defaults/<connector>/<document type>.yaml`.
A user replaces one of them, and only that one, under `mappings:` in finoa.yaml, inline or
as a file (relative paths are read from the config file's folder):

```yaml
mappings:
  dingtalk/expense_claim: {file: mappings/dingtalk-claim.yaml}
```

Code tables are resolved here too: from files beside the mapping, from finoa's master data
(each known id maps to itself, so an unknown one is an error naming the field), and from
inline values.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from finoa.mapping.engine import render_path
from finoa.mapping.spec import CodeTableSpec, MappingSpec

if TYPE_CHECKING:
    from finoa.services.directory import MasterDataSnapshot

# The master-data ids a code table may take, by kind.
KnownIds = Mapping[str, Iterable[str]]


def snapshot_ids(snapshot: MasterDataSnapshot) -> dict[str, Iterable[str]]:
    """The ids of the hub's master-data snapshot, by kind."""
    return {
        "employees": snapshot.employees,
        "departments": snapshot.org_units,
        "cost_centers": snapshot.cost_centers,
        "projects": snapshot.projects,
    }


def file_ids(data: Mapping[str, Any]) -> dict[str, Iterable[str]]:
    """The ids of master data as `finoa masterdata load` reads it (a YAML document)."""
    kinds = {"employees": "employees", "departments": "org_units"}
    kinds.update({"cost_centers": "cost_centers", "projects": "projects"})
    return {
        kind: [str(row["id"]) for row in data.get(key) or [] if isinstance(row, Mapping)]
        for kind, key in kinds.items()
    }


DEFAULTS_PACKAGE = "finoa.mapping"
DEFAULTS_FOLDER = "defaults"
PARSED_CACHE_SIZE = 256  # mapping and code-table texts remembered parsed, per process


class MappingConfigError(ValueError):
    """A mapping that cannot be loaded; one line naming where and what."""


@dataclass(frozen=True)
class LoadedMapping:
    """A mapping, where it came from (`default` or the override's origin), and the folder
    its code-table files are read from (None: the package's defaults)."""

    spec: MappingSpec
    origin: str
    folder: Path | None


def _read_default(connector: str, document: str) -> str | None:
    root = resources.files(DEFAULTS_PACKAGE).joinpath(
        DEFAULTS_FOLDER, connector, f"{document}.yaml"
    )
    return root.read_text(encoding="utf-8") if root.is_file() else None


@functools.lru_cache(maxsize=PARSED_CACHE_SIZE)
def _parse(text: str, where: str) -> MappingSpec:
    """A mapping's YAML, parsed and checked. Remembered by its text: a connector maps every
    message with the mapping in force, and parsing YAML is most of the cost; a file that
    changed is parsed again. (The spec is never changed in place.)"""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingConfigError(f"{where}: not valid YAML ({exc})".splitlines()[0]) from None
    return _validate(raw, where)


def _validate(raw: Any, where: str) -> MappingSpec:
    try:
        return MappingSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = render_path(first["loc"])
        raise MappingConfigError(f"{where}: {path or 'mapping'}: {first['msg']}") from None


class MappingCatalog:
    """Every mapping finoa can use: the overrides of `mappings:` over the shipped defaults."""

    def __init__(self, overrides: Mapping[str, Any] | None = None, base_dir: Path | None = None):
        self._overrides = dict(overrides or {})
        self._base = base_dir or Path.cwd()
        for key in self._overrides:
            if not isinstance(key, str) or key.count("/") != 1:
                raise MappingConfigError(
                    f"mappings.{key}: name a mapping as connector/document_type"
                )

    @classmethod
    def from_settings(cls, settings: Any, config_file: Path | None = None) -> MappingCatalog:
        raw = getattr(settings, "extra", {}).get("mappings")
        if raw is not None and not isinstance(raw, Mapping):
            raise MappingConfigError("mappings: a mapping of connector/document_type to mappings")
        return cls(raw, config_file.parent if config_file is not None else None)

    def get(self, connector: str, document: str) -> LoadedMapping:
        """The mapping in force for `connector` and `document`; MappingConfigError if none."""
        key = f"{connector}/{document}"
        override = self._overrides.get(key)
        if override is not None:
            return self._override(key, override)
        text = _read_default(connector, document)
        if text is None:
            known = ", ".join(self.names()) or "none"
            raise MappingConfigError(f"mapping {key}: no such mapping (known: {known})")
        return LoadedMapping(_parse(text, f"default mapping {key}"), "default", None)

    def _override(self, key: str, override: Any) -> LoadedMapping:
        where = f"mappings.{key}"
        if isinstance(override, Mapping) and set(override) == {"file"}:
            path = Path(str(override["file"]))
            path = path if path.is_absolute() else self._base / path
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise MappingConfigError(
                    f"{where}.file: cannot read {path}: {exc.strerror}"
                ) from None
            spec = _parse(text, f"{where} ({path})")
            origin, folder = str(path), path.parent
        else:
            spec, origin, folder = _validate(override, where), "finoa.yaml", self._base
        if spec.mapping != key:
            raise MappingConfigError(f"{where}.mapping: says {spec.mapping!r}, expected {key!r}")
        return LoadedMapping(spec, origin, folder)

    def names(self) -> list[str]:
        """Every mapping name, defaults and overrides."""
        found = set(self._overrides)
        root = resources.files(DEFAULTS_PACKAGE).joinpath(DEFAULTS_FOLDER)
        for connector in root.iterdir():
            if connector.is_dir():
                for item in connector.iterdir():
                    if item.name.endswith(".yaml"):
                        found.add(f"{connector.name}/{item.name.removesuffix('.yaml')}")
        return sorted(found)


class PassThrough(dict[str, str]):
    """A master-data code table taken on trust: every code is its own finoa id (the hub
    checks master data itself when the document arrives); listed entries still apply."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key, key)


def code_tables(
    loaded: LoadedMapping, masterdata: KnownIds | None = None, *, unchecked: bool = False
) -> dict[str, dict[str, str]]:
    """The mapping's code tables, resolved: file entries, then master data ids, then inline
    values (later sources win). With `unchecked` and no master data, a master-data table
    passes every code through (a connector maps before the hub checks master data)."""
    tables: dict[str, dict[str, str]] = {}
    for name, spec in loaded.spec.code_tables.items():
        if spec.masterdata is not None and masterdata is None and unchecked:
            table = PassThrough()
            table.update(_table(loaded, name, spec.model_copy(update={"masterdata": None}), None))
            tables[name] = table
        else:
            tables[name] = _table(loaded, name, spec, masterdata)
    return tables


def _table(
    loaded: LoadedMapping, name: str, spec: CodeTableSpec, masterdata: KnownIds | None
) -> dict[str, str]:
    where = f"mapping {loaded.spec.mapping}: code_tables.{name}"
    table: dict[str, str] = {}
    if spec.file is not None:
        table.update(_table_file(loaded, spec.file, where))
    if spec.masterdata is not None:
        if masterdata is None:
            raise MappingConfigError(f"{where}.masterdata: needs finoa's master data (a database)")
        table.update({str(i): str(i) for i in masterdata.get(spec.masterdata, ())})
    table.update(spec.values)
    if spec.invert:
        inverted: dict[str, str] = {}
        for code, target in table.items():
            if inverted.setdefault(target, code) != code:
                raise MappingConfigError(f"{where}.invert: {target!r} has two codes")
        return inverted
    return table


def _table_file(loaded: LoadedMapping, file: str, where: str) -> dict[str, str]:
    """A code-table file: beside the mapping (an override's folder) when it is there, else
    among the shipped defaults, so an override may keep using the shipped tables."""
    path = Path(file)
    local = (
        None if loaded.folder is None else (path if path.is_absolute() else loaded.folder / path)
    )
    if local is not None and (local.exists() or path.is_absolute()):
        try:
            text = local.read_text(encoding="utf-8")
        except OSError as exc:
            raise MappingConfigError(f"{where}.file: cannot read {local}: {exc.strerror}") from None
    else:
        resource = resources.files(DEFAULTS_PACKAGE).joinpath(DEFAULTS_FOLDER, *path.parts)
        if not resource.is_file():
            shown = local if local is not None else file
            raise MappingConfigError(f"{where}.file: cannot read {shown}: no such file")
        text = resource.read_text(encoding="utf-8")
    return dict(_parse_table(text, file, where))


@functools.lru_cache(maxsize=PARSED_CACHE_SIZE)
def _parse_table(text: str, file: str, where: str) -> Mapping[str, str]:
    """A code-table file's entries, remembered by its text like `_parse` (callers copy)."""
    if file.endswith(".csv"):
        rows = [row for row in csv.reader(io.StringIO(text)) if row and not row[0].startswith("#")]
        bad = next((i for i, row in enumerate(rows, 1) if len(row) != 2), None)
        if bad is not None:
            raise MappingConfigError(f"{where}.file: line {bad} of {file} needs two columns")
        return {code.strip(): target.strip() for code, target in rows}
    data = yaml.safe_load(text)
    if not isinstance(data, Mapping):
        raise MappingConfigError(f"{where}.file: {file} must map codes to finoa ids")
    return {str(k): str(v) for k, v in data.items()}
