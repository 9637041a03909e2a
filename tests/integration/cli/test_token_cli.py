"""`finoa token`: the token the OAuth endpoint would issue, for the data dir's clients."""

from __future__ import annotations

from pathlib import Path

from support.cli import finoa

from finoa.cli_errors import ExitCode
from finoa.config import load_settings
from finoa.security.tokens import verify_token


def test_a_token_for_the_admin_client_with_the_scopes_asked(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    every = finoa("token", data_dir=data_dir)
    narrow = finoa("token", "--scope", "claims:read ops:read", data_dir=data_dir)
    assert every.returncode == 0 and narrow.returncode == 0 and every.stderr == ""
    settings = load_settings(data_dir=data_dir)
    admin = verify_token(settings, every.stdout.strip())
    assert admin.client_id == "finoa-admin" and admin.has("periods:manage")
    reader = verify_token(settings, narrow.stdout.strip())
    assert reader.scopes == frozenset({"claims:read", "ops:read"})


def test_an_unknown_client_or_scope_is_named(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"FINOA_CLIENTS": "reporting:s3cret:claims:read"}
    unknown = finoa("token", "--client", "nobody", data_dir=data_dir, env=env)
    lines = unknown.stderr.strip().splitlines()
    assert unknown.returncode == ExitCode.BAD_INPUT and len(lines) == 2
    assert lines[0] == "error: --client: no API client named 'nobody'"
    assert "finoa-admin, reporting" in lines[1]
    refused = finoa(
        "token", "--client", "reporting", "--scope", "ops:replay", data_dir=data_dir, env=env
    )
    assert refused.returncode == ExitCode.BAD_INPUT
    assert "--scope: reporting may not have 'ops:replay'" in refused.stderr
    assert "s3cret" not in refused.stderr + refused.stdout
