"""Expected failures of every `finoa` command: two lines on stderr, no traceback, a known exit code.

Each command runs as a real `python -m finoa` process against an empty data dir and against
bad configurations; commands that would serve are only given bad options or config, which must
stop them before anything starts.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.cli import finoa

from finoa.cli_errors import ExitCode

CONFIGURED_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("serve",),
    ("worker",),
    ("sim", "oa"),
    ("sim", "erp"),
    ("db", "upgrade"),
    ("db", "current"),
    ("masterdata", "load"),
    ("audit", "verify"),
    ("replay",),
    ("periods", "list"),
    ("periods", "close", "2026-01"),
    ("periods", "open", "2026-01"),
)
READING_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("audit", "verify"),
    ("replay",),
    ("replay", "--held"),
)


def run_all(
    commands: Sequence[Sequence[str]], tmp_path: Path, env: dict[str, str] | None = None
) -> list[tuple[Sequence[str], subprocess.CompletedProcess[str]]]:
    """Each command in its own empty data dir, a few at a time."""

    def one(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        data_dir = tmp_path / uuid.uuid4().hex[:8] / "data"
        data_dir.parent.mkdir(parents=True)
        return finoa(*args, data_dir=data_dir, env=env, timeout=60)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(zip(commands, pool.map(one, commands), strict=True))


def assert_expected_failure(
    args: Sequence[str],
    result: subprocess.CompletedProcess[str],
    code: ExitCode,
    *phrases: str,
) -> None:
    """No traceback; `error: …` naming the problem, then `fix: …` saying what to do."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, (args, output)
    assert result.returncode == code, (args, result.returncode, output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, (args, lines)
    assert lines[0].startswith("error: ") and lines[1].startswith("fix: "), (args, lines)
    for phrase in phrases:
        assert phrase in result.stderr, (args, phrase, result.stderr)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_reading_an_empty_data_dir_says_to_run_db_upgrade(tmp_path: Path) -> None:
    for args, result in run_all(READING_COMMANDS, tmp_path):
        assert_expected_failure(
            args, result, ExitCode.NOT_MIGRATED, "not initialised", "run `finoa db upgrade`"
        )


def test_commands_that_migrate_or_need_no_database_succeed_on_an_empty_data_dir(
    tmp_path: Path,
) -> None:
    commands = (("db", "current"), ("periods", "list"), ("connectors",), ("schema", "Voucher"))
    for args, result in run_all(commands, tmp_path):
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
    assert "not migrated" in run_all([("db", "current")], tmp_path)[0][1].stdout


def test_the_not_initialised_fix_repeats_the_data_dir_given(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    result = finoa("audit", "verify", "--data-dir", str(elsewhere), data_dir=tmp_path / "data")
    assert_expected_failure(
        ("audit", "verify"),
        result,
        ExitCode.NOT_MIGRATED,
        f"run `finoa db upgrade --data-dir {elsewhere}`",
    )


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = finoa("--debug", "audit", "verify", data_dir=tmp_path / "data")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "CliError" in result.stderr


def test_invalid_yaml_names_the_file_and_line_for_every_command(tmp_path: Path) -> None:
    config = write(tmp_path / "finoa.yaml", "host: 127.0.0.1\nport: [8700\n")
    commands = [(*args, "--config", str(config)) for args in CONFIGURED_COMMANDS]
    for args, result in run_all(commands, tmp_path):
        assert_expected_failure(
            args, result, ExitCode.CONFIG, f"{config} is not valid YAML at line", f"fix {config}"
        )


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    commands = [(*args, "--config", str(missing)) for args in CONFIGURED_COMMANDS]
    for args, result in run_all(commands, tmp_path):
        assert_expected_failure(
            args, result, ExitCode.CONFIG, f"--config: {missing} does not exist"
        )


def test_a_config_from_the_environment_that_is_missing_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone.yaml"
    (args, result), *_ = run_all([("db", "current")], tmp_path, env={"FINOA_CONFIG": str(missing)})
    assert_expected_failure(args, result, ExitCode.CONFIG, str(missing))


def test_invalid_settings_name_the_field(tmp_path: Path) -> None:
    zone = write(tmp_path / "zone.yaml", "company_timezone: Mars/Olympus\n")
    port = write(tmp_path / "port.yaml", "port: 99999\n")
    zone_results = run_all([("db", "current", "--config", str(zone))], tmp_path)
    assert_expected_failure(*zone_results[0], ExitCode.CONFIG, "company_timezone", "Mars/Olympus")
    for args, result in run_all([("serve", "--config", str(port))], tmp_path):
        assert_expected_failure(args, result, ExitCode.CONFIG, "port: 99999 is outside 1-65535")


def test_a_config_file_that_is_not_a_mapping_or_lacks_a_field_is_named(tmp_path: Path) -> None:
    listing = write(tmp_path / "list.yaml", "- port\n- 8700\n")
    client = write(tmp_path / "client.yaml", "clients: [{secret: s}]\n")
    commands = [("db", "current", "--config", str(listing)), ("replay", "--config", str(client))]
    results = run_all(commands, tmp_path)
    assert_expected_failure(*results[0], ExitCode.CONFIG, f"{listing} holds a list")
    assert_expected_failure(*results[1], ExitCode.CONFIG, "'client_id' is missing", str(client))


@pytest.mark.parametrize(
    "args",
    [
        ("serve", "--port", "99999"),
        ("sim", "oa", "--port", "0"),
        ("sim", "erp", "--port", "70000"),
        ("demo", "--port", "65536", "--exit"),
    ],
)
def test_ports_outside_the_range_stop_the_command_before_it_serves(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    result = finoa(*args, data_dir=tmp_path / "data", timeout=60)
    assert_expected_failure(args, result, ExitCode.BAD_INPUT, "'--port'", "--help`")
    assert "serving" not in result.stdout and "simulator on" not in result.stdout


def test_other_bad_option_values_are_named(tmp_path: Path) -> None:
    commands = (
        ("replay", "--page", "0"),
        ("sim", "erp", "--idempotency", "sometimes"),
        ("sim", "oa", "--reject-rate", "2"),
    )
    results = run_all(commands, tmp_path)
    assert_expected_failure(*results[0], ExitCode.BAD_INPUT, "'--page'", "finoa replay --help")
    assert_expected_failure(*results[1], ExitCode.BAD_INPUT, "--idempotency")
    reject = results[2][1]
    assert reject.returncode == ExitCode.BAD_INPUT and "--reject-rate" in reject.stderr
    demo = finoa("demo", "--claims", "0", data_dir=tmp_path / "demo")
    assert demo.returncode == ExitCode.BAD_INPUT and "--claims" in demo.stderr


def test_an_unknown_connector_is_named_with_the_installed_ones(tmp_path: Path) -> None:
    config = write(tmp_path / "finoa.yaml", "connectors:\n  hq-oa: {connector: lark-oa}\n")
    commands = [("serve", "--config", str(config)), ("worker", "--config", str(config))]
    for args, result in run_all(commands, tmp_path):
        assert_expected_failure(
            args, result, ExitCode.UNKNOWN_CONNECTOR, "connectors.hq-oa.connector", "generic-oa"
        )


def test_an_unknown_connector_instance_as_destination_lists_the_known_ones(tmp_path: Path) -> None:
    (args, result), *_ = run_all([("replay", "--destination", "erp-nowhere")], tmp_path)
    assert_expected_failure(
        args, result, ExitCode.UNKNOWN_CONNECTOR, "'erp-nowhere'", "generic-erp, generic-oa"
    )


def test_missing_secrets_name_the_variable_or_file(tmp_path: Path) -> None:
    by_env = write(
        tmp_path / "env.yaml",
        "connectors:\n  erp-main:\n    connector: generic-erp\n"
        "    config: {base_url: 'http://127.0.0.1:9', api_key_env: FINOA_TEST_UNSET_KEY}\n",
    )
    by_file = write(
        tmp_path / "file.yaml",
        "connectors:\n  erp-main:\n    connector: generic-erp\n"
        f"    config: {{base_url: 'http://127.0.0.1:9', api_key_file: {tmp_path / 'no-key'}}}\n",
    )
    commands = [
        ("serve", "--config", str(by_env)),
        ("worker", "--config", str(by_env)),
        ("replay", "--destination", "erp-main", "--config", str(by_env)),
        ("serve", "--config", str(by_file)),
    ]
    results = run_all(commands, tmp_path)
    for args, result in results[:3]:
        assert_expected_failure(
            args, result, ExitCode.MISSING_SECRET, "FINOA_TEST_UNSET_KEY is not set"
        )
    assert_expected_failure(*results[3], ExitCode.MISSING_SECRET, f"cannot read {tmp_path}")


def test_unreadable_secrets_json_is_a_secrets_error(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "secrets.json").write_text("{not json")
    result = finoa("db", "current", data_dir=data_dir)
    assert_expected_failure(("db", "current"), result, ExitCode.MISSING_SECRET, "secrets.json")


def test_an_unreachable_postgresql_says_so(tmp_path: Path) -> None:
    config = write(
        tmp_path / "finoa.yaml", "database_url: postgresql://postgres@127.0.0.1:9/finoa\n"
    )
    commands = [
        (*args, "--config", str(config))
        for args in (
            ("db", "current"),
            ("db", "upgrade"),
            ("audit", "verify"),
            ("replay",),
            ("periods", "list"),
            ("masterdata", "load"),
            ("worker",),
        )
    ]
    for args, result in run_all(commands, tmp_path):
        assert_expected_failure(
            args,
            result,
            ExitCode.DATABASE_UNREACHABLE,
            "cannot reach the database",
            "port 9",
            "database_url",
        )


def test_an_unmigrated_postgresql_says_to_run_db_upgrade(
    empty_postgresql: str, tmp_path: Path
) -> None:
    config = write(tmp_path / "finoa.yaml", f"database_url: {empty_postgresql}\n")
    commands = [(*args, "--config", str(config)) for args in READING_COMMANDS]
    for args, result in run_all(commands, tmp_path):
        assert_expected_failure(
            args,
            result,
            ExitCode.NOT_MIGRATED,
            "not initialised",
            f"run `finoa db upgrade --config {config}`",
        )
