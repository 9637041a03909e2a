"""`finoa sim kingdee --show-credentials`: the credentials in Kingdee's console names, kept
across runs; a damaged credentials file is a two-line config error."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import finoa

from finoa.cli_errors import ExitCode


def test_credentials_are_made_once_and_shown_in_the_console_names(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = finoa("sim", "kingdee", "--port", "9123", "--show-credentials", data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    shown = json.loads(first.stdout)
    names = {"acct_id", "user_name", "app_id", "app_secret", "server_url", "lcid", "password"}
    assert set(shown) == names
    assert shown["server_url"] == "http://127.0.0.1:9123/K3Cloud/"
    assert len(shown["app_id"].split("_")[1]) == 32  # the form the SDK's scheme needs
    again = finoa("sim", "kingdee", "--port", "9123", "--show-credentials", data_dir=data_dir)
    assert json.loads(again.stdout) == shown


def test_a_damaged_credentials_file_is_named_with_its_fix(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "sim-kingdee").mkdir(parents=True)
    damaged = data_dir / "sim-kingdee" / "credentials.json"
    damaged.write_text('{"acct_id": "x"}', "utf-8")
    result = finoa("sim", "kingdee", "--show-credentials", data_dir=data_dir)
    assert result.returncode == ExitCode.CONFIG
    error, fix = result.stderr.strip().splitlines()
    assert error.startswith("error:") and "credentials.json: lacks user_name" in error
    assert fix.startswith("fix: delete") and damaged.read_text("utf-8") == '{"acct_id": "x"}'
