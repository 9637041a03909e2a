"""`finoa erp …` expected failures: two lines on stderr and a documented exit code."""

from __future__ import annotations

from pathlib import Path

from support.cli import finoa

from finoa.cli_errors import ExitCode


def two_lines(stderr: str) -> list[str]:
    lines = stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error:") and lines[1].startswith("fix:")
    return lines


def test_serving_a_site_never_made_says_to_run_init(tmp_path: Path) -> None:
    done = finoa("erp", "tryton", "serve", "--dir", str(tmp_path / "none"), data_dir=tmp_path)
    assert done.returncode == ExitCode.CONFIG
    assert "finoa erp tryton init" in "".join(two_lines(done.stderr))


def test_init_refuses_a_bad_backend_and_database_name(tmp_path: Path) -> None:
    bad_backend = finoa(
        "erp",
        "tryton",
        "init",
        "--dir",
        str(tmp_path / "s"),
        "--backend",
        "mysql://x",
        data_dir=tmp_path,
    )
    assert bad_backend.returncode == ExitCode.BAD_INPUT
    assert "mysql://x" in two_lines(bad_backend.stderr)[0]
    bad_name = finoa(
        "erp",
        "tryton",
        "init",
        "--dir",
        str(tmp_path / "s"),
        "--database",
        "a b",
        data_dir=tmp_path,
    )
    assert bad_name.returncode == ExitCode.BAD_INPUT
    assert "--database" in two_lines(bad_name.stderr)[0]


def test_base_data_of_an_unknown_instance_names_it(tmp_path: Path) -> None:
    done = finoa("erp", "base-data", "erp-nowhere", data_dir=tmp_path)
    assert done.returncode == ExitCode.UNKNOWN_CONNECTOR
    assert "erp-nowhere" in two_lines(done.stderr)[0]


def test_base_data_of_an_unreachable_erp(tmp_path: Path) -> None:
    env = {"FINOA_ERP_BASE_URL": "http://127.0.0.1:9", "FINOA_ERP_API_KEY": "k"}
    done = finoa("erp", "base-data", "generic-erp", data_dir=tmp_path, env=env)
    assert done.returncode == ExitCode.CONNECTOR_UNREACHABLE, done.stderr
    two_lines(done.stderr)
