"""`finoa doctor` (F15): is this installation fit to run, and if not, what to do about it.

Each check gives a finding, `ok`, `warn` or `fail`, with a hint saying what to run or change:

- **config**: the config file (or the embedded defaults) and the `FINOA_*` variables load;
- **database**: reachable, and at the migration revision this code needs;
- **durability**: SQLite's `synchronous` setting, PostgreSQL's `fsync` and
  `synchronous_commit`;
- **permissions**: the data dir and the SQLite database closed to other users, secrets files
  (`secrets.json`, every `*_file` secret of a connector instance) at mode 600;
- **disk**: free space where the data dir lives;
- **connectors**: per instance, its credentials present, its endpoint reachable with them
  (`Connector.health()`, which obtains a token where the connector uses tokens), a callback
  URL where the connector's config schema has one, and the endpoint's clock against the
  hub's where the endpoint reports its time.

Exit codes, for scripts: 0 when every check is ok, `ExitCode.WARNINGS` when some only warn,
`ExitCode.CHECK_FAILED` when any fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from finoa.cli_errors import DATABASE_FIX, CliError, ExitCode, explain
from finoa.config import Settings
from finoa.connectors.base import ConnectorManifest, HealthReport
from finoa.connectors.instances import (
    DEFAULT_ERP,
    DEFAULT_OA,
    ConnectorConfigError,
    ConnectorInstance,
    load_instances,
)
from finoa.connectors.registry import available_connectors

CLOCK_WARN_SECONDS = 5.0  # beyond this, timestamps in the audit trail and at peers disagree
CLOCK_FAIL_SECONDS = 60.0  # beyond this, signed requests and tokens start being refused
DISK_WARN_BYTES = 1 << 30  # 1 GiB
DISK_FAIL_BYTES = 100 << 20  # 100 MiB
CALLBACK_FIELD = "callback_url"
WEBHOOK_PATH = "/api/v1/webhooks/{instance}"


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    """One row of the report: what was checked, how it stands, what was found, what to do."""

    check: str
    status: Status
    detail: str
    hint: str = ""


def ok(check: str, detail: str) -> Finding:
    return Finding(check, Status.OK, detail)


def warn(check: str, detail: str, hint: str) -> Finding:
    return Finding(check, Status.WARN, detail, hint)


def fail(check: str, detail: str, hint: str) -> Finding:
    return Finding(check, Status.FAIL, detail, hint)


def exit_code(findings: Sequence[Finding]) -> int:
    """0 all ok; WARNINGS when the worst is a warning; CHECK_FAILED when any check failed."""
    statuses = {f.status for f in findings}
    if Status.FAIL in statuses:
        return int(ExitCode.CHECK_FAILED)
    if Status.WARN in statuses:
        return int(ExitCode.WARNINGS)
    return 0


def examine(
    load: Callable[[], Settings], config: Path | None, data_dir: Path | None
) -> list[Finding]:
    """Every check, in order. `load` builds the settings (raising CliError); `config` and
    `data_dir` are the options given, repeated in the hints' commands."""
    options = (f" --config {config}" if config else "") + (
        f" --data-dir {data_dir}" if data_dir else ""
    )
    try:
        settings = load()
    except CliError as exc:
        return [fail("config", exc.problem, exc.fix)]
    findings = [config_finding(config)]
    findings += database_findings(settings, options)
    findings += permission_findings(settings)
    findings.append(disk_finding(settings.data_dir))
    findings += connector_findings(settings)
    return findings


def config_finding(config: Path | None) -> Finding:
    path = config or (Path(os.environ["FINOA_CONFIG"]) if os.environ.get("FINOA_CONFIG") else None)
    if path is None and Path("finoa.yaml").exists():
        path = Path("finoa.yaml")
    if path is None:
        return ok("config", "no finoa.yaml: the embedded defaults and FINOA_* variables")
    return ok("config", f"{path} and the FINOA_* variables")


# -- database --------------------------------------------------------------------------------


