"""`finoa budget import FILE | list | report`: budgets from the command line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from finoa.cli_errors import CliError, ExitCode
from finoa.domain.budgets import BudgetImportRefused, NodeKind, parse_period
from finoa.domain.errors import DomainError
from finoa.domain.money import fen_to_yuan

if TYPE_CHECKING:
    from finoa.config import Settings
    from finoa.services.budgets import BudgetFilter
    from finoa.store.uow import Database

budget_app = typer.Typer(
    help="Budgets (预算): import, list, execution report.", no_args_is_help=True
)
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="finoa.yaml to read")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Where embedded data lives")]
PeriodOpt = Annotated[
    str | None, typer.Option("--period", help="Only this period: 2026, 2026-Q4 or 2026-12")
]
NodeKindOpt = Annotated[NodeKind | None, typer.Option("--node-kind", help="Only this dimension")]
NodeIdOpt = Annotated[
    str | None, typer.Option("--node-id", help="Only this org unit, cost center or project")
]


@contextlib.contextmanager
def _database(config: Path | None, data_dir: Path | None) -> Iterator[tuple[Settings, Database]]:
    """The settings and the migrated database; a refused request is an expected failure."""
    from finoa.cli import _settings
    from finoa.runtime import prepare_database
    from finoa.store.uow import Database

    settings = _settings(config, data_dir)
    prepare_database(settings)
    db = Database.connect(settings.effective_database_url)
    try:
        yield settings, db
    except BudgetImportRefused as exc:
        lines = [e["message"] for e in exc.extensions["errors"]]
        raise CliError(
            ExitCode.BAD_INPUT,
            f"{len(lines)} bad cell(s), nothing imported: " + "; ".join(lines),
            "correct those cells and import the file again",
        ) from None
    except DomainError as exc:
        raise CliError(ExitCode.BAD_INPUT, str(exc), "see `finoa budget --help`") from None
    finally:
        db.dispose()


def _filter(period: str | None, node_kind: NodeKind | None, node_id: str | None) -> BudgetFilter:
    from finoa.services.budgets import BudgetFilter

    if period is not None:
        try:
            period = parse_period(period)
        except ValueError as exc:
            raise CliError(
                ExitCode.BAD_INPUT, f"--period: {exc}", "give 2026, 2026-Q4 or 2026-12"
            ) from None
    return BudgetFilter(period, node_kind.value if node_kind else None, node_id)


def _yuan(fen: int) -> str:
    return f"{fen_to_yuan(fen):,}"


@budget_app.command(
    "import",
    epilog="Example: finoa budget import budgets-2026.csv",
)
def budget_import(
    file: Annotated[Path, typer.Argument(help="A .csv (UTF-8) or .xlsx file", show_default=False)],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create the budgets of a file, all rows or none. Columns: node_kind, node_id, category
    (empty: all), period, amount (yuan), mode (empty: the budget_mode setting)."""
    from finoa.services.budgets import import_budget_file
    from finoa.services.directory import MasterDataCache

    if not file.is_file():
        raise CliError(
            ExitCode.BAD_INPUT,
            f"file: {file} does not exist",
            "give the path of a .csv or .xlsx file",
        )
    with _database(config, data_dir) as (settings, db):
        result = import_budget_file(
            db,
            MasterDataCache(db).get(),
            file,
            default_mode=settings.budget_mode,
            actor="cli",
        )
    console.print(
        f"imported {result.created} budget(s), {result.unchanged} unchanged: "
        + (", ".join(map(str, result.budget_ids)) or "-")
    )


@budget_app.command("list", epilog="Example: finoa budget list --period 2026")
def budget_list(
    period: PeriodOpt = None,
    node_kind: NodeKindOpt = None,
    node_id: NodeIdOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Budgets with their amount, occupied, consumed and balance (yuan)."""
    from finoa.services.budgets import list_budgets

    flt = _filter(period, node_kind, node_id)
    with _database(config, data_dir) as (_, db):
        rows = list_budgets(db, flt)
    table = Table(
        "id", "node", "category", "period", "mode", "amount", "occupied", "consumed", "balance"
    )
    for b in rows:
        table.add_row(
            str(b.id),
            f"{b.node_kind.value} {b.node_id}",
            b.category,
            b.period,
            b.mode.value,
            _yuan(b.amount_fen),
            _yuan(b.occupied_fen),
            _yuan(b.consumed_fen),
            _yuan(b.balance_fen),
        )
    console.print(table)


@budget_app.command("report", epilog="Example: finoa budget report --period 2026-Q4")
def budget_report_command(
    period: PeriodOpt = None,
    node_kind: NodeKindOpt = None,
    node_id: NodeIdOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Execution report (预算执行情况): per node and period, org units as a tree."""
    from finoa.services.budgets import budget_report
    from finoa.services.directory import MasterDataCache

    flt = _filter(period, node_kind, node_id)
    with _database(config, data_dir) as (_, db):
        rows = budget_report(db, MasterDataCache(db).get(), flt)
    table = Table(
        "node", "category", "period", "budget", "occupied", "consumed", "balance", "rate", "below"
    )
    for r in rows:
        table.add_row(
            "  " * r.depth + f"{r.node_kind.value} {r.node_id}",
            r.category,
            r.period,
            _yuan(r.amount_fen),
            _yuan(r.occupied_fen),
            _yuan(r.consumed_fen),
            _yuan(r.balance_fen),
            "-" if r.rate is None else f"{r.rate:.1%}",
            _yuan(r.allocated_below_fen),
        )
    console.print(table)
