"""`finoa doctor` as a real process, against real simulators up and down, a peer with a wrong
clock, bad permissions and unmigrated databases, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.cli import finoa
from support.databases import HEAD_REVISION
from support.processes import Secrets, Server, free_port, simulators

from finoa.cli_errors import ExitCode

SKEWED_PEER = Path(__file__).parents[2] / "support" / "skewed_peer.py"


@dataclass
class Installation:
    """A data dir with its environment: secrets, and where the OA and ERP are."""

    data_dir: Path
    env: dict[str, str]

    def doctor(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return finoa("doctor", *args, data_dir=self.data_dir, env={**self.env, **env})

    def report(self, *args: str, **env: str) -> tuple[int, dict[str, Any]]:
        """Exit code and the --json document."""
        result = self.doctor("--json", *args, **env)
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, json.loads(result.stdout)


def rows(document: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [c for c in document["checks"] if c["check"] == check]


def row(document: dict[str, Any], check: str, containing: str = "") -> dict[str, Any]:
    found = [c for c in rows(document, check) if containing in c["detail"]]
    assert len(found) == 1, (check, containing, document["checks"])
    return found[0]


def environment(data_dir: Path, secrets: Secrets, oa: str, erp: str) -> dict[str, str]:
    return {**secrets.env(), "FINOA_OA_BASE_URL": oa, "FINOA_ERP_BASE_URL": erp}


@pytest.fixture
def secrets() -> Secrets:
    return Secrets.fresh()


@pytest.fixture
def peers(tmp_path: Path, secrets: Secrets) -> Iterator[tuple[Server, Server]]:
    """The OA and ERP simulators, up."""
    with simulators(tmp_path / "sims", secrets, free_port(), auto_decide=False) as (oa, erp):
        yield oa, erp


@pytest.fixture
def installed(tmp_path: Path, secrets: Secrets, peers: tuple[Server, Server]) -> Installation:
    """A migrated SQLite installation whose OA and ERP are up."""
    oa, erp = peers
    data_dir = tmp_path / "data"
    install = Installation(data_dir, environment(data_dir, secrets, oa.url, erp.url))
    upgraded = finoa("db", "upgrade", data_dir=data_dir, env=install.env)
    assert upgraded.returncode == 0, upgraded.stderr
    return install


def test_a_healthy_installation_is_all_ok(installed: Installation) -> None:
    code, document = installed.report()
    assert code == 0 and document["status"] == "ok", document
    assert all(c["status"] == "ok" and c["hint"] == "" for c in document["checks"]), document
    assert row(document, "migrations")["detail"].startswith(f"at revision {HEAD_REVISION}")
    assert "synchronous=FULL" in row(document, "durability")["detail"]
    assert "mode 700" in row(document, "permissions", "data dir")["detail"]
    assert "mode 600" in row(document, "permissions", "database")["detail"]
    assert "mode 600" in row(document, "permissions", "secrets.json")["detail"]
    assert "free" in row(document, "disk")["detail"]
    for name in ("generic-oa", "generic-erp"):
        assert "api_key" in row(document, f"connector {name}: credentials")["detail"]
        assert "credentials accepted" in row(document, f"connector {name}: endpoint")["detail"]
        # uvicorn-served simulators tell their time in the Date header
        assert "within 5 s" in row(document, f"connector {name}: clock")["detail"]
    table = installed.doctor()
    assert table.returncode == 0 and table.stderr == ""
    assert f"all {len(document['checks'])} checks ok" in table.stdout


def test_a_healthy_postgresql_installation_is_all_ok(
    installed: Installation, empty_postgresql: str, tmp_path: Path
) -> None:
    config = tmp_path / "finoa.yaml"
    config.write_text(f"database_url: {empty_postgresql}\n")
    upgraded = finoa("db", "upgrade", "--config", str(config), data_dir=installed.data_dir)
    assert upgraded.returncode == 0, upgraded.stderr
    code, document = installed.report("--config", str(config))
    assert code == 0, document
    assert row(document, "durability")["detail"].startswith(
        "PostgreSQL fsync=on, synchronous_commit=on"
    )
    assert rows(document, "permissions") and not [
        c for c in document["checks"] if "database" in c["detail"] and "mode" in c["detail"]
    ]


def test_endpoints_that_are_down_fail_naming_the_setting(tmp_path: Path, secrets: Secrets) -> None:
    data_dir = tmp_path / "data"
    oa, erp = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    install = Installation(data_dir, environment(data_dir, secrets, oa, erp))
    finoa("db", "upgrade", data_dir=data_dir, env=install.env)
    code, document = install.report()
    assert code == ExitCode.CHECK_FAILED and document["status"] == "fail"
    oa_row = row(document, "connector generic-oa: endpoint")
    assert (
        oa_row["status"] == "fail" and oa in oa_row["detail"] and "unreachable" in oa_row["detail"]
    )
    assert oa_row["hint"] == "check oa_base_url (FINOA_OA_BASE_URL) and that the system is up"
    assert row(document, "connector generic-erp: endpoint")["status"] == "fail"
    assert not rows(document, "connector generic-oa: clock")  # nobody answered, no time told
    table = install.doctor()
    lines = table.stderr.strip().splitlines()
    assert table.returncode == ExitCode.CHECK_FAILED and len(lines) == 2, table.stderr
    assert lines[0] == "error: 2 check(s) failed, 0 warned" and lines[1].startswith("fix: ")
    assert "FINOA_OA_BASE_URL" in table.stdout


def test_refused_credentials_fail_naming_the_key(installed: Installation) -> None:
    code, document = installed.report(FINOA_ERP_API_KEY="not-the-key")
    assert code == ExitCode.CHECK_FAILED
    erp = row(document, "connector generic-erp: endpoint")
    assert erp["status"] == "fail" and "HTTP 401" in erp["detail"]
    assert erp["hint"] == "check the credentials: erp_api_key (FINOA_ERP_API_KEY)"
    assert row(document, "connector generic-oa: endpoint")["status"] == "ok"


def test_an_instance_whose_endpoint_is_down_among_configured_instances(
    installed: Installation, peers: tuple[Server, Server], tmp_path: Path, secrets: Secrets
) -> None:
    oa, erp = peers
    key_file = tmp_path / "erp-key"
    key_file.write_text(secrets.erp_api_key)
    key_file.chmod(0o600)
    config = tmp_path / "finoa.yaml"
    config.write_text(
        "connectors:\n"
        f"  hq-oa: {{connector: generic-oa, config: {{base_url: '{oa.url}', api_key_env: HQ_KEY,"
        f" webhook_secret_env: HQ_SECRET}}}}\n"
        f"  erp-main: {{connector: generic-erp, default: true, config: {{base_url: '{erp.url}',"
        f" api_key_file: {key_file}}}}}\n"
        f"  erp-old: {{connector: generic-erp, config: {{base_url: 'http://127.0.0.1:"
        f"{free_port()}', api_key: k}}}}\n"
    )
    env = {"HQ_KEY": secrets.oa_api_key, "HQ_SECRET": secrets.oa_webhook_secret}
    code, document = installed.report("--config", str(config), **env)
    assert code == ExitCode.CHECK_FAILED
    assert row(document, "connector hq-oa: endpoint")["status"] == "ok"
    assert row(document, "connector erp-main: endpoint")["status"] == "ok"
    old = row(document, "connector erp-old: endpoint")
    assert old["status"] == "fail"
    assert old["hint"] == "check connectors.erp-old.config.base_url and that the system is up"
    assert row(document, "permissions", str(key_file))["status"] == "ok"
    key_file.chmod(0o644)
    _, loose = installed.report("--config", str(config), **env)
    exposed = row(loose, "permissions", str(key_file))
    assert exposed["status"] == "fail" and exposed["hint"] == f"chmod 600 {key_file}"
    missing = installed.report("--config", str(config))[1]  # HQ_KEY unset
    (only,) = rows(missing, "connectors")
    assert only["status"] == "fail" and "HQ_KEY is not set" in only["detail"]


def test_bad_permissions_are_named_with_the_chmod_to_run(installed: Installation) -> None:
    data_dir = installed.data_dir
    data_dir.chmod(0o755)
    (data_dir / "finoa.db").chmod(0o644)
    (data_dir / "secrets.json").chmod(0o640)
    code, document = installed.report()
    assert code == ExitCode.CHECK_FAILED
    folder = row(document, "permissions", "data dir")
    assert folder["status"] == "warn" and folder["hint"] == f"chmod 700 {data_dir}"
    database = row(document, "permissions", "database")
    assert (
        database["status"] == "fail" and "readable by other users (mode 644)" in database["detail"]
    )
    secrets = row(document, "permissions", "secrets.json")
    assert (
        secrets["status"] == "fail" and secrets["hint"] == f"chmod 600 {data_dir / 'secrets.json'}"
    )
    (data_dir / "finoa.db").chmod(0o640)
    (data_dir / "secrets.json").chmod(0o600)
    code, document = installed.report()
    assert code == ExitCode.WARNINGS, document  # group-readable database, open data dir
    assert row(document, "permissions", "database")["status"] == "warn"


def test_durability_normal_is_a_warning_only(installed: Installation) -> None:
    code, document = installed.report(FINOA_SQLITE_SYNCHRONOUS="normal")
    assert code == ExitCode.WARNINGS and document["status"] == "warn"
    durability = row(document, "durability")
    assert durability["status"] == "warn" and "synchronous=NORMAL" in durability["detail"]
    assert "FINOA_SQLITE_SYNCHRONOUS" in durability["hint"]
    table = installed.doctor(FINOA_SQLITE_SYNCHRONOUS="normal")
    assert table.returncode == ExitCode.WARNINGS
    assert table.stderr.splitlines()[0] == "warning: 1 check(s) warned, none failed"
    bad = installed.report(FINOA_SQLITE_SYNCHRONOUS="sometimes")[1]
    assert row(bad, "durability")["status"] == "fail"


def test_unmigrated_and_old_sqlite_databases_say_to_upgrade(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    elsewhere = tmp_path / "elsewhere"
    fresh = finoa("doctor", "--json", "--data-dir", str(elsewhere), data_dir=data_dir)
    document = json.loads(fresh.stdout)
    database = row(document, "database")
    assert fresh.returncode == ExitCode.CHECK_FAILED and database["status"] == "fail"
    assert "not initialised" in database["detail"]
    assert database["hint"] == f"run `finoa db upgrade --data-dir {elsewhere}`"
    assert not (elsewhere / "finoa.db").exists()  # the doctor looks, it creates no database
    finoa("db", "upgrade", "0006", data_dir=data_dir)
    behind = json.loads(finoa("doctor", "--json", data_dir=data_dir).stdout)
    migrations = row(behind, "migrations")
    assert migrations["status"] == "fail"
    assert migrations["detail"] == f"at revision 0006; this code needs {HEAD_REVISION}"
    assert migrations["hint"] == "run `finoa db upgrade`"


def test_unmigrated_and_unreachable_postgresql(empty_postgresql: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    empty = tmp_path / "empty.yaml"
    empty.write_text(f"database_url: {empty_postgresql}\n")
    document = json.loads(
        finoa("doctor", "--json", "--config", str(empty), data_dir=data_dir).stdout
    )
    assert row(document, "database")["status"] == "ok"
    migrations = row(document, "migrations")
    assert migrations["status"] == "fail" and "not initialised" in migrations["detail"]
    assert migrations["hint"] == f"run `finoa db upgrade --config {empty}`"
    down = tmp_path / "down.yaml"
    down.write_text("database_url: postgresql://postgres@127.0.0.1:9/finoa\n")
    result = finoa("doctor", "--json", "--config", str(down), data_dir=data_dir)
    database = row(json.loads(result.stdout), "database")
    assert result.returncode == ExitCode.CHECK_FAILED
    assert database["status"] == "fail" and "cannot reach the database" in database["detail"]
    assert "database_url" in database["hint"]


def test_a_bad_config_file_is_the_one_failed_check(tmp_path: Path) -> None:
    config = tmp_path / "finoa.yaml"
    config.write_text("port: [8700\n")
    result = finoa("doctor", "--json", "--config", str(config), data_dir=tmp_path / "data")
    document = json.loads(result.stdout)
    assert result.returncode == ExitCode.CHECK_FAILED
    (only,) = document["checks"]
    assert only["check"] == "config" and only["status"] == "fail"
    assert (
        "is not valid YAML at line" in only["detail"]
        and only["hint"] == f"fix {config} (YAML) and run the command again"
    )


@pytest.fixture
def skewed_erp() -> Iterator[Any]:
    """Start peers whose clocks are off by the given seconds; stop them all at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(offset: float) -> str:
        port = free_port()
        process = subprocess.Popen([sys.executable, str(SKEWED_PEER), str(port), str(offset)])
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/api/ping", timeout=1)
                return url
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
            time.sleep(0.05)  # readiness polling with a deadline

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def test_an_endpoint_clock_off_warns_then_fails(installed: Installation, skewed_erp: Any) -> None:
    behind = skewed_erp(-30)
    code, document = installed.report(FINOA_ERP_BASE_URL=behind)
    clock = row(document, "connector generic-erp: clock")
    assert code == ExitCode.WARNINGS and clock["status"] == "warn", document
    assert 25 <= int(clock["detail"].split()[1]) <= 35 and "behind the hub's" in clock["detail"]
    assert "NTP" in clock["hint"]
    ahead = skewed_erp(600)
    code, document = installed.report(FINOA_ERP_BASE_URL=ahead)
    clock = row(document, "connector generic-erp: clock")
    assert code == ExitCode.CHECK_FAILED and clock["status"] == "fail"
    assert "ahead of the hub's" in clock["detail"] and "refused" in clock["detail"]
    assert row(document, "connector generic-oa: clock")["status"] == "ok"


def test_without_any_setting_the_doctor_reads_finoa_data_here(tmp_path: Path) -> None:
    """With no FINOA_* at all, the doctor reads ./finoa-data like every other command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINOA_")}
    result = subprocess.run(
        [sys.executable, "-m", "finoa", "doctor", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    document = json.loads(result.stdout)
    assert (
        row(document, "database")["detail"] == "finoa-data/finoa.db does not exist: not initialised"
    )