def _sqlite_path(url: str) -> Path | None:
    path = url.split("///", 1)[-1] if "///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def database_findings(settings: Settings, options: str) -> list[Finding]:
    """Reachability, migration revision and durability of the configured database."""
    from alembic.script import ScriptDirectory

    from finoa.store.db import alembic_config, current_revision

    url = settings.effective_database_url
    upgrade = f"run `finoa db upgrade{options}`"
    sqlite_file = _sqlite_path(url) if settings.is_sqlite else None
    where = str(sqlite_file) if sqlite_file else url.rpartition("@")[2]
    if settings.is_sqlite and (sqlite_file is None or not sqlite_file.exists()):
        return [fail("database", f"{where} does not exist: not initialised", upgrade)]
    try:
        current = current_revision(url)
    except Exception as exc:
        error = explain(exc)
        problem = error.problem if error else f"{type(exc).__name__}: {exc}"
        return [fail("database", problem, error.fix if error else DATABASE_FIX)]
    scripts = ScriptDirectory.from_config(alembic_config(url))
    head = scripts.get_current_head()
    findings = [ok("database", f"{where} reachable")]
    if current == head:
        findings.append(ok("migrations", f"at revision {head}, the newest"))
    elif current is None:
        findings.append(fail("migrations", "not initialised (no revision)", upgrade))
    elif current in {s.revision for s in scripts.walk_revisions()}:
        findings.append(
            fail("migrations", f"at revision {current}; this code needs {head}", upgrade)
        )
    else:
        findings.append(
            fail(
                "migrations",
                f"at revision {current}, which this finoa does not know (a newer release?)",
                "run the finoa release that migrated it, or restore a backup made for this one",
            )
        )
    findings.append(durability_finding(settings))
    return findings


def durability_finding(settings: Settings) -> Finding:
    """SQLite: the `synchronous` mode in effect; PostgreSQL: `fsync` and `synchronous_commit`."""
    from sqlalchemy import text

    from finoa.store.db import SQLITE_SYNCHRONOUS_MODES, make_engine

    url = settings.effective_database_url
    mode = settings.sqlite_synchronous.lower()
    if settings.is_sqlite and mode not in SQLITE_SYNCHRONOUS_MODES:
        return fail(
            "durability",
            f"sqlite_synchronous: {settings.sqlite_synchronous!r} is not one of "
            + ", ".join(SQLITE_SYNCHRONOUS_MODES),
            "set FINOA_SQLITE_SYNCHRONOUS=full (the default) or leave it unset",
        )
    engine = make_engine(
        url, pool_size=1, sqlite_synchronous=mode if settings.is_sqlite else "full"
    )
    try:
        with engine.connect() as conn:
            if settings.is_sqlite:
                level = conn.exec_driver_sql("PRAGMA synchronous").scalar()
                journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                named = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(int(level or 0), "?")
                found = f"SQLite synchronous={named}, journal_mode={journal}"
                if named in ("FULL", "EXTRA"):
                    return ok(
                        "durability", f"{found}: every acknowledged commit survives power loss"
                    )
                return warn(
                    "durability",
                    f"{found}: the last commits may be lost on power loss",
                    "unset FINOA_SQLITE_SYNCHRONOUS (or set it to full) unless speed matters more",
                )
            fsync = conn.execute(text("SHOW fsync")).scalar()
            commit = conn.execute(text("SHOW synchronous_commit")).scalar()
    except Exception as exc:
        error = explain(exc)
        return fail("durability", error.problem if error else str(exc), DATABASE_FIX)
    finally:
        engine.dispose()
    found = f"PostgreSQL fsync={fsync}, synchronous_commit={commit}"
    if fsync != "on":
        return fail(
            "durability",
            f"{found}: a crash can corrupt the database",
            "set fsync = on in postgresql.conf and reload the server",
        )
    if commit == "off":
        return warn(
            "durability",
            f"{found}: the last commits may be lost in a crash",
            "set synchronous_commit = on for the finoa database or role",
        )
    return ok("durability", f"{found}: every acknowledged commit is on disk")


# -- permissions and disk ----------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# (mask, status, what the bits mean) from the most serious; the first that matches decides
DATA_DIR_RULES = ((0o007, Status.WARN, "is open to other users"),)
DATABASE_RULES = (
    (0o004, Status.FAIL, "is readable by other users"),
    (0o040, Status.WARN, "is readable by its group"),
)
SECRETS_RULES = ((0o077, Status.FAIL, "is open to other users or its group"),)


def mode_finding(
    what: str, path: Path, rules: Sequence[tuple[int, Status, str]], chmod: str
) -> Finding:
    """`what path` judged by its mode against `rules`; ok when no rule's bits are set."""
    mode = _mode(path)
    for mask, status, meaning in rules:
        if mode & mask:
            detail = f"{what} {path} {meaning} (mode {mode:o})"
            return Finding("permissions", status, detail, f"chmod {chmod} {path}")
    return ok("permissions", f"{what} {path} (mode {mode:o})")


def permission_findings(settings: Settings) -> list[Finding]:
    """The data dir and the SQLite files closed to others; secrets files at mode 600."""
    findings: list[Finding] = []
    if settings.data_dir.exists():
        findings.append(mode_finding("data dir", settings.data_dir, DATA_DIR_RULES, "700"))
    sqlite_file = _sqlite_path(settings.effective_database_url) if settings.is_sqlite else None
    if sqlite_file is not None:
        files = [sqlite_file.with_name(sqlite_file.name + s) for s in ("", "-wal", "-shm")]
        findings += [
            mode_finding("database", f, DATABASE_RULES, "600") for f in files if f.exists()
        ]
    # a missing secrets file is the connectors check's finding
    findings += [
        mode_finding("secrets file", f, SECRETS_RULES, "600")
        for f in secret_files(settings)
        if f.exists()
    ]
    return findings


