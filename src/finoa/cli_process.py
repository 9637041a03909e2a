"""`finoa process deploy FILE… | list | export KEY`: process definitions from the command line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from finoa.cli_errors import CliError, ExitCode
from finoa.domain.errors import DomainError

if TYPE_CHECKING:
    from finoa.store.uow import Database

process_app = typer.Typer(
    help="Process definitions (流程定义): deploy BPMN 2.0 + DMN, list versions, export.",
    no_args_is_help=True,
)
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="finoa.yaml to read")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Where embedded data lives")]


@contextlib.contextmanager
def _database(config: Path | None, data_dir: Path | None) -> Iterator[Database]:
    """The migrated database; a refused definition is an expected failure."""
    from finoa.cli import _settings
    from finoa.runtime import prepare_database
    from finoa.store.uow import Database

    settings = _settings(config, data_dir)
    prepare_database(settings)
    db = Database.connect(settings.effective_database_url)
    try:
        yield db
    except DomainError as exc:
        errors = exc.extensions.get("errors")
        message = (
            "; ".join(
                f"{e['file']}, line {e['line']}: {e['element']}: {e['problem']}"
                if e["line"]
                else f"{e['file']}: {e['element']}: {e['problem']}"
                for e in errors
            )
            if errors
            else str(exc)
        )
        raise CliError(
            ExitCode.BAD_INPUT,
            message,
            "correct the definition and deploy it again; nothing was stored",
        ) from None
    finally:
        db.dispose()


@process_app.command(
    "deploy",
    epilog="Example: finoa process deploy <(finoa process export claim_approval)",
)
def deploy(
    files: Annotated[
        list[Path], typer.Argument(help="The BPMN file, and optionally the DMN file it uses")
    ],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Check and deploy a process definition; a changed one becomes a new version."""
    from finoa.services.processes import deploy_process

    contents: list[tuple[str, bytes]] = []
    for path in files:
        try:
            contents.append((path.name, path.read_bytes()))
        except OSError as exc:
            raise CliError(
                ExitCode.BAD_INPUT,
                f"{path}: cannot read it ({exc.strerror})",
                "give the path of a .bpmn or .dmn file",
            ) from None
    with _database(config, data_dir) as db:
        result = deploy_process(db, contents, actor="cli")
    if result.created:
        console.print(f"deployed {result.process_key} version {result.version}")
    else:
        console.print(
            f"{result.process_key} version {result.version} has these bytes already; nothing new"
        )


@process_app.command("list", epilog="Example: finoa process list")
def list_(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """The shipped processes (version 0) and every deployed version."""
    from finoa.services.processes import list_processes

    with _database(config, data_dir) as db:
        rows = list_processes(db)
    table = Table("process", "version", "name", "document types", "deployed", "in use")
    for row in rows:
        table.add_row(
            row.process_key,
            str(row.version) if row.version else "0 (shipped)",
            row.name,
            ", ".join(t.value for t in row.document_types),
            f"{row.deployed_at:%Y-%m-%d %H:%M} {row.deployed_by}" if row.deployed_at else "",
            "latest" if row.latest else "",
        )
    console.print(table)


@process_app.command("export", epilog="Example: finoa process export claim_approval --version 0")
def export(
    key: Annotated[str, typer.Argument(help="The process key, e.g. claim_approval")],
    version: Annotated[
        int | None, typer.Option("--version", help="This version (0: the shipped one)", min=0)
    ] = None,
    dmn: Annotated[bool, typer.Option("--dmn", help="The DMN decisions instead")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Print a process's BPMN (the latest version unless --version) to standard output."""
    from finoa.services.processes import export_process

    with _database(config, data_dir) as db:
        _found, bpmn, dmn_text = export_process(db, key, version)
    typer.echo(dmn_text if dmn else bpmn, nl=False)
