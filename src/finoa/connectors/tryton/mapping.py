"""Canonical vouchers -> Tryton `account.move` values.

A move's `description` is its finoa reference, `finoa:<voucher id>`, and nothing else: the
posted-lookup searches it by equality. Each line carries the entry's summary and its
dimensions (department, employee, project) in its own description; the employee is also the
line's party on accounts that require one (other payables 2241, advances 1221).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

REFERENCE_PREFIX = "finoa:"
CENT = Decimal("0.01")


def reference(voucher_id: str) -> str:
    """The move description that identifies a finoa voucher in Tryton."""
    return f"{REFERENCE_PREFIX}{voucher_id}"


def amount(fen: int) -> Decimal:
    """Integer fen -> CNY with two decimals."""
    return (Decimal(fen) / 100).quantize(CENT)


@dataclass(frozen=True)
class TrytonIds:
    """Tryton's record ids for finoa's codes (read with the base data)."""

    accounts: Mapping[str, int]
    parties: Mapping[str, int]
    periods: Mapping[str, int]
    journal: int


def line_description(entry: Mapping[str, Any]) -> str:
    aux = entry.get("aux") or {}
    tags = [
        f"{name} {aux[name]}" for name in ("department", "employee", "project") if aux.get(name)
    ]
    summary = str(entry.get("summary") or "")
    return f"{summary} [{', '.join(tags)}]" if tags else summary


def move_values(
    voucher: Mapping[str, Any], ids: TrytonIds, party_accounts: frozenset[str]
) -> dict[str, Any]:
    """The `account.move` create values of a canonical voucher (checked against the base data
    before, so every code has an id)."""
    lines = []
    for entry in voucher["entries"]:
        code = entry["account_code"]
        line: dict[str, Any] = {
            "account": ids.accounts[code],
            "debit": amount(entry["debit_fen"]),
            "credit": amount(entry["credit_fen"]),
            "description": line_description(entry),
        }
        if code in party_accounts:
            line["party"] = ids.parties[str(entry["aux"]["employee"])]
        lines.append(line)
    return {
        "journal": ids.journal,
        "period": ids.periods[voucher["period"]],
        "date": dt.date.fromisoformat(voucher["date"]),
        "description": reference(voucher["voucher_id"]),
        "lines": [["create", lines]],
    }
