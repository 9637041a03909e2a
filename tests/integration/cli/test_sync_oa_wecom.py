"""`finoa sync oa wecom`: approvals whose callbacks were lost are found at WeCom (the
simulator, a real process, sends no callbacks here) through oa/getapprovalinfo and
oa/getapprovaldetail and applied once; a second sweep changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, select
from support.cli import finoa
from support.wecom import WeComSim, employee_approval, start_wecom

from finoa.store.tables import claims


@pytest.fixture
def lost_callbacks(tmp_path: Path) -> Iterator[tuple[WeComSim, Path]]:
    sim = start_wecom(tmp_path / "sim", "--no-auto-decide")  # no --callback-url: all lost
    data = tmp_path / "data"
    data.mkdir()
    config = {
        "connectors": {
            "wecom": {
                "connector": "wecom",
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


def apply(sim: WeComSim, userid: str, amount: str) -> str:
    answer = sim.post("/_sim/approvals", employee_approval(userid, "option-5", amount, "办公用品"))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["sp_no"])


def sync(data: Path, *args: str) -> Any:
    env = {"FINOA_CONFIG": str(data / "finoa.yaml")}
    return finoa("sync", "oa", *args, data_dir=data, env=env)


def test_a_wecom_sweep_finds_what_the_callbacks_missed_and_a_second_changes_nothing(
    lost_callbacks: tuple[WeComSim, Path],
) -> None:
    sim, data = lost_callbacks
    env = {"FINOA_CONFIG": str(data / "finoa.yaml")}
    assert finoa("db", "upgrade", data_dir=data, env=env).returncode == 0
    assert finoa("masterdata", "load", data_dir=data, env=env).returncode == 0
    approved = apply(sim, "E0021", "30.00")
    running = apply(sim, "E0022", "31.00")
    rejected = apply(sim, "E0023", "32.00")
    revoked = apply(sim, "E0002", "33.00")
    sim.post(f"/_sim/approvals/{approved}/decide", {"result": "agree"})
    sim.post(f"/_sim/approvals/{rejected}/decide", {"result": "reject", "speech": "发票缺失"})
    sim.post(f"/_sim/approvals/{revoked}/decide", {"result": "revoke"})

    first = sync(data, "wecom", "--since", "1h")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["seen"], report["applied"], report["duplicates"]) == (7, 7, 0)
    engine = create_engine(f"sqlite:///{data / 'finoa.db'}")
    with engine.connect() as conn:
        rows = conn.execute(select(claims.c.external_id, claims.c.status, claims.c.reason)).all()
    status = {row.external_id: row.status for row in rows}
    assert status == {
        approved: "approved",
        running: "in_approval",
        rejected: "rejected",
        revoked: "withdrawn",
    }
    assert {row.external_id: row.reason for row in rows}[rejected] == "发票缺失"

    second = sync(data, "wecom", "--since", "1h")
    report = json.loads(second.stdout)
    assert (report["applied"], report["duplicates"]) == (0, 7) and report["refused"] == []
    with engine.connect() as conn:
        after = {
            row.external_id: row.status
            for row in conn.execute(select(claims.c.external_id, claims.c.status))
        }
    assert after == status
    engine.dispose()
