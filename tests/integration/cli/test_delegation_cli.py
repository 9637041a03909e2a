"""`finoa delegation set|list|revoke`, run as real processes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.cli import finoa


def error_and_fix(result: subprocess.CompletedProcess[str], contains: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("error: ") and contains in lines[0], lines
    assert lines[1].startswith("fix: "), lines


def test_set_list_and_revoke_a_delegation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = finoa(
        "delegation",
        "set",
        "E0010",
        "E0012",
        "--from",
        "2026-12-21",
        "--to",
        "2026-12-31",
        "--type",
        "expense_claim",
        data_dir=data,
    )
    assert made.returncode == 0, made.stderr
    delegation_id = made.stdout.split(":")[0]
    assert made.stdout.strip() == (
        f"{delegation_id}: E0010 → E0012 2026-12-21..2026-12-31 expense_claim"
    )
    listing = finoa("delegation", "list", "--delegator", "E0010", data_dir=data)
    assert listing.returncode == 0 and "E0012" in listing.stdout, listing
    revoked = finoa("delegation", "revoke", delegation_id, data_dir=data)
    assert revoked.returncode == 0 and revoked.stdout.strip() == f"{delegation_id}: revoked"


def test_bad_delegations_are_one_error_and_change_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    error_and_fix(
        finoa(
            "delegation",
            "set",
            "E0010",
            "E0010",
            "--from",
            "2026-12-01",
            "--to",
            "2026-12-02",
            data_dir=data,
        ),
        "delegate_id: one cannot delegate to oneself",
    )
    error_and_fix(
        finoa(
            "delegation",
            "set",
            "E0010",
            "E0012",
            "--from",
            "2026-12-09",
            "--to",
            "2026-12-01",
            data_dir=data,
        ),
        "ends_on:",
    )
    error_and_fix(
        finoa(
            "delegation",
            "set",
            "E0010",
            "E0012",
            "--from",
            "9 Dec",
            "--to",
            "2026-12-01",
            data_dir=data,
        ),
        "--from: '9 Dec' is not a date",
    )
    error_and_fix(finoa("delegation", "revoke", "DLG-none", data_dir=data), "unknown delegation")
    listing = finoa("delegation", "list", data_dir=data)
    assert listing.returncode == 0 and "E0010" not in listing.stdout, listing
