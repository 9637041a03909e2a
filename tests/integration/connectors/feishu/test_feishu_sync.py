"""`finoa sync oa feishu`: approvals whose events were lost are found at Feishu (the
simulator, a real process, pushes no events here) and applied once; a second sweep changes
nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, select
from support.cli import finoa
from support.feishu import FeishuSim, employee_form, start_feishu

from finoa.store.tables import claims


@pytest.fixture
def lost_events(tmp_path: Path) -> Iterator[tuple[FeishuSim, Path]]:
    sim = start_feishu(tmp_path / "sim", "--no-auto-decide")  # no --callback-url: all lost
    data = tmp_path / "data"
    data.mkdir()
    config = {
        "connectors": {
            "feishu": {
                "connector": "feishu",
                "approvals": {"expense_claim": "oa-led"},
                "config": sim.config(),
            },
            "erp-main": {
                "connector": "generic-erp",
                "config": {"base_url": "http://127.0.0.1:9", "api_key": "k"},
            },
        }
    }
    (data / "finoa.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    try:
        yield sim, data
    finally:
        sim.server.stop()


def start_instance(sim: FeishuSim, user: str, dept: str, amount: float) -> str:
    form = employee_form("办公费", amount, "办公用品")
    answer = sim.post("/_sim/instances", {"user_id": user, "department_id": dept, "form": form})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["instance_code"])


def sync(data: Path, *args: str) -> Any:
    env = {"FINOA_CONFIG": str(data / "finoa.yaml")}
    return finoa("sync", "oa", *args, data_dir=data, env=env)


def test_a_sweep_finds_what_the_events_missed_and_a_second_changes_nothing(
    lost_events: tuple[FeishuSim, Path],
) -> None:
    sim, data = lost_events
    env = {"FINOA_CONFIG": str(data / "finoa.yaml")}
    assert finoa("db", "upgrade", data_dir=data, env=env).returncode == 0
    assert finoa("masterdata", "load", data_dir=data, env=env).returncode == 0
    approved = start_instance(sim, "E0021", "fs-d03", 30.0)
    pending = start_instance(sim, "E0022", "fs-d03", 31.0)
    rejected = start_instance(sim, "E0023", "fs-d03", 32.0)
    canceled = start_instance(sim, "E0002", "fs-d01", 33.0)
    sim.post(f"/_sim/instances/{approved}/finish", {"status": "APPROVED"})
    sim.post(f"/_sim/instances/{rejected}/finish", {"status": "REJECTED", "comment": "超标"})
    sim.post(f"/_sim/instances/{canceled}/finish", {"status": "CANCELED"})

    first = sync(data, "feishu", "--since", "1h")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["seen"], report["applied"], report["duplicates"]) == (7, 7, 0)
    engine = create_engine(f"sqlite:///{data / 'finoa.db'}")
    with engine.connect() as conn:
        rows = conn.execute(select(claims.c.external_id, claims.c.status, claims.c.reason)).all()
    status = {r.external_id: r.status for r in rows}
    assert status == {
        approved: "approved",
        pending: "in_approval",
        rejected: "rejected",
        canceled: "withdrawn",
    }
    assert {r.external_id: r.reason for r in rows}[rejected] == "超标"

    second = sync(data, "feishu", "--since", "1h")
    report = json.loads(second.stdout)
    assert (report["applied"], report["duplicates"]) == (0, 7) and report["refused"] == []
    with engine.connect() as conn:
        again: dict[Any, Any] = dict(
            conn.execute(select(claims.c.external_id, claims.c.status)).all()
        )
    assert again == status
    engine.dispose()
