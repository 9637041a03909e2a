"""`finoa periods list|close|open` and the company-time settings, run as real processes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from support.cli import finoa

from finoa.store.tables import audit_events


def one_line_error(result: subprocess.CompletedProcess[str], contains: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and contains in lines[0], lines


def config_error(result: subprocess.CompletedProcess[str], contains: str) -> None:
    """A bad setting: exit code 3, the field named, then what to fix."""
    assert result.returncode == 3, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("error: ") and contains in lines[0], lines
    assert lines[1].startswith("fix: "), lines


def test_close_list_and_open_a_period_as_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    empty = finoa("periods", "list", data_dir=data)
    assert empty.returncode == 0, empty.stderr
    assert "period" in empty.stdout and "2026-02" not in empty.stdout
    closed = finoa("periods", "close", "2026-02", data_dir=data)
    assert closed.returncode == 0, closed.stderr
    assert closed.stdout.strip() == "period 2026-02 is closed (0 vouchers)"
    listing = finoa("periods", "list", data_dir=data)
    (row,) = [line for line in listing.stdout.splitlines() if "2026-02" in line]
    assert "closed" in row and "cli" in row
    opened = finoa("periods", "open", "2026-02", data_dir=data)
    assert opened.returncode == 0 and opened.stdout.strip() == "period 2026-02 is open (0 vouchers)"
    engine = create_engine(f"sqlite:///{data / 'finoa.db'}")
    try:
        with engine.connect() as conn:
            events = conn.execute(
                select(audit_events.c.action, audit_events.c.object_id, audit_events.c.actor)
                .where(audit_events.c.object_type == "period")
                .order_by(audit_events.c.seq)
            ).all()
    finally:
        engine.dispose()
    assert [tuple(e) for e in events] == [
        ("period.closed", "2026-02", "cli"),
        ("period.opened", "2026-02", "cli"),
    ]
    assert finoa("audit", "verify", data_dir=data).returncode == 0


@pytest.mark.parametrize(
    ("args", "contains"),
    [
        (("close", "2026-13"), "period: month 13 is not 01-12"),
        (("close", "26-02"), "period: '26-02' is not a period like 2026-02"),
        (("open", "2026-02-01"), "period: '2026-02-01' is not a period"),
        (("open", ""), "period: '' is not a period"),
    ],
)
def test_bad_period_is_a_one_line_error_and_changes_nothing(
    tmp_path: Path, args: tuple[str, ...], contains: str
) -> None:
    data = tmp_path / "data"
    one_line_error(finoa("periods", *args, data_dir=data), contains)
    listing = finoa("periods", "list", data_dir=data)
    assert listing.returncode == 0 and re.search(r"\d{4}-\d{2}", listing.stdout) is None


@pytest.mark.parametrize(
    ("env", "contains"),
    [
        (
            {"FINOA_COMPANY_TIMEZONE": "Mars/Olympus_Mons"},
            "configuration: company_timezone: unknown time zone 'Mars/Olympus_Mons'",
        ),
        (
            {"FINOA_CLOSED_PERIOD_POLICY": "sometimes"},
            "configuration: closed_period_policy: 'sometimes' is not one of refuse, next_open",
        ),
    ],
)
def test_bad_company_time_settings_are_config_errors(
    tmp_path: Path, env: dict[str, str], contains: str
) -> None:
    config_error(finoa("periods", "list", data_dir=tmp_path / "data", env=env), contains)


def test_company_timezone_from_finoa_yaml(tmp_path: Path) -> None:
    config = tmp_path / "finoa.yaml"
    config.write_text("company_timezone: Atlantis/Capital\n", encoding="utf-8")
    result = finoa("periods", "list", "--config", str(config), data_dir=tmp_path / "data")
    config_error(result, "company_timezone: unknown time zone 'Atlantis/Capital'")
    config.write_text("company_timezone: Europe/Berlin\nclosed_period_policy: refuse\n")
    valid = finoa("periods", "list", "--config", str(config), data_dir=tmp_path / "data")
    assert valid.returncode == 0, valid.stderr
