"""Master data (主数据): org units, employees, cost centers, projects, chart of accounts."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, Table, func, insert, select

from finoa.store.tables import accounts, cost_centers, employees, org_units, projects
from finoa.store.uow import Database


def chart_of_accounts() -> list[dict[str, Any]]:
    text = resources.files("finoa.domain").joinpath("chart_of_accounts.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)["accounts"]
    return [
        {"code": str(code), "name_zh": zh, "name_en": en, "balance_side": side}
        for code, (zh, en, side) in raw.items()
    ]


def sample_masterdata() -> dict[str, Any]:
    text = resources.files("finoa.sample").joinpath("masterdata.yaml").read_text("utf-8")
    return dict(yaml.safe_load(text))


def load_masterdata(db: Database, data: dict[str, Any] | Path | None = None) -> dict[str, int]:
    """Replace-or-insert master data from a mapping or YAML file; returns counts per kind.

    Rows are upserted by id; nothing is deleted, so claims keep their references.
    """
    if isinstance(data, Path):
        data = dict(yaml.safe_load(data.read_text(encoding="utf-8")))
    data = data if data is not None else sample_masterdata()
    kinds: list[tuple[str, Table, str, list[dict[str, Any]]]] = [
        ("org_units", org_units, "id", list(data.get("org_units") or [])),
        # An employee listed without a grade (职级) has none: the policy's default grade.
        ("employees", employees, "id", [{"grade": None, **e} for e in data.get("employees") or []]),
        # A cost center listed without an owner has none (its approval steps go to the
        # fallback approver).
        (
            "cost_centers",
            cost_centers,
            "id",
            [{"owner_id": None, **c} for c in data.get("cost_centers") or []],
        ),
        ("projects", projects, "id", list(data.get("projects") or [])),
        ("accounts", accounts, "code", chart_of_accounts()),
    ]
    counts: dict[str, int] = {}
    with db.uow("masterdata") as uow:
        for name, table, key, rows in kinds:
            _upsert(uow.conn, table, key, rows)
            counts[name] = len(rows)
        uow.audit("masterdata.loaded", "masterdata", "all", counts)
        uow.commit()
    return counts


def _upsert(conn: Connection, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    existing = {r[0] for r in conn.execute(select(table.c[key]))}
    new = [r for r in rows if r[key] not in existing]
    if new:
        conn.execute(insert(table), new)
    for row in rows:
        if row[key] in existing:
            conn.execute(table.update().where(table.c[key] == row[key]).values(**row))


def count_accounts(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(accounts)).scalar_one())
