"""`finoa sync oa`: approvals whose callbacks were lost are found at DingTalk (the simulator,
a real process, sends no callbacks here) and applied once; a second sweep changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, select
from support.cli import finoa
from support.dingtalk import DingTalkSim, employee_form, start_dingtalk

from finoa.store.tables import claims


@pytest.fixture
def lost_callbacks(tmp_path: Path) -> Iterator[tuple[DingTalkSim, Path]]:
    sim = start_dingtalk(tmp_path / "sim", "--no-auto-decide")  # no --callback-url: all lost
    data = tmp_path / "data"
    data.mkdir()
    config = {
        "connectors": {
            "dingtalk": {
                "connector": "dingtalk",
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


def start_instance(sim: DingTalkSim, user: str, dept: int, amount: str) -> str:
    form = employee_form("办公费", amount, "办公用品")
    answer = sim.post(
        "/_sim/instances", {"originatorUserId": user, "deptId": dept, "formComponentValues": form}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["instanceId"])


def sync(data: Path, *args: str) -> Any:
    env = {"FINOA_CONFIG": str(data / "finoa.yaml")}
    return finoa("sync", "oa", *args, data_dir=data, env=env)


def test_a_sweep_finds_what_the_callbacks_missed_and_a_second_changes_nothing(
    lost_callbacks: tuple[DingTalkSim, Path],
) -> None:
    sim, data = lost_callbacks
    env = {"FINOA_CONFIG": str(data / "finoa.yaml")}
    assert finoa("db", "upgrade", data_dir=data, env=env).returncode == 0
    assert finoa("masterdata", "load", data_dir=data, env=env).returncode == 0
    approved = start_instance(sim, "E0021", 4, "30.00")
    running = start_instance(sim, "E0022", 4, "31.00")
    revoked = start_instance(sim, "E0023", 4, "32.00")
    unknown = start_instance(sim, "E0002", 2, "33.00")
    sim.post(f"/_sim/instances/{approved}/finish", {"result": "agree"})
    sim.post(f"/_sim/instances/{revoked}/finish", {"result": "terminate"})

    first = sync(data, "dingtalk", "--since", "1h")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["seen"], report["applied"], report["duplicates"]) == (6, 6, 0)
    engine = create_engine(f"sqlite:///{data / 'finoa.db'}")
    with engine.connect() as conn:
        status = dict(conn.execute(select(claims.c.external_id, claims.c.status)).all())
    assert status == {
        approved: "approved",
        running: "in_approval",
        revoked: "withdrawn",
        unknown: "in_approval",
    }

    second = sync(data, "dingtalk", "--since", "1h")
    report = json.loads(second.stdout)
    assert (report["applied"], report["duplicates"]) == (0, 6) and report["refused"] == []
    with engine.connect() as conn:
        assert dict(conn.execute(select(claims.c.external_id, claims.c.status)).all()) == status
    engine.dispose()


def test_sync_refuses_what_it_cannot_sweep(lost_callbacks: tuple[DingTalkSim, Path]) -> None:
    _, data = lost_callbacks
    env = {"FINOA_CONFIG": str(data / "finoa.yaml")}
    assert finoa("db", "upgrade", data_dir=data, env=env).returncode == 0
    unknown = sync(data, "nowhere", "--since", "1h")
    assert unknown.returncode == 6 and "no OA connector instance named 'nowhere'" in unknown.stderr
    bad = sync(data, "dingtalk", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since" in bad.stderr and "fix:" in bad.stderr
