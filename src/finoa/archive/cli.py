"""`finoa archive build | check | search | export | import`: the accounting archive."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from finoa.cli_errors import CliError, ExitCode

if TYPE_CHECKING:
    from finoa.archive.service import Archive, PackageQuery
    from finoa.config import Settings
    from finoa.store.uow import Database

archive_app = typer.Typer(
    help="Electronic accounting archive (电子会计档案): packages, 四性检测, handover.",
    no_args_is_help=True,
)
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="finoa.yaml to read")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Where embedded data lives")]
PeriodOpt = Annotated[str | None, typer.Option("--period", help="Only this period (YYYY-MM)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _archive(config: Path | None, data_dir: Path | None) -> Any:
    from finoa.cli import _settings

    return _archive_for(_settings(config, data_dir))


@contextmanager
def _progress(what: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on the terminal (stderr) while long work runs; nothing when piped."""
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def _archive_for(settings: Settings) -> Iterator[tuple[Database, Archive]]:
    from finoa.archive.pdf import FontMissing
    from finoa.archive.service import Archive
    from finoa.connectors.instances import ConnectorConfigError
    from finoa.domain.errors import DomainError
    from finoa.invoices.storage import StoredFileDamaged
    from finoa.runtime import prepare_database
    from finoa.services.context import open_database

    try:
        archive = Archive.from_settings(settings)
    except ConnectorConfigError as exc:
        raise CliError(ExitCode.CONFIG, str(exc), "fix connectors: in finoa.yaml") from None
    except ValueError as exc:
        raise CliError(
            ExitCode.CONFIG, str(exc), "correct archive_no_template in finoa.yaml"
        ) from None
    prepare_database(settings)
    db = open_database(settings)
    try:
        yield db, archive
    except FontMissing as exc:
        raise CliError(
            ExitCode.CONFIG, str(exc), "apt-get install -y fonts-wqy-zenhei, or set archive_font"
        ) from None
    except DomainError as exc:
        raise CliError(
            ExitCode.BAD_INPUT,
            f"--{(exc.field or 'input').replace('_', '-')}: {exc.message}",
            "see finoa archive --help",
        ) from None
    except StoredFileDamaged as exc:
        raise CliError(ExitCode.CHECK_FAILED, str(exc), "run finoa archive check") from None
    finally:
        db.dispose()


def _query(period: str | None = None, **filters: Any) -> PackageQuery:
    from finoa.archive.service import package_query
    from finoa.domain.errors import DomainError

    try:
        return package_query(period=period, **filters)
    except DomainError as exc:
        raise CliError(
            ExitCode.BAD_INPUT,
            f"--{(exc.field or 'filter').replace('_', '-')}: {exc.message}",
            "periods are YYYY-MM, amounts plain yuan such as 553.00",
        ) from None


