"""`finoa archive borrow | decide | view | expire | destroy`: using and disposing of the
archive (registered on the `finoa archive` app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finoa.archive.cli import ConfigOpt, DataDirOpt, _archive, archive_app, console
from finoa.cli_errors import CliError, ExitCode

ACTOR = "cli"


def _hub(config: Path | None, data_dir: Path | None):  # type: ignore[no-untyped-def]
    from finoa.cli import _settings
    from finoa.runtime import prepare_database
    from finoa.services.context import Hub
    from finoa.services.masterdata import load_masterdata

    settings = _settings(config, data_dir)
    prepare_database(settings)
    hub = Hub.create(settings)
    load_masterdata(hub.db)
    return hub


@archive_app.command(
    "borrow",
    epilog="Example: finoa archive borrow F001-2026-KJ·11-D30-记-0001 --by E0011 --days 7 "
    "--reason 审计抽查",
)
def borrow(
    packages: Annotated[list[str], typer.Argument(help="Package ids or 档号")],
    by: Annotated[str, typer.Option("--by", help="The borrower's employee id")],
    days: Annotated[int, typer.Option("--days", help="How long the loan lasts")],
    reason: Annotated[str, typer.Option("--reason", help="Why (借阅事由)")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Ask to borrow packages (利用): the archive keeper approves in the OA todo list."""
    from finoa.archive.borrowing import request_borrowing

    with _archive(config, data_dir) as _:
        hub = _hub(config, data_dir)
        try:
            made = request_borrowing(hub, packages, by, days, reason, actor=ACTOR)
        finally:
            hub.close()
    console.print(
        f"borrowing {made.borrowing_id} requested: task {made.task_id} for {made.approver_id}"
    )


@archive_app.command(
    "decide", epilog="Example: finoa archive decide arch-BR-0a1b2c3d4e5f-1 --approver E0003"
)
def decide(
    task_id: Annotated[str, typer.Argument(help="The archive task (arch-…)")],
    approver: Annotated[str, typer.Option("--approver", help="The assignee's employee id")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approve")] = False,
    comment: Annotated[str | None, typer.Option("--comment", help="审批意见")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Decide an archive task (borrowing or destruction); the last approval of a
    destruction removes the files and writes the 销毁清册."""
    from finoa.archive.borrowing import decide_archive_task
    from finoa.archive.destruction import carry_out

    with _archive(config, data_dir) as (_, archive):
        hub = _hub(config, data_dir)
        try:
            outcome = decide_archive_task(
                hub, task_id, approver, not reject, comment, actor=f"employee:{approver}"
            )
            if outcome.subject_type == "destruction" and outcome.status == "approved":
                carry_out(hub, archive, outcome.subject_id)
                console.print(f"{outcome.subject_id}: destroyed; 销毁清册 kept")
                return
        finally:
            hub.close()
    console.print(f"{outcome.subject_id}: {outcome.status}")


@archive_app.command(
    "view", epilog="Example: finoa archive view F001-2026-KJ·11-D30-记-0001 --by E0011"
)
def view(
    package: Annotated[str, typer.Argument(help="Package id or 档号")],
    by: Annotated[str, typer.Option("--by", help="The borrower's employee id")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Use a borrowed package (logged); refused outside a granted, unexpired borrowing."""
    from finoa.archive.borrowing import access_package

    with _archive(config, data_dir) as (db, _):
        record, borrowing_id = access_package(db, package, by, "view")
    console.print(f"{record.archive_no} {record.voucher_no} (borrowing {borrowing_id})")
    for f in record.files:
        console.print(f"  {f.name} {f.sha256}")


@archive_app.command("expire", epilog="Example: finoa archive expire")
def expire(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Close borrowings past their expiry and tell the borrowers (a schedule runs this)."""
    from finoa.archive.borrowing import expire_borrowings

    with _archive(config, data_dir) as (db, _):
        done = expire_borrowings(db)
    console.print(f"{len(done)} borrowing(s) expired")


@archive_app.command("destroy", epilog="Example: finoa archive destroy --period 1990-01")
def destroy(
    packages: Annotated[list[str] | None, typer.Argument(help="Package ids or 档号")] = None,
    period: Annotated[str | None, typer.Option("--period", help="Every package of YYYY-MM")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Appraise packages for destruction (鉴定): refused, naming each, unless retention has
    expired and nothing is unsettled; opens the keeper -> accounting -> audit approvals."""
    from finoa.archive.destruction import DestructionRefused, start_destruction
    from finoa.archive.service import package_query

    if not packages and period is None:
        raise CliError(
            ExitCode.BAD_INPUT, "name packages or --period", "see finoa archive destroy --help"
        )
    if period is not None:
        from finoa.domain.errors import DomainError

        try:
            period = package_query(period=period).period
        except DomainError as exc:
            raise CliError(
                ExitCode.BAD_INPUT, f"--period: {exc.message}", "periods are YYYY-MM"
            ) from None
    with _archive(config, data_dir) as (_, archive):
        hub = _hub(config, data_dir)
        try:
            started = start_destruction(hub, archive, packages or (), period=period, actor=ACTOR)
        except DestructionRefused as exc:
            more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
            raise CliError(
                ExitCode.BAD_INPUT,
                f"destruction refused: {exc.problems[0]}{more}",
                "nothing was changed; leave out the packages named",
            ) from None
        finally:
            hub.close()
    console.print(
        f"destruction {started.destruction_id}: {len(started.packages)} package(s) appraised; "
        f"first approval {started.task_ids[0]}"
    )


@archive_app.command("push", epilog="Example: finoa archive push --period 2026-11")
def push(
    period: Annotated[str | None, typer.Option("--period", help="Only this period")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Queue packages never pushed to the external archive instance (kind archive, e.g.
    archive_external_url); the hub delivers them and records its answer (status, 四性检测)."""
    from finoa.archive.cli import _query
    from finoa.archive.external import queue_pushes

    query = _query(period, limit=1000)
    with _archive(config, data_dir) as (db, archive):
        if archive.push_to is None:
            raise CliError(ExitCode.CONFIG, "no external archive is configured",
                           "add an instance of kind archive (connector generic-archive) or "
                           "set archive_external_url and archive_external_api_key")  # fmt: skip
        summary = queue_pushes(db, archive, query)
    console.print(
        f"queued {len(summary.queued)} package(s) for {archive.push_to}; "
        f"{summary.already} pushed or queued before"
    )
