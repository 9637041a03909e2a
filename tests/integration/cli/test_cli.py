"""The `finoa` command line, run as a real process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update
from support.cli import finoa

from finoa.store.tables import audit_events


def test_schema_prints_the_data_dictionary_with_chinese_labels(tmp_path: Path) -> None:
    result = finoa("schema", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    types = document["types"]
    assert {
        "ExpenseClaim",
        "Employee",
        "OrgUnit",
        "CostCenter",
        "Project",
        "Account",
        "ApprovalTask",
        "Voucher",
        "AuditEvent",
    } <= set(types)
    claim = types["ExpenseClaim"]["properties"]
    assert claim["id"]["title"] == "报销单号"
    assert claim["total_fen"]["type"] == "integer"
    one = json.loads(finoa("schema", "Voucher", data_dir=tmp_path).stdout)
    assert one["properties"]["voucher_no"]["title"] == "凭证号"


def test_unknown_schema_name_is_a_one_line_error(tmp_path: Path) -> None:
    result = finoa("schema", "Nope", data_dir=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "name: unknown type 'Nope'" in lines[0]


def test_db_upgrade_masterdata_and_connectors(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert "revision 0015" in finoa("db", "upgrade", data_dir=data).stdout
    assert finoa("db", "current", data_dir=data).stdout.strip() == "0015"
    loaded = finoa("masterdata", "load", data_dir=data)
    assert loaded.returncode == 0 and "18 employees" in loaded.stdout
    missing = finoa("masterdata", "load", str(tmp_path / "nope.yaml"), data_dir=data)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    listing = finoa("connectors", data_dir=data).stdout
    assert "generic-oa" in listing and "generic-erp" in listing


def test_audit_verify_names_the_first_broken_link(tmp_path: Path) -> None:
    data = tmp_path / "data"
    finoa("masterdata", "load", data_dir=data)
    finoa("masterdata", "load", data_dir=data)
    ok = finoa("audit", "verify", data_dir=data)
    assert ok.returncode == 0 and "intact: 2 events" in ok.stdout
    engine = create_engine(f"sqlite:///{data / 'finoa.db'}")
    with engine.begin() as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 2).values(actor="mallory"))
    engine.dispose()
    broken = finoa("audit", "verify", data_dir=data)
    assert broken.returncode == 1
    assert "broken at event 2" in broken.stderr


def test_replay_lists_and_refuses_unknown_ids(tmp_path: Path) -> None:
    data = tmp_path / "data"
    finoa("db", "upgrade", data_dir=data)
    listing = finoa("replay", data_dir=data)
    assert listing.returncode == 0 and "replay with --id N or --all" in listing.stdout
    unknown = finoa("replay", "--id", "999", data_dir=data)
    assert unknown.returncode == 2 and "no dead letter with id 999" in unknown.stderr
    none = finoa("replay", "--all", data_dir=data)
    assert none.returncode == 0 and "replayed 0 dead letter(s)" in none.stdout


@pytest.mark.slow
def test_demo_completes_the_loop(tmp_path: Path) -> None:
    """The README's first command, shortened: every valid claim ends posted or rejected,
    written back exactly once, invalid ones refused, the audit chain intact."""
    result = finoa(
        "demo",
        "--exit",
        "-n",
        "40",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "demo"),
        data_dir=tmp_path / "data",
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "every valid claim reached a final state exactly once" in out
    assert "intact" in out