@archive_app.command("build", epilog="Example: finoa archive build --period 2026-11")
def build(period: PeriodOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Build the package of every posted voucher that has none (idempotent), with its 四性检测."""
    from finoa.archive.builders import build_archive
    from finoa.cli import _settings

    query = _query(period)
    settings = _settings(config, data_dir)
    with _archive_for(settings) as (db, archive), _progress("building packages") as step:
        summary = build_archive(settings, db, archive, query.period, progress=step)
    scope = f" in {period}" if period else ""
    if not summary.built and not summary.refused:
        console.print(f"nothing to build{scope}: every posted voucher has its package")
        return
    console.print(
        f"built {len(summary.built)} package(s){scope}: 四性检测 passed {summary.checks_passed}, "
        f"failed {summary.checks_failed}"
    )
    for reason in summary.refused:
        console.print(f"not archived: {reason}")
    if summary.checks_failed or summary.refused:
        raise typer.Exit(ExitCode.CHECK_FAILED)


@archive_app.command("check", epilog="Example: finoa archive check --period 2026-11 --json")
def check(
    period: PeriodOpt = None,
    archive_no: Annotated[str | None, typer.Option("--archive-no", help="Only this 档号")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Run the 四性检测 (authenticity, integrity, usability, security) and store the results;
    exit 1 when an item fails. With an external archive as the record (mode instead), its
    status and 四性检测 result are what count: a package passes once it says archived and
    passed."""
    from finoa.archive.external import counts_as_archived
    from finoa.archive.service import check_archive

    query = _query(period, archive_no=archive_no, limit=1000)
    with _archive(config, data_dir) as (db, archive):
        run = check_archive(db, archive, query)
        external = _external(db, archive, [r.package_id for r, _ in run.reports])
    passed = run.passed if external is None else _external_passed(run, external)
    if as_json:
        packages = [report.as_dict() for _, report in run.reports]
        if external is not None:
            for (record, _), shown in zip(run.reports, packages, strict=True):
                shown["external"] = external.get(record.package_id)
        typer.echo(
            json.dumps(
                {
                    "passed": passed,
                    "record": "built-in" if external is None else str(archive.push_to),
                    "packages": packages,
                    "period_items": [i.as_dict() for i in run.set_items],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        if not run.reports:
            console.print("no packages to check" + (f" in {period}" if period else ""))
        if external is None:
            table = Table("档号", "result", "failed items", title="四性检测")
            for _, report in run.reports:
                failed = "; ".join(f"{i.item}: {i.detail}" for i in report.failed())
                table.add_row(report.archive_no, "pass" if report.passed else "FAIL", failed)
        else:
            table = Table(
                "档号", "result", f"{archive.push_to} status", "failed items",
                title=f"四性检测 ({archive.push_to} is the record)",
            )  # fmt: skip
            for record, _ in run.reports:
                view = external.get(record.package_id)
                table.add_row(record.archive_no, "pass" if counts_as_archived(view) else "FAIL",
                              *_external_cells(view))  # fmt: skip
        for item in run.set_items:
            table.add_row(f"period {period}", item.outcome.value, f"{item.item}: {item.detail}")
        if run.reports:
            console.print(table)
    if not passed:
        raise typer.Exit(ExitCode.CHECK_FAILED)


def _external(db: Database, archive: Archive, package_ids: list[str]) -> dict[str, Any] | None:
    """What the external archive says of each package, when it is the record (else None)."""
    if not archive.external_record:
        return None
    from finoa.archive.external import external_view

    with db.engine.connect() as conn:
        return external_view(conn, package_ids)


def _external_passed(run: Any, external: dict[str, Any]) -> bool:
    from finoa.archive.external import counts_as_archived

    return all(counts_as_archived(external.get(r.package_id)) for r, _ in run.reports) and all(
        i.outcome.value != "fail" for i in run.set_items
    )


def _external_cells(view: dict[str, Any] | None) -> tuple[str, str]:
    """The external archive's status and what it found wrong, for a table row."""
    if view is None:
        return "not pushed", "run finoa archive push"
    failed = [f"{i.get('item')}: {i.get('detail')}" for i in view["items"]
              if i.get("outcome") == "fail"]  # fmt: skip
    if view.get("reason"):
        failed.append(str(view["reason"]))
    return str(view["status"]), "; ".join(failed)


@archive_app.command(
    "search", epilog="Example: finoa archive search --employee E0011 --min-amount 100"
)
def search(
    archive_no: Annotated[str | None, typer.Option("--archive-no", help="档号")] = None,
    period: PeriodOpt = None,
    voucher_no: Annotated[
        str | None, typer.Option("--voucher-no", help="凭证号, e.g. 记-0001")
    ] = None,
    min_amount: Annotated[
        str | None, typer.Option("--min-amount", help="金额合计 at least (yuan)")
    ] = None,
    max_amount: Annotated[
        str | None, typer.Option("--max-amount", help="金额合计 at most (yuan)")
    ] = None,
    employee: Annotated[str | None, typer.Option("--employee", help="Applicant id or name")] = None,
    invoice_number: Annotated[str | None, typer.Option("--invoice-number", help="发票号码")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many")] = 100,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Search the catalog by 档号, period, voucher number, amount range, employee, invoice."""
    from finoa.archive.service import find_packages, record_view, retention_view
    from finoa.domain.money import format_fen

    query = _query(
        period,
        archive_no=archive_no,
        voucher_no=voucher_no,
        min_amount=min_amount,
        max_amount=max_amount,
        employee=employee,
        invoice_number=invoice_number,
        limit=limit,
    )
    with _archive(config, data_dir) as (db, archive):
        with db.engine.connect() as conn:
            found = find_packages(conn, query)
        external = _external(db, archive, [r.package_id for r in found])
    if as_json:
        views = [record_view(r) for r in found]
        if external is not None:  # the external archive is the record: its status counts
            for r, view in zip(found, views, strict=True):
                view["external"] = external.get(r.package_id)
        typer.echo(json.dumps(views, ensure_ascii=False, indent=2))
        return
    columns = ["档号", "凭证号", "金额合计", "责任者", "保管期限至", "发票"]
    if external is not None:
        columns.append(f"{archive.push_to} status")
    table = Table(*columns, title=f"{len(found)} package(s)")
    for r in found:
        cells = [
            r.archive_no,
            r.voucher_no,
            format_fen(r.total_fen),
            r.applicant_name,
            retention_view(r.retain_until),
            ", ".join(r.invoice_numbers),
        ]
        if external is not None:
            cells.append(_external_cells(external.get(r.package_id))[0])
        table.add_row(*cells)
    console.print(table)


@archive_app.command(
    "export", epilog="Example: finoa archive export handover-2026-11 --period 2026-11"
)
def export(
    destination: Annotated[Path, typer.Argument(help="A new directory (or .zip file with --zip)")],
    period: PeriodOpt = None,
    as_zip: Annotated[bool, typer.Option("--zip", help="Write one zip file")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Export packages for handover (移交): a 移交清册 (XML and XLSX) and the packages."""
    from finoa.archive.handover import export_handover

    query = _query(period, limit=1000)
    if destination.exists() and (destination.is_file() or any(destination.iterdir())):
        raise CliError(
            ExitCode.BAD_INPUT, f"{destination}: exists already", "name a new directory or file"
        )
    with _archive(config, data_dir) as (db, archive):
        result = export_handover(db, archive, destination, query, as_zip=as_zip)
    console.print(
        f"exported {result.packages} package(s), {result.files} file(s), "
        f"{result.bytes} bytes to {destination}"
    )


@archive_app.command("import", epilog="Example: finoa archive import handover-2026-11")
def import_(
    source: Annotated[Path, typer.Argument(help="A handover directory or zip file")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Import a handover (接收): every package is checked again (四性) and the handover is
    refused, naming the file, when any item fails."""
    from finoa.archive.handover import HandoverRefused, import_handover

    if not source.exists():
        raise CliError(
            ExitCode.BAD_INPUT,
            f"{source}: no such handover directory or zip file",
            "give what finoa archive export wrote",
        )
    with _archive(config, data_dir) as (db, archive):
        try:
            result = import_handover(db, archive, source)
        except HandoverRefused as exc:
            more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
            raise CliError(
                ExitCode.CHECK_FAILED,
                f"handover refused: {exc.problems[0]}{more}",
                "nothing was imported; ask for the handover again",
            ) from None
    console.print(
        f"imported {result.imported} package(s); {result.already_present} already in the catalog; "
        "四性检测 passed for all"
    )
