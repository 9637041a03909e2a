"""`finoa erp tryton …`: create a Tryton database for finoa, and run its server."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from finoa.cli_errors import CliError, ExitCode

tryton_app = typer.Typer(help="A Tryton (trytond) to post vouchers into.", no_args_is_help=True)
console = Console()

DirOpt = Annotated[
    Path, typer.Option("--dir", help="Directory of the Tryton site (config, SQLite database)")
]


def _setup_error(exc: Exception) -> CliError:
    return CliError(
        ExitCode.BAD_INPUT,
        str(exc),
        "check the options (`finoa erp tryton init --help`); install finoa[tryton] for trytond",
    )


@tryton_app.command(
    "init",
    epilog="Example: finoa erp tryton init --dir var/tryton --year 2026 --port 8000",
)
def init(
    directory: DirOpt,
    year: Annotated[
        list[int] | None,
        typer.Option("--year", min=2000, max=2100, help="Fiscal year(s); default this year"),
    ] = None,
    port: Annotated[
        int, typer.Option(min=1, max=65_535, help="Port trytond will listen on")
    ] = 8000,
    host: Annotated[str, typer.Option(help="Address trytond will listen on")] = "127.0.0.1",
    database: Annotated[str, typer.Option(help="Tryton database name")] = "finoa",
    backend: Annotated[
        str | None,
        typer.Option(help="sqlite:// (default) or postgresql://user@host:5432/"),
    ] = None,
    company: Annotated[str, typer.Option(help="Company name")] = "finoa 示例公司 Example Co.",
    login: Annotated[str, typer.Option(help="Tryton user finoa logs in as")] = "finoa",
) -> None:
    """Create a Tryton database: company in CNY, fiscal years with monthly periods, finoa's
    chart of accounts, employees as parties, and the user finoa logs in as."""
    try:
        from finoa.connectors.tryton.setup import TrytonSetupError, init_site
    except ImportError as exc:  # pragma: no cover - only without the extra
        raise _setup_error(exc) from exc
    if not database.replace("_", "").replace("-", "").isalnum():
        raise CliError(
            ExitCode.BAD_INPUT,
            f"--database {database!r}: use letters, digits, '-' and '_'",
            "pick another database name",
        )
    years = sorted(set(year or [dt.date.today().year]))
    try:
        site = init_site(
            directory,
            database=database,
            backend=backend,
            host=host,
            port=port,
            years=years,
            company_name=company,
            login=login,
            password=os.environ.get("FINOA_TRYTON_PASSWORD") or None,
        )
    except TrytonSetupError as exc:
        raise _setup_error(exc) from exc
    console.print(f"Tryton database {site.database!r} ready in {site.directory}")
    console.print(f"run it:  finoa erp tryton serve --dir {site.directory}")
    console.print(
        "connect finoa: connector tryton, config "
        f"{{base_url: {site.base_url}, database: {site.database}, login: {site.login}, "
        f"password_file: {site.password_file}}}",
        highlight=False,
    )


@tryton_app.command("serve", epilog="Example: finoa erp tryton serve --dir var/tryton")
def serve(directory: DirOpt) -> None:
    """Run the trytond server of a site made by `finoa erp tryton init` (in this process)."""
    from finoa.connectors.tryton.setup import TrytonSetupError, TrytonSite, serve_args

    try:
        site = TrytonSite.load(directory)
    except TrytonSetupError as exc:
        raise CliError(ExitCode.CONFIG, str(exc), "run `finoa erp tryton init --dir …`") from exc
    args = serve_args(site)
    os.execv(args[0], args)
