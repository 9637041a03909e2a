"""`finoa delegation set | list | revoke`: delegations of approvals (委托)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from finoa.cli_errors import CliError, ExitCode
from finoa.domain.errors import DomainError

if TYPE_CHECKING:
    from finoa.store.uow import Database

delegation_app = typer.Typer(
    help="Delegations (委托): someone's new approval tasks go to a delegate for a while.",
    no_args_is_help=True,
)
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="finoa.yaml to read")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Where embedded data lives")]


@contextlib.contextmanager
def _database(config: Path | None, data_dir: Path | None) -> Iterator[Database]:
    from finoa.cli import _settings
    from finoa.runtime import prepare_database
    from finoa.store.uow import Database

    settings = _settings(config, data_dir)
    prepare_database(settings)
    db = Database.connect(settings.effective_database_url)
    try:
        yield db
    except DomainError as exc:
        raise CliError(ExitCode.BAD_INPUT, str(exc), "see `finoa delegation --help`") from None
    finally:
        db.dispose()


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(
            ExitCode.BAD_INPUT, f"{option}: {value!r} is not a date", "write it as 2026-12-24"
        ) from None


@delegation_app.command(
    "set", epilog="Example: finoa delegation set E0010 E0012 --from 2026-12-21 --to 2026-12-31"
)
def delegation_set(
    delegator: Annotated[str, typer.Argument(help="Employee id of the one who is away")],
    delegate: Annotated[str, typer.Argument(help="Employee id of the one who decides instead")],
    starts_on: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD)")],
    ends_on: Annotated[str, typer.Option("--to", help="Last day, inclusive (YYYY-MM-DD)")],
    document_type: Annotated[
        str | None, typer.Option("--type", help="Only this document type (e.g. expense_claim)")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delegate DELEGATOR's new approval tasks to DELEGATE from --from to --to."""
    from finoa.services.delegations import set_delegation

    first, last = _date(starts_on, "--from"), _date(ends_on, "--to")
    with _database(config, data_dir) as db:
        made = set_delegation(db, delegator, delegate, first, last, document_type, actor="cli")
    typer.echo(
        f"{made.id}: {made.delegator_id} → {made.delegate_id}"
        f" {made.starts_on}..{made.ends_on} {made.document_type or 'all documents'}"
    )


@delegation_app.command("list", epilog="Example: finoa delegation list")
def delegation_list(
    delegator: Annotated[
        str | None, typer.Option("--delegator", help="Only this delegator's")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delegations, newest first."""
    from finoa.services.delegations import list_delegations

    with _database(config, data_dir) as db:
        rows = list_delegations(db, delegator)
    table = Table("id", "delegator", "delegate", "from", "to", "document type", "revoked")
    for row in rows:
        table.add_row(
            row.id,
            row.delegator_id,
            row.delegate_id,
            row.starts_on.isoformat(),
            row.ends_on.isoformat(),
            row.document_type or "all",
            row.revoked_at.isoformat() if row.revoked_at else "",
        )
    console.print(table)


@delegation_app.command("revoke", epilog="Example: finoa delegation revoke DLG-0a1b2c3d4e5f6a7b")
def delegation_revoke(
    delegation_id: Annotated[str, typer.Argument(help="The delegation's id")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """End a delegation now (tasks it already routed stay with the delegate)."""
    from finoa.services.delegations import revoke_delegation

    with _database(config, data_dir) as db:
        done = revoke_delegation(db, delegation_id, actor="cli")
    typer.echo(f"{done.id}: revoked")
