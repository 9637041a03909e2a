"""finoa's account and dimension codes onto one ERP's: the `<connector>/voucher` mapping.

Every ERP connector that posts vouchers through it has a mapping
`mapping/defaults/<connector>/voucher.yaml` whose code tables say how finoa's codes read in
that ERP:

- `accounts`: finoa account code -> the ERP's account code. It is complete by design: a
  voucher with an account it does not list is refused before posting (a permanent error
  naming the account and the mapping), and nothing is sent;
- `departments`, `employees`, `projects`: finoa's master-data ids -> the ERP's dimension
  codes; an id they do not list keeps its own code (the ERP's base-data check decides).

finoa.yaml replaces a connector's table as any mapping, inline or as a file:

```yaml
mappings:
  kingdee/voucher: {file: mappings/kingdee-voucher.yaml}
```

The mapped voucher is what the base-data check (`basedata.py`) sees and what is posted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from finoa.connectors.base import OutboundMessage
from finoa.connectors.basedata import BaseDataProblem
from finoa.connectors.instances import MAPPINGS_KEY
from finoa.mapping.catalog import MappingCatalog, MappingConfigError, code_tables

DOCUMENT = "voucher"
ACCOUNTS = "accounts"
DIMENSION_TABLES = {"department": "departments", "employee": "employees", "project": "projects"}


@dataclass(frozen=True)
class VoucherCodes:
    """One ERP connector's code tables for vouchers, and where they came from."""

    mapping: str
    origin: str
    accounts: Mapping[str, str]
    dimensions: Mapping[str, Mapping[str, str]]  # department/employee/project -> table

    def with_accounts(self, extra: Mapping[str, str]) -> VoucherCodes:
        """These tables with `extra` accounts on top (an instance's own account codes)."""
        return replace(self, accounts={**self.accounts, **extra}) if extra else self

    def with_dimensions(self, extra: Mapping[str, Mapping[str, str]]) -> VoucherCodes:
        """These tables with `extra` dimension codes on top."""
        if not extra:
            return self
        merged = {name: dict(table) for name, table in self.dimensions.items()}
        for name, table in extra.items():
            merged.setdefault(name, {}).update(table)
        return replace(self, dimensions=merged)

    def problems(self, voucher: Mapping[str, Any]) -> list[BaseDataProblem]:
        """The accounts of a canonical voucher that this mapping does not list."""
        problems = []
        for index, entry in enumerate(voucher.get("entries") or []):
            code = str(entry.get("account_code") or "")
            if code not in self.accounts:
                problems.append(
                    BaseDataProblem(
                        f"entries[{index}].account_code",
                        code,
                        f"account {code} has no mapping in {self.mapping} ({self.origin})",
                    )
                )
        return problems

    def apply(self, voucher: Mapping[str, Any]) -> dict[str, Any]:
        """The voucher in the ERP's codes (every account is listed: see `problems`)."""
        entries = []
        for entry in voucher.get("entries") or []:
            aux = dict(entry.get("aux") or {})
            for dimension, value in aux.items():
                table = self.dimensions.get(dimension)
                if table is not None and value is not None:
                    aux[dimension] = table.get(str(value), value)
            code = str(entry.get("account_code") or "")
            entries.append({**entry, "account_code": self.accounts[code], "aux": aux})
        return {**voucher, "entries": entries}


def load_voucher_codes(connector: str, config: Mapping[str, Any]) -> VoucherCodes:
    """The `<connector>/voucher` mapping in force (finoa.yaml's override, else the shipped
    one), its tables resolved; raises MappingConfigError naming where."""
    catalog = MappingCatalog(config.get(MAPPINGS_KEY), Path.cwd())
    loaded = catalog.get(connector, DOCUMENT)
    name = loaded.spec.mapping
    if loaded.spec.target not in (None, DOCUMENT):
        raise MappingConfigError(f"mapping {name}: target must be {DOCUMENT}")
    tables = code_tables(loaded, None, unchecked=True)
    if ACCOUNTS not in tables:
        raise MappingConfigError(f"mapping {name}: code_tables.{ACCOUNTS}: a voucher needs one")
    accounts = {str(k): str(v) for k, v in tables[ACCOUNTS].items()}
    dimensions = {
        dimension: tables[table] for dimension, table in DIMENSION_TABLES.items() if table in tables
    }
    return VoucherCodes(name, loaded.origin, accounts, dimensions)


def without_mappings(config: Mapping[str, Any]) -> dict[str, Any]:
    """An instance's config without the `mappings:` overrides the registry adds to it."""
    return {k: v for k, v in config.items() if k != MAPPINGS_KEY}


def connector_codes(connector: str, config: Mapping[str, Any]) -> VoucherCodes:
    """`load_voucher_codes` for a connector's config check: ValueError `mappings: …`."""
    try:
        return load_voucher_codes(connector, config)
    except MappingConfigError as exc:
        raise ValueError(f"{MAPPINGS_KEY}: {exc}") from None


def mapped_messages(
    messages: Sequence[OutboundMessage], codes: VoucherCodes
) -> tuple[list[OutboundMessage], dict[int, list[BaseDataProblem]]]:
    """Each canonical voucher in the ERP's codes; those with an unmapped account are left as
    they are and listed with their problems (by position)."""
    mapped: list[OutboundMessage] = []
    refused: dict[int, list[BaseDataProblem]] = {}
    for index, message in enumerate(messages):
        if message.action != "voucher.post" or "entries" not in message.payload:
            mapped.append(message)
            continue
        problems = codes.problems(message.payload)
        if problems:
            refused[index] = problems
            mapped.append(message)
        else:
            mapped.append(replace(message, payload=codes.apply(message.payload)))
    return mapped, refused