def secret_files(settings: Settings) -> list[Path]:
    """`secrets.json` in the data dir, and every `<field>_file` of a connector instance."""
    files = [settings.data_dir / "secrets.json"]
    connectors = settings.extra.get("connectors")
    if isinstance(connectors, Mapping):
        for spec in connectors.values():
            config = spec.get("config") if isinstance(spec, Mapping) else None
            if isinstance(config, Mapping):
                files += [
                    Path(value)
                    for key, value in config.items()
                    if str(key).endswith("_file") and isinstance(value, str) and value
                ]
    return files


def disk_finding(
    data_dir: Path, warn_below: int = DISK_WARN_BYTES, fail_below: int = DISK_FAIL_BYTES
) -> Finding:
    """Free space on the file system of the data dir (or of its nearest existing parent)."""
    where = data_dir.absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    detail = f"{_size(free)} free where {data_dir} lives"
    if free < fail_below:
        return fail("disk", detail, f"free space there: finoa needs at least {_size(fail_below)}")
    if free < warn_below:
        return warn("disk", detail, f"free space there before it drops below {_size(fail_below)}")
    return ok("disk", detail)


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return f"{count} B"  # pragma: no cover


# -- connectors --------------------------------------------------------------------------------


def connector_findings(settings: Settings) -> list[Finding]:
    """Per connector instance: credentials, reachability with them, callback URL, clock."""
    try:
        instances = load_instances(settings)
    except ConnectorConfigError as exc:
        error = explain(exc)
        assert error is not None
        return [fail("connectors", error.problem, error.fix)]
    factories = available_connectors()
    checked = [(i, factories[i.connector].manifest) for i in instances.instances.values()]
    reports = asyncio.run(_probe(settings, [i for i, _ in checked]))
    embedded = "connectors" not in settings.extra
    findings: list[Finding] = []
    for (instance, manifest), (report, asked_at) in zip(checked, reports, strict=True):
        check = f"connector {instance.name}"
        findings.append(credentials_finding(f"{check}: credentials", instance, manifest))
        findings.append(reach_finding(f"{check}: endpoint", instance, manifest, report, embedded))
        callback = callback_finding(f"{check}: callback URL", instance, manifest)
        if callback is not None:
            findings.append(callback)
        if report.server_time is not None:
            findings.append(clock_finding(f"{check}: clock", report.server_time, asked_at))
    return findings


async def _probe(
    settings: Settings, instances: Sequence[ConnectorInstance]
) -> list[tuple[HealthReport, datetime]]:
    """`health()` of every instance at once; each with the hub's time halfway through."""
    factories = available_connectors()
    async with httpx.AsyncClient(timeout=settings.connector_timeout_seconds) as http:

        async def one(instance: ConnectorInstance) -> tuple[HealthReport, datetime]:
            connector = factories[instance.connector](dict(instance.config), http)
            started = datetime.now(UTC)
            try:
                report = await connector.health()
            except Exception as exc:  # a connector's own bug must not hide the others
                report = HealthReport(False, f"health() raised {type(exc).__name__}: {exc}")
            finally:
                await connector.aclose()
            return report, started + (datetime.now(UTC) - started) / 2

        return list(await asyncio.gather(*(one(i) for i in instances)))


def _where_configured(instance: ConnectorInstance, field: str, embedded: bool) -> str:
    """Where an instance's config field is set, as a hint names it."""
    if embedded and instance.name in (DEFAULT_OA, DEFAULT_ERP):
        prefix = "oa" if instance.name == DEFAULT_OA else "erp"
        return f"{prefix}_{field} (FINOA_{prefix.upper()}_{field.upper()})"
    return f"connectors.{instance.name}.config.{field}"


def credentials_finding(
    check: str, instance: ConnectorInstance, manifest: ConnectorManifest
) -> Finding:
    """The instance's secret fields (those its schema marks writeOnly) that are required."""
    schema = manifest.config_schema
    properties: Mapping[str, Any] = schema.get("properties", {})
    required = [
        name for name in schema.get("required", []) if properties.get(name, {}).get("writeOnly")
    ]
    missing = [name for name in required if not instance.config.get(name)]
    if missing:
        return fail(
            check,
            f"missing: {', '.join(missing)}",
            f"set {missing[0]} (or {missing[0]}_env, {missing[0]}_file) in "
            f"connectors.{instance.name}.config",
        )
    present = [name for name in sorted(instance.secret_fields) if instance.config.get(name)]
    return ok(check, f"present: {', '.join(present) or 'none needed'}")


