"""`finoa sim wecom` on the command line: its credentials and its expected failures."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import finoa

from finoa.connectors.wecom.crypto import aes_key_bytes


def test_show_credentials_prints_the_console_names_and_keeps_them(tmp_path: Path) -> None:
    first = finoa("sim", "wecom", "--show-credentials", data_dir=tmp_path / "data")
    assert first.returncode == 0, first.stderr
    credentials = json.loads(first.stdout)
    assert {"corpid", "corpsecret", "token", "EncodingAESKey", "agentid"} <= set(credentials)
    assert credentials["corpid"].startswith("ww")
    assert len(aes_key_bytes(credentials["EncodingAESKey"])) == 32
    again = finoa("sim", "wecom", "--show-credentials", data_dir=tmp_path / "data")
    assert json.loads(again.stdout) == credentials


def test_bad_options_are_one_clear_failure(tmp_path: Path) -> None:
    done = finoa("sim", "wecom", "--callback-url", "ftp://x", data_dir=tmp_path / "data")
    assert done.returncode == 2
    assert "error: --callback-url" in done.stderr and "fix:" in done.stderr
    assert "Traceback" not in done.stderr
    done = finoa("sim", "wecom", "--reject-rate", "2", data_dir=tmp_path / "data")
    assert done.returncode == 2 and "--reject-rate" in done.stderr
    done = finoa("sim", "wecom", "--retry-scale", "0", data_dir=tmp_path / "data")
    assert done.returncode == 2 and "--retry-scale" in done.stderr
