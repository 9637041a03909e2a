"""The `finoa` command line (F17)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

try:  # newer Typer carries its own copy of Click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older Typer runs on Click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

from finoa.archive import cli_use as _archive_use  # noqa: F401  (registers its commands)
from finoa.archive.cli import archive_app
from finoa.cli_budget import budget_app
from finoa.cli_delegation import delegation_app
from finoa.cli_errors import CliError, ExitCode, explain
from finoa.cli_policy import policy_app
from finoa.cli_process import process_app
from finoa.config import Settings, load_settings
from finoa.connectors.dingtalk.command import sim_dingtalk
from finoa.connectors.feishu.command import sim_feishu
from finoa.connectors.kingdee.simulator import sim_kingdee
from finoa.connectors.wecom.command import sim_wecom
from finoa.erp_cli import erp_app
from finoa.invoices.cli import SIM_TAX_PLATFORM_EPILOG, invoices_app, sim_tax_platform
from finoa.mapping.cli import mapping_app

if TYPE_CHECKING:
    from finoa.store.uow import Database

console = Console()
err = Console(stderr=True, soft_wrap=True)


def _report(error: CliError) -> int:
    """Tell an expected failure in two lines: what is wrong, what to do."""
    err.print(f"[red]error:[/red] {escape(error.problem)}", highlight=False)
    err.print(f"fix: {error.fix}", highlight=False, markup=False)
    return int(error.code)


class FinoaGroup(TyperGroup):
    """The top-level command: every failure ends as a short message and an exit code."""

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(
                argv, prog_name or "finoa", complete_var, standalone_mode=False, **extra
            )
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            usage = isinstance(exc, click_errors.UsageError)
            where = exc.ctx.command_path if usage and exc.ctx else "finoa"  # type: ignore[attr-defined]
            err.print(f"[red]error:[/red] {escape(exc.format_message())}", highlight=False)
            err.print(f"fix: see `{where} --help`", highlight=False, markup=False)
            sys.exit(ExitCode.BAD_INPUT if usage else exc.exit_code)
        except typer.Abort:
            err.print("aborted", highlight=False)
            sys.exit(1)
        except Exception as exc:
            if "--debug" in argv:
                raise
            error = explain(exc)
            if error is None:
                error = CliError(
                    ExitCode.BUG,
                    f"unexpected {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}",
                    "this is a bug: run the command again with `finoa --debug …` and report "
                    "the traceback",
                )
            sys.exit(_report(error))
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    cls=FinoaGroup,
    help="finoa — the open finance ⇄ OA integration hub.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema and migrations.", no_args_is_help=True)
sim_app = typer.Typer(help="Vendor simulators, each its own HTTP server.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
masterdata_app = typer.Typer(help="Master data: org, employees, accounts.", no_args_is_help=True)
periods_app = typer.Typer(help="Accounting periods (会计期间).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sim_app, name="sim")
app.add_typer(audit_app, name="audit")
app.add_typer(masterdata_app, name="masterdata")
app.add_typer(periods_app, name="periods")
app.add_typer(budget_app, name="budget")
app.add_typer(process_app, name="process")
app.add_typer(erp_app, name="erp")
app.add_typer(invoices_app, name="invoices")
sim_app.command("tax-platform", epilog=SIM_TAX_PLATFORM_EPILOG)(sim_tax_platform)
app.add_typer(mapping_app, name="mapping")
sync_app = typer.Typer(help="Sweep connected systems for what their callbacks missed.")
app.add_typer(sync_app, name="sync")
sim_app.command(
    "dingtalk",
    epilog="Example: finoa sim dingtalk --port 8704 --callback-url http://127.0.0.1:8700/api/v1/webhooks/dingtalk",
)(sim_dingtalk)
sim_app.command(
    "wecom",
    epilog="Example: finoa sim wecom --port 8705 --callback-url http://127.0.0.1:8700/api/v1/webhooks/wecom",
)(sim_wecom)
sim_app.command(
    "feishu",
    epilog="Example: finoa sim feishu --port 8712 --show-credentials > feishu.json",
)(sim_feishu)
app.add_typer(policy_app, name="policy")
app.add_typer(archive_app, name="archive")
app.add_typer(delegation_app, name="delegation")

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="finoa.yaml to read")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Where embedded data lives")]


PortOpt = Annotated[int, typer.Option(min=1, max=65_535, help="Listen port")]


@app.callback()
def global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback when a command fails")
    ] = False,
) -> None:
    """finoa — the open finance ⇄ OA integration hub."""


def _fail(message: str, code: ExitCode = ExitCode.BAD_INPUT) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _settings(
    config: Path | None,
    data_dir: Path | None = None,
    *,
    connectors: bool = False,
    **overrides: object,
) -> Settings:
    """The settings, or a CliError naming the bad file, field or secret; with `connectors`,
    the connector instances are checked too."""
    if config is not None and not config.exists():
        raise CliError(
            ExitCode.CONFIG,
            f"--config: {config} does not exist",
            "give the path of an existing finoa.yaml, or leave --config out for the defaults",
        )
    try:
        _check_config_shape(config)
        settings = load_settings(config, data_dir=data_dir, **overrides)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise CliError(
            ExitCode.CONFIG,
            f"configuration: {_config_path(config)} is not valid YAML{at}: {problem}",
            f"fix {_config_path(config)} (YAML) and run the command again",
        ) from None
    except json.JSONDecodeError as exc:
        raise CliError(
            ExitCode.MISSING_SECRET,
            f"secrets.json in the data dir is not valid JSON ({exc.msg})",
            "restore it from a backup, or delete it to have new secrets made",
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        problem = f"a field {exc} is missing" if isinstance(exc, KeyError) else str(exc)
        raise explain(exc) or CliError(
            ExitCode.CONFIG,
            f"configuration: {problem}",
            f"fix {_config_path(config)} or the FINOA_* environment variables",
        ) from None
    if not isinstance(settings.port, int) or not 1 <= settings.port <= 65_535:
        raise CliError(
            ExitCode.CONFIG,
            f"configuration: port: {settings.port} is outside 1-65535",
            "set port (or FINOA_PORT) to a free TCP port such as 8700",
        )
    if connectors:
        from finoa.connectors.instances import load_instances

        load_instances(settings)  # a ConnectorConfigError is explained by FinoaGroup
    return settings


def _check_config_shape(config: Path | None) -> None:
    """A config file holds a mapping of settings (its YAML errors are raised as they are)."""
    path = Path(_config_path(config))
    if path.exists():
        document = yaml.safe_load(path.read_text())
        if document is not None and not isinstance(document, dict):
            raise CliError(
                ExitCode.CONFIG,
                f"configuration: {path} holds a {type(document).__name__}, not settings",
                f"write {path} as `name: value` lines, e.g. `port: 8700`",
            )


def _config_path(config: Path | None) -> str:
    """The config file in use, as load_settings finds it."""
    return str(config or os.environ.get("FINOA_CONFIG") or "finoa.yaml")


def _migrated(settings: Settings, config: Path | None, data_dir: Path | None) -> None:
    """Fail with NOT_MIGRATED unless the database is at the newest revision."""
    from alembic.script import ScriptDirectory

    from finoa.store.db import alembic_config, current_revision

    url = settings.effective_database_url
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    current = current_revision(url)
    if current == head:
        return
    state = "is not initialised" if current is None else f"is at revision {current}, not {head}"
    options = (f" --config {config}" if config else "") + (
        f" --data-dir {data_dir}" if data_dir else ""
    )
    raise CliError(
        ExitCode.NOT_MIGRATED,
        f"the database {state} ({url.split('@')[-1]})",
        f"run `finoa db upgrade{options}`",
    )


def _uvicorn_options() -> dict[str, object]:
    options: dict[str, object] = {"log_level": "warning", "access_log": False}
    try:
        import uvloop  # noqa: F401

        options["loop"] = "uvloop"
    except ImportError:
        pass
    try:
        import httptools  # noqa: F401

        options["http"] = "httptools"
    except ImportError:
        pass
    return options


@app.command(epilog="Example: finoa serve --port 8700")
def serve(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    host: Annotated[str | None, typer.Option(help="Listen address")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65_535, help="Listen port")] = None,
    no_dispatch: Annotated[
        bool, typer.Option("--no-dispatch", help="Do not deliver the outbox in this process")
    ] = False,
) -> None:
    """Run the hub: the API under /api/v1 (OpenAPI at /docs), webhooks and the outbox
    dispatcher."""
    import uvicorn

    from finoa.api.app import create_app

    settings = _settings(config, data_dir, connectors=True, host=host, port=port)
    hub_app = create_app(settings, dispatch=not no_dispatch)
    console.print(f"finoa serving on http://{settings.host}:{settings.port} (docs at /docs)")
    uvicorn.run(
        hub_app,
        host=settings.host,
        port=settings.port,
        **_uvicorn_options(),  # type: ignore[arg-type]
    )


@app.command(epilog="Example: finoa worker")
def worker(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Deliver the outbox, sweep for lost decisions, fire reminders and run the archive keeper
    (for deployments that run the API with `finoa serve --no-dispatch` and delivery apart).
    Stops on SIGTERM or Ctrl-C after settling what it holds."""
    import signal

    from finoa.runtime import delivery_duties, new_http_client, prepare_database
    from finoa.services.context import Hub

    settings = _settings(config, data_dir, connectors=True)
    prepare_database(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        hub = Hub.create(settings)
        http = new_http_client(settings)
        try:
            async with delivery_duties(hub, http, role="worker"):
                console.print("finoa worker delivering the outbox (Ctrl-C to stop)")
                await stop.wait()
        finally:
            await http.aclose()
            await hub.commands.close()
            hub.close()

    asyncio.run(main())


@db_app.command("upgrade", epilog="Example: finoa db upgrade")
def db_upgrade(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply the database migrations (Alembic)."""
    from finoa.store.db import current_revision, upgrade

    settings = _settings(config, data_dir)
    upgrade(settings.effective_database_url, revision)
    console.print(f"database at revision {current_revision(settings.effective_database_url)}")


@db_app.command("current", epilog="Example: finoa db current")
def db_current(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Show the database's migration revision."""
    from finoa.store.db import current_revision

    settings = _settings(config, data_dir)
    console.print(current_revision(settings.effective_database_url) or "not migrated")


@masterdata_app.command("load", epilog="Example: finoa masterdata load")
def masterdata_load(
    file: Annotated[
        Path | None, typer.Argument(help="YAML file; the sample company if absent")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Load org units, employees, cost centers, projects and the chart of accounts (the
    sample company when no file is given)."""
    from finoa.runtime import prepare_database
    from finoa.services.masterdata import load_masterdata
    from finoa.store.uow import Database

    if file is not None and not file.exists():
        _fail(f"file: {file} does not exist")
    settings = _settings(config, data_dir)
    prepare_database(settings)
    db = Database.connect(settings.effective_database_url)
    try:
        counts = load_masterdata(db, file)
    except KeyError as exc:
        _fail(f"file: a record lacks the field {exc}")
        raise
    finally:
        db.dispose()
    console.print(", ".join(f"{n} {k}" for k, n in counts.items()))


@app.command(epilog="Example: finoa schema ExpenseClaim")
def schema(
    name: Annotated[str | None, typer.Argument(help="One type, e.g. ExpenseClaim")] = None,
) -> None:
    """Print the data dictionary: JSON Schemas of the public types, with Chinese labels."""
    from finoa.schemas import PUBLIC_TYPES, data_dictionary

    if name is None:
        document = data_dictionary()
    elif name in PUBLIC_TYPES:
        document = PUBLIC_TYPES[name].model_json_schema()
    else:
        _fail(f"name: unknown type {name!r}; one of {', '.join(PUBLIC_TYPES)}")
        return
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")


@audit_app.command("verify", epilog="Example: finoa audit verify")
def audit_verify(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Recompute the audit hash chain; name the first broken link."""
    from finoa.services.audit_trail import verify_audit_chain
    from finoa.store.uow import Database

    settings = _settings(config, data_dir)
    _migrated(settings, config, data_dir)
    db = Database.connect(settings.effective_database_url)
    try:
        report = verify_audit_chain(db)
    finally:
        db.dispose()
    if report.ok:
        console.print(f"audit chain intact: {report.checked} events verified")
        return
    err.print(
        f"[red]audit chain broken[/red] at event {report.first_broken_seq}: {report.reason} "
        f"({report.checked} events before it verified)",
        highlight=False,
    )
    raise typer.Exit(ExitCode.CHECK_FAILED)


@app.command(epilog="Example: finoa replay --held")
def replay(
    letter_id: Annotated[list[int] | None, typer.Option("--id", help="Dead letter id")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead letter")] = False,
    held: Annotated[
        bool, typer.Option("--held", help="List messages waiting behind a dead letter")
    ] = False,
    destination: Annotated[str | None, typer.Option(help="Only this destination")] = None,
    document: Annotated[str | None, typer.Option(help="Only this document (aggregate id)")] = None,
    page: Annotated[int, typer.Option(min=1, max=1_000_000, help="Page of the list")] = 1,
    page_size: Annotated[int, typer.Option(min=1, max=500, help="Rows per page")] = 50,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List dead letters (or held messages), or send dead letters again (the running hub
    delivers them, after asking the peer whether each had in fact arrived)."""
    from finoa.connectors.instances import load_instances
    from finoa.connectors.registry import destinations
    from finoa.domain.errors import DomainError
    from finoa.services.operations import replay_dead_letters
    from finoa.services.queries import OutboxFilter, dead_letters, held_rows
    from finoa.store.uow import Database

    settings = _settings(config, data_dir)
    known = destinations(load_instances(settings))
    if destination is not None and destination not in known:
        raise CliError(
            ExitCode.UNKNOWN_CONNECTOR,
            f"--destination: no connector instance named {destination!r}",
            f"use one of {', '.join(sorted(known))} (`connectors:` in the config file)",
        )
    _migrated(settings, config, data_dir)
    db = Database.connect(settings.effective_database_url)
    flt = OutboxFilter(destination=destination, aggregate_id=document)
    try:
        if held:
            rows, total = held_rows(db, flt, page, page_size)
            table = Table("id", "destination", "action", "document", "waiting on", "reason")
            for h in rows:
                table.add_row(
                    str(h["id"]),
                    h["destination"],
                    h["action"],
                    h["aggregate_id"],
                    str(h["waiting_on"]),
                    h["reason"][:80],
                )
            console.print(table)
            _page_line(page, page_size, len(rows), total, "held message(s)")
            return
        if not letter_id and not all_:
            letters, total = dead_letters(db, flt, page, page_size)
            table = Table("id", "destination", "action", "document", "class", "reason")
            for d in letters:
                table.add_row(
                    str(d["id"]),
                    d["destination"],
                    d["action"],
                    d["aggregate_id"],
                    d["error_class"] or "",
                    (d["reason"] or "")[:80],
                )
            console.print(table)
            _page_line(page, page_size, len(letters), total, "dead letter(s)")
            console.print("replay with --id N or --all; see what waits behind them with --held")
            return
        try:
            ids = replay_dead_letters(db, None if all_ else letter_id, actor="cli")
        except DomainError as exc:
            _fail(str(exc))
            return
    finally:
        db.dispose()
    console.print(f"replayed {len(ids)} dead letter(s): {', '.join(map(str, ids)) or '-'}")


def _page_line(page: int, page_size: int, shown: int, total: int, what: str) -> None:
    first = (page - 1) * page_size + 1 if shown else 0
    more = f"; next: --page {page + 1}" if first + shown - 1 < total else ""
    console.print(f"{first}-{first + shown - 1 if shown else 0} of {total} {what}{more}")


PeriodArg = Annotated[str, typer.Argument(help="The period, YYYY-MM", show_default=False)]


@contextlib.contextmanager
def _periods_database(config: Path | None, data_dir: Path | None) -> Iterator[Database]:
    """The configured database, migrated; a refused period change is a one-line error."""
    from finoa.domain.errors import DomainError
    from finoa.runtime import prepare_database
    from finoa.store.uow import Database

    settings = _settings(config, data_dir)
    prepare_database(settings)
    db = Database.connect(settings.effective_database_url)
    try:
        yield db
    except DomainError as exc:
        _fail(str(exc))
    finally:
        db.dispose()


def _change_period(config: Path | None, data_dir: Path | None, action: str, period: str) -> None:
    """Close or open a period as actor `cli` and print its state in one line."""
    from finoa.services.periods import close_period, open_period

    change = close_period if action == "close" else open_period
    with _periods_database(config, data_dir) as db:
        state = change(db, period, actor="cli")
    console.print(f"period {state.period} is {state.status} ({state.vouchers} vouchers)")


@periods_app.command("list", epilog="Example: finoa periods list")
def periods_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List accounting periods (会计期间) with their status and voucher counts; a period
    not listed is open."""
    from finoa.services.periods import list_periods

    with _periods_database(config, data_dir) as db:
        states = list_periods(db)
    table = Table("period", "status", "vouchers", "closed at", "closed by")
    for s in states:
        closed_at = s.closed_at.isoformat(timespec="seconds") if s.closed_at else ""
        table.add_row(s.period, s.status, str(s.vouchers), closed_at, s.closed_by or "")
    console.print(table)


@periods_app.command("close", epilog="Example: finoa periods close 2026-01")
def periods_close(period: PeriodArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Close a period (audited, actor `cli`): vouchers dated in it then follow
    closed_period_policy."""
    _change_period(config, data_dir, "close", period)


@periods_app.command("open", epilog="Example: finoa periods open 2026-01")
def periods_open(period: PeriodArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Reopen a closed period (audited, actor `cli`)."""
    _change_period(config, data_dir, "open", period)


@app.command(epilog="Example: finoa connectors")
def connectors() -> None:
    """List installed connectors and their manifests."""
    from finoa.connectors.registry import available_connectors

    table = Table("name", "kind", "direction", "actions", "auth", "batch")
    for name, factory in sorted(available_connectors().items()):
        m = factory.manifest
        table.add_row(name, m.kind, m.direction, ", ".join(m.actions), m.auth, str(m.max_batch))
    console.print(table)


@app.command(epilog="Example: finoa doctor --json")
def doctor(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Check the config, database, durability, permissions, disk and connectors; exit 0 when
    all is ok, 9 when some checks warn, 1 when any fails."""
    from finoa.doctor import examine, report

    findings = examine(lambda: _settings(config, data_dir), config, data_dir)
    raise typer.Exit(report(findings, as_json, console, err))


@app.command(epilog="Example: finoa token --scope claims:read")
def token(
    client: Annotated[str, typer.Option(help="The API client")] = "finoa-admin",
    scope: Annotated[
        str | None, typer.Option(help="Scopes, separated by spaces (default: all the client's)")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Print a 15-minute bearer token for an API client, as POST /api/v1/oauth/token issues
    it; use it as `Authorization: Bearer $(finoa token)`."""
    from finoa.access import client_token

    sys.stdout.write(client_token(_settings(config, data_dir), client, scope) + "\n")


@sim_app.command("oa", epilog="Example: finoa sim oa --port 8701")
def sim_oa(
    port: PortOpt = 8701,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    hub_url: Annotated[str | None, typer.Option(help="The hub to send webhooks to")] = None,
    reject_rate: Annotated[float, typer.Option(help="Share of todos the approvers reject")] = 0.1,
    auto_decide: Annotated[bool, typer.Option(help="Simulated approvers decide todos")] = True,
    decision_batch: Annotated[
        int,
        typer.Option(
            min=1, max=100, help="Decisions per webhook (1: one task.decided per decision)"
        ),
    ] = 100,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Run the generic OA simulator (todos, status write-back, simulated approvers)."""
    from finoa.connectors.generic_oa.simulator import run_oa_simulator

    if not 0 <= reject_rate <= 1:
        _fail("--reject-rate: must be between 0 and 1")
    settings = _settings(config, data_dir)
    console.print(f"OA simulator on http://{host}:{port}")
    run_oa_simulator(
        host,
        port,
        settings.data_dir / "sim-oa",
        settings.oa_api_key,
        hub_url or f"http://{settings.host}:{settings.port}",
        settings.oa_webhook_secret,
        reject_rate,
        auto_decide,
        decision_batch=decision_batch,
    )


@sim_app.command("erp", epilog="Example: finoa sim erp --port 8702 --idempotency none")
def sim_erp(
    port: PortOpt = 8702,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    idempotency: Annotated[
        str,
        typer.Option(
            help="keep: a repeated Idempotency-Key answers the first voucher; forget: keys are "
            "remembered for --forget-after seconds; none: keys are ignored (Kingdee-like)"
        ),
    ] = "keep",
    forget_after: Annotated[
        float, typer.Option(help="Seconds a key is remembered with --idempotency forget")
    ] = 60.0,
) -> None:
    """Run the generic ERP simulator: vouchers, with Idempotency-Keys kept, forgotten after
    --forget-after seconds, or ignored (Kingdee-like)."""
    from finoa.connectors.generic_erp.simulator import IdempotencySpec, run_erp_simulator

    if idempotency not in ("keep", "forget", "none"):
        raise typer.BadParameter("keep, forget or none", param_hint="--idempotency")
    if not 0 < forget_after <= 86_400:
        raise typer.BadParameter("a number of seconds in (0, 86400]", param_hint="--forget-after")
    spec = IdempotencySpec(mode=idempotency, forget_after_seconds=forget_after)
    settings = _settings(config, data_dir)
    console.print(f"ERP simulator on http://{host}:{port} (idempotency: {idempotency})")
    run_erp_simulator(
        host, port, settings.data_dir / "sim-erp", settings.erp_api_key, spec.model_dump()
    )


from finoa.connectors.weaver.command import EXAMPLE as WEAVER_EXAMPLE  # noqa: E402
from finoa.connectors.weaver.command import sim_weaver  # noqa: E402

sim_app.command("weaver", epilog=WEAVER_EXAMPLE)(sim_weaver)

from finoa.connectors.sap.command import EXAMPLE as SAP_EXAMPLE  # noqa: E402
from finoa.connectors.sap.command import sim_sap  # noqa: E402
from finoa.connectors.yonyou.command import EXAMPLE as YONYOU_EXAMPLE  # noqa: E402
from finoa.connectors.yonyou.command import sim_yonyou  # noqa: E402

sim_app.command("sap", epilog=SAP_EXAMPLE)(sim_sap)


sim_app.command("yonyou", epilog=YONYOU_EXAMPLE)(sim_yonyou)

sim_app.command(
    "kingdee",
    epilog="Example: finoa sim kingdee --port 8703 --show-credentials > kingdee.json",
)(sim_kingdee)


@app.command(epilog="Example: finoa demo --claims 20 --exit")
def demo(
    claims: Annotated[int, typer.Option("--claims", "-n", help="How many claims")] = 200,
    exit_when_done: Annotated[bool, typer.Option("--exit", help="Stop when done")] = False,
    data_dir: DataDirOpt = None,
    port: Annotated[
        int, typer.Option(min=0, max=65_535, help="Hub port (0: any free port)")
    ] = 8700,
    seed: Annotated[int, typer.Option(help="Random seed for the generated claims")] = 7,
    oa: Annotated[
        str, typer.Option(help="The OA: generic, dingtalk, feishu, weaver, wecom")
    ] = "generic",
    erp: Annotated[
        str, typer.Option(help="The ERP: generic, tryton, kingdee, yonyou-u8, yonyou-nc, sap")
    ] = "generic",
    approval: Annotated[
        str, typer.Option(help="Who runs approvals: hub-led (finoa) or oa-led (the OA)")
    ] = "hub-led",
) -> None:
    """Run the whole loop on the embedded default: the hub, OA and ERP simulators, claims
    and approvals; then print what to try next."""
    from finoa.demo import run_demo
    from finoa.demo_stack import DemoProfileError, demo_profiles

    if claims < 1:
        _fail("--claims: must be at least 1")
    try:
        demo_profiles(oa, erp, approval)
        code = run_demo(
            claims, exit_when_done, data_dir or Path("finoa-data/demo"), port, seed, console,
            oa=oa, erp=erp, approvals=approval,
        )  # fmt: skip
    except DemoProfileError as exc:
        raise CliError(ExitCode.BAD_INPUT, str(exc), exc.fix) from exc
    raise typer.Exit(code)


if __name__ == "__main__":
    app()


@sync_app.command("oa", epilog="Example: finoa sync oa dingtalk --since 24h")
def sync_oa(
    instance: Annotated[str, typer.Argument(help="The OA connector instance, e.g. dingtalk")],
    since: Annotated[str, typer.Option(help="From when: ISO date/date-time, or 24h, 7d")],
    until: Annotated[str | None, typer.Option(help="Until when (default: now)")] = None,
    overlap_minutes: Annotated[
        float, typer.Option(min=0, help="How far back before --since to look again")
    ] = 10.0,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Find approvals the OA changed whose callbacks never arrived, and apply them once."""
    from datetime import UTC, datetime

    from finoa.sync_cli import parse_moment, sync_instance

    settings = _settings(config, data_dir, connectors=True)
    _migrated(settings, config, data_dir)
    zone = settings.company_zone
    start = parse_moment(since, "--since", zone)
    end = parse_moment(until, "--until", zone) if until else datetime.now(UTC)
    if end <= start:
        _fail("--until: must be after --since")
    report = sync_instance(settings, instance, start, end, overlap_minutes)
    typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))  # never wrapped


from finoa.connectors.generic_archive.command import EXAMPLE as ARCHIVE_SIM_EXAMPLE  # noqa: E402
from finoa.connectors.generic_archive.command import sim_archive  # noqa: E402

sim_app.command("archive", epilog=ARCHIVE_SIM_EXAMPLE)(sim_archive)