def reach_finding(
    check: str,
    instance: ConnectorInstance,
    manifest: ConnectorManifest,
    report: HealthReport,
    embedded: bool,
) -> Finding:
    """Reachable with the credentials (a token obtained, for token-based auth), or why not."""
    if report.ok:
        authorised = "credentials accepted" if manifest.auth == "bearer" else "token obtained"
        return ok(check, f"reachable, {authorised}: {report.detail}")
    if any(f"HTTP {status}" in report.detail for status in (401, 403)):
        hint = f"check the credentials: {_where_configured(instance, 'api_key', embedded)}"
    else:
        hint = (
            f"check {_where_configured(instance, 'base_url', embedded)} and that the system is up"
        )
    return fail(check, f"not usable: {report.detail}", hint)


def callback_finding(
    check: str, instance: ConnectorInstance, manifest: ConnectorManifest
) -> Finding | None:
    """A connector whose config schema has `callback_url` is called back by its vendor at
    that URL, which must end in the instance's webhook path; None for other connectors."""
    schema = manifest.config_schema
    if CALLBACK_FIELD not in schema.get("properties", {}):
        return None
    path = WEBHOOK_PATH.format(instance=instance.name)
    where = f"connectors.{instance.name}.config.{CALLBACK_FIELD}"
    value = instance.config.get(CALLBACK_FIELD)
    if not value:
        required = CALLBACK_FIELD in schema.get("required", [])
        problem = f"no callback URL: the vendor cannot send events ({where} is unset)"
        hint = f"set {where} to the hub's public address + {path}, and register it at the vendor"
        return fail(check, problem, hint) if required else warn(check, problem, hint)
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return fail(check, f"callback URL {value!r} is not an http(s) URL", f"fix {where}")
    if not parts.path.rstrip("/").endswith(path):
        return warn(
            check,
            f"callback URL {value} does not end in {path}",
            f"set {where} to the hub's public address + {path}",
        )
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return warn(
            check, f"callback URL {value} is not https", f"serve the hub over TLS; fix {where}"
        )
    return ok(check, f"callback URL {value}")


def clock_finding(check: str, server_time: datetime, asked_at: datetime) -> Finding:
    """The endpoint's clock (an HTTP Date has whole seconds) against the hub's."""
    skew = (server_time - asked_at).total_seconds() + 0.5  # the Date header truncates
    size = abs(skew)
    ahead = "ahead of" if skew > 0 else "behind"
    detail = f"clock {size:.0f} s {ahead} the hub's"
    hint = "synchronise the clocks with NTP (e.g. `timedatectl set-ntp true`) on both machines"
    if size >= CLOCK_FAIL_SECONDS:
        return fail(check, f"{detail}: signatures and tokens will be refused", hint)
    if size >= CLOCK_WARN_SECONDS:
        return warn(check, detail, hint)
    return ok(check, f"clock within {CLOCK_WARN_SECONDS:.0f} s of the hub's")


# -- report ------------------------------------------------------------------------------------

STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red"}


def report(findings: Sequence[Finding], as_json: bool, console: Console, err: Console) -> int:
    """Print the findings (a table, or JSON on stdout) and return the exit code; when some
    check failed or warned, a summary goes to stderr in the CLI's two lines."""
    code = exit_code(findings)
    failed = sum(f.status is Status.FAIL for f in findings)
    warned = sum(f.status is Status.WARN for f in findings)
    if as_json:
        worst = Status.FAIL if failed else Status.WARN if warned else Status.OK
        document = {
            "status": worst.value,
            "exit_code": code,
            "checks": [asdict(f) | {"status": f.status.value} for f in findings],
        }
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    else:
        table = Table("check", "status", "detail", "hint", title="finoa doctor")
        for f in findings:
            status = f"[{STYLE[f.status]}]{f.status.value}[/{STYLE[f.status]}]"
            table.add_row(escape(f.check), status, escape(f.detail), escape(f.hint))
        console.print(table)
        if not failed and not warned:
            console.print(f"all {len(findings)} checks ok")
    if failed:
        err.print(f"[red]error:[/red] {failed} check(s) failed, {warned} warned", highlight=False)
        err.print(
            "fix: follow the hint of each failed row, then run finoa doctor again",
            highlight=False,
            markup=False,
        )
    elif warned:
        err.print(f"warning: {warned} check(s) warned, none failed", highlight=False)
        err.print("fix: see the hints; finoa runs, with the risks they name", markup=False)
    return code
