"""Archiving use cases: build the packages of posted vouchers, check them, find them.

How a posted voucher reaches the archive: `record_voucher_posted` writes an `archive_queue`
row in the posting transaction (one small insert; the posting commits it or nothing), and
`build_packages` drains the queue, building each package in a transaction of its own. The
builder also picks up any posted voucher that has no package (vouchers posted before the
archive existed), so nothing is lost even if a queue row were. `archive_posted(settings)`
is what the demo and a schedule call; `finoa archive build` runs the same. Many batches are
built by processes side by side (`archive/builders.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from finoa.archive.checks import check_package, check_set
from finoa.archive.model import (
    ArchiveNoScheme,
    CheckItem,
    CheckReport,
    PackageFile,
    PackageRecord,
)
from finoa.archive.package import (
    ArchiveSettings,
    BuildRefused,
    BuiltPackage,
    base_data,
    build_package,
)
from finoa.archive.storage import ArchiveStore, FilesystemArchiveStore
from finoa.config import Settings
from finoa.connectors.base import ArchivePushPayload
from finoa.invoices.storage import InvoiceFiles, StoredFileDamaged
from finoa.messaging.outbox import push_package
from finoa.store.prepared import Prepared
from finoa.store.tables import (
    archive_checks,
    archive_package_invoices,
    archive_packages,
    archive_queue,
    vouchers,
)
from finoa.store.uow import Database, UnitOfWork

ARCHIVED = "archived"
STAGES = ("archiving", "import", "on_demand")


@dataclass(frozen=True)
class Archive:
    """What archiving needs from the settings. `push_to` names the external archive instance
    each new package is pushed to (none: the built-in archive only); `external_record` says
    that instance, not the built-in archive, is the record (mode `instead`)."""

    config: ArchiveSettings
    store: ArchiveStore
    invoice_files: InvoiceFiles
    push_to: str | None = None
    external_record: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Archive:
        from finoa.connectors.instances import INSTEAD, load_instances

        external = load_instances(settings).archive
        return cls(
            ArchiveSettings(
                fonds=settings.archive_fonds,
                scheme=ArchiveNoScheme(settings.archive_no_template),
                font=settings.archive_font,
                company=str(settings.extra.get("company_name", "")),
            ),
            FilesystemArchiveStore(settings.archive_path),
            InvoiceFiles(settings.invoice_path),
            external.name if external is not None else None,
            external is not None and external.mode == INSTEAD,
        )


@dataclass
class BuildSummary:
    built: list[str] = field(default_factory=list)  # 档号 of packages built now
    existing: int = 0  # vouchers that already had their package
    refused: list[str] = field(default_factory=list)  # why a voucher could not be archived
    checks_passed: int = 0
    checks_failed: int = 0

    def merge(self, other: BuildSummary) -> None:
        """Add what another batch built."""
        self.built += other.built
        self.existing += other.existing
        self.refused += other.refused
        self.checks_passed += other.checks_passed
        self.checks_failed += other.checks_failed


ArchiveSummary = BuildSummary


QUEUE_FOR_ARCHIVING = Prepared(insert(archive_queue))


def enqueue_archiving(uow: UnitOfWork, voucher_id: str) -> None:
    """Queue a posted voucher for its package: called inside the posting transaction (a
    prepared statement: it is on the settlement's hot path, once per voucher)."""
    QUEUE_FOR_ARCHIVING.run(
        uow.conn, {"voucher_id": voucher_id, "queued_at": uow.now, "attempts": 0}
    )


def pending_vouchers(conn: Connection, period: str | None = None) -> list[str]:
    """Queued vouchers and posted vouchers without a package, oldest first."""
    queued = select(archive_queue.c.voucher_id)
    unpackaged = (
        select(vouchers.c.id)
        .outerjoin(archive_packages, archive_packages.c.voucher_id == vouchers.c.id)
        .where(vouchers.c.status.in_(("posted", "reversed")), archive_packages.c.id.is_(None))
    )
    if period is not None:
        queued = queued.join(vouchers, vouchers.c.id == archive_queue.c.voucher_id).where(
            vouchers.c.period == period
        )
        unpackaged = unpackaged.where(vouchers.c.period == period)
    ids = [r[0] for r in conn.execute(queued.order_by(archive_queue.c.queued_at))]
    ids += [r[0] for r in conn.execute(unpackaged.order_by(vouchers.c.period, vouchers.c.number))]
    return list(dict.fromkeys(ids))


BATCH = 50  # packages whose files are flushed together and recorded in one transaction


def batches(voucher_ids: list[str], size: int = BATCH) -> list[list[str]]:
    """`voucher_ids` in batches of `size`, in order."""
    return [voucher_ids[at : at + size] for at in range(0, len(voucher_ids), size)]


def build_packages(
    db: Database,
    archive: Archive,
    period: str | None = None,
    *,
    pending: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BuildSummary:
    """Build every missing package (of `period`; or of `pending`, the vouchers already
    found) in this process, idempotent: a voucher with its package is left alone;
    `progress(done, all)` after each batch. `builders.build_archive` spreads the batches
    over processes."""
    summary = BuildSummary()
    if pending is None:
        with db.engine.connect() as conn:
            pending = pending_vouchers(conn, period)
    done = 0
    for batch in batches(pending):
        build_batch(db, archive, batch, summary)
        done += len(batch)
        if progress is not None:
            progress(done, len(pending))
    return summary


@dataclass
class BuiltBatch:
    """A batch's packages with their files stored and checked, not yet recorded."""

    done: list[str] = field(default_factory=list)  # vouchers that had their package already
    refused: list[tuple[str, str]] = field(default_factory=list)  # (voucher, why)
    packages: list[tuple[PackageRecord, CheckReport]] = field(default_factory=list)
    push_to: str | None = None  # the external archive each package is pushed to, if any


Write = Callable[[Callable[[UnitOfWork], None]], None]  # runs a write in a transaction of its own


def make_batch(db: Database, archive: Archive, voucher_ids: list[str]) -> BuiltBatch:
    """The packages of `voucher_ids`: built, their files stored (write-once, flushed
    together) and checked (四性检测). Only reads the database: `record_batch` writes."""
    batch = BuiltBatch(push_to=archive.push_to)
    built: list[BuiltPackage] = []
    with db.engine.connect() as conn:
        have = {
            r[0]
            for r in conn.execute(
                select(archive_packages.c.voucher_id).where(
                    archive_packages.c.voucher_id.in_(voucher_ids)
                )
            )
        }
        base = base_data(conn)  # the names every package of the batch uses, read once
        conn.rollback()  # each voucher's rows are read in a short transaction of their own
        for voucher_id in voucher_ids:
            if voucher_id in have:
                batch.done.append(voucher_id)
                continue
            try:
                built.append(
                    build_package(
                        conn, voucher_id, archive.config, archive.invoice_files, archive.store,
                        db.clock(), base=base, end_reads=True,
                    )
                )  # fmt: skip
            except (BuildRefused, StoredFileDamaged) as exc:
                batch.refused.append((voucher_id, str(exc)))
            except FileNotFoundError:
                batch.refused.append(
                    (
                        voucher_id,
                        f"{voucher_id}: an invoice original is missing from the invoice store",
                    )
                )
    archive.store.put_many(data for package in built for data in package.contents.values())
    batch.packages = [
        (p.record, check_package(p.record, archive.store, archive.config.scheme)) for p in built
    ]
    return batch


def record_batch(batch: BuiltBatch, write: Write, summary: BuildSummary) -> None:
    """The catalog rows of a built batch, their 四性检测 and the queue rows, in one
    transaction run by `write`; one package at a time if another builder recorded one of
    them meanwhile (that one is then left as it is)."""

    def record(uow: UnitOfWork) -> None:
        for voucher_id in batch.done:
            _dequeue(uow, voucher_id)
        for voucher_id, reason in batch.refused:
            _note_refusal(uow, voucher_id, reason)
        for package, report in batch.packages:
            _record(uow, package, report, batch.push_to)

    done = list(batch.done)
    try:
        write(record)
        recorded = batch.packages
    except IntegrityError:
        recorded = []
        for package, report in batch.packages:
            try:
                write(lambda uow, p=package, r=report: _record(uow, p, r, batch.push_to))  # type: ignore[misc]
                recorded.append((package, report))
            except IntegrityError:
                done.append(package.voucher_id)
    summary.existing += len(done)
    summary.refused += [reason for _, reason in batch.refused]
    for package, report in recorded:
        summary.built.append(package.archive_no)
        if report.passed:
            summary.checks_passed += 1
        else:
            summary.checks_failed += 1


def build_batch(
    db: Database, archive: Archive, voucher_ids: list[str], summary: BuildSummary
) -> None:
    """Build the packages of `voucher_ids` and record them (`make_batch`, `record_batch`)."""
    record_batch(make_batch(db, archive, voucher_ids), writer(db), summary)


def writer(db: Database) -> Write:
    """Writes in transactions of their own on `db`."""
    return lambda command: db.perform(command, actor="archive")


def _dequeue(uow: UnitOfWork, voucher_id: str) -> None:
    uow.conn.execute(delete(archive_queue).where(archive_queue.c.voucher_id == voucher_id))


def _note_refusal(uow: UnitOfWork, voucher_id: str, reason: str) -> None:
    uow.conn.execute(
        update(archive_queue)
        .where(archive_queue.c.voucher_id == voucher_id)
        .values(attempts=archive_queue.c.attempts + 1, last_error=reason[:2000])
    )


def insert_package(uow: UnitOfWork, record: PackageRecord, origin: str) -> None:
    uow.conn.execute(
        insert(archive_packages).values(
            id=record.package_id,
            voucher_id=record.voucher_id,
            archive_no=record.archive_no,
            fonds=record.fonds,
            fiscal_year=record.fiscal_year,
            period=record.period,
            word=record.word,
            voucher_number=record.voucher_number,
            voucher_no=record.voucher_no,
            record_kind=record.record_kind,
            retention=record.retention,
            retain_until=record.retain_until,
            total_fen=record.total_fen,
            currency=record.currency,
            claim_id=record.claim_id,
            applicant_id=record.applicant_id,
            applicant_name=record.applicant_name,
            status=ARCHIVED,
            origin=origin,
            files=[f.as_dict() for f in record.files],
            metadata_sha256=record.metadata_sha256,
            archived_at=uow.now,
        )
    )
    if record.invoice_numbers:
        uow.conn.execute(
            insert(archive_package_invoices),
            [
                {"package_id": record.package_id, "invoice_number": n}
                for n in record.invoice_numbers
            ],
        )
    uow.audit(
        "archive.package_archived",
        "archive_package",
        record.package_id,
        {
            "archive_no": record.archive_no,
            "voucher_id": record.voucher_id,
            "origin": origin,
            "metadata_sha256": record.metadata_sha256,
        },
    )


def store_report(uow: UnitOfWork, package_id: str, stage: str, report: CheckReport) -> None:
    uow.conn.execute(
        insert(archive_checks).values(
            package_id=package_id,
            stage=stage,
            checked_at=uow.now,
            passed=report.passed,
            items=[i.as_dict() for i in report.items],
        )
    )


def _record(
    uow: UnitOfWork, record: PackageRecord, report: CheckReport, push_to: str | None
) -> None:
    """The catalog rows of a built package, its check, its notice; and, with an external
    archive, its `archive.push`, all in one transaction."""
    from finoa.archive.notices import package_archived

    insert_package(uow, record, "built")
    store_report(uow, record.package_id, "archiving", report)
    package_archived(uow, record, report.passed,
                     [f"{i.item}: {i.detail}" for i in report.failed()])  # fmt: skip
    _dequeue(uow, record.voucher_id)
    if push_to is not None:
        push_package(uow, push_to, push_payload(record))


def record_from_row(row: Any, invoice_numbers: tuple[str, ...]) -> PackageRecord:
    return PackageRecord(
        package_id=row.id,
        voucher_id=row.voucher_id,
        archive_no=row.archive_no,
        fonds=row.fonds,
        fiscal_year=row.fiscal_year,
        period=row.period,
        word=row.word,
        voucher_number=row.voucher_number,
        voucher_no=row.voucher_no,
        record_kind=row.record_kind,
        retention=row.retention,
        retain_until=row.retain_until,
        total_fen=row.total_fen,
        currency=row.currency,
        claim_id=row.claim_id,
        applicant_id=row.applicant_id,
        applicant_name=row.applicant_name,
        invoice_numbers=invoice_numbers,
        files=tuple(PackageFile.from_dict(f) for f in row.files),
        metadata_sha256=row.metadata_sha256,
    )


@dataclass(frozen=True)
class PackageQuery:
    """Catalog filters; all optional, combined with AND."""

    archive_no: str | None = None
    period: str | None = None
    voucher_no: str | None = None
    min_fen: int | None = None
    max_fen: int | None = None
    employee: str | None = None  # applicant id or name
    invoice_number: str | None = None
    limit: int = 100
    offset: int = 0


def find_packages(conn: Connection, query: PackageQuery) -> list[PackageRecord]:
    t = archive_packages
    stmt = select(t)
    conditions = []
    if query.archive_no:
        conditions.append(t.c.archive_no == query.archive_no)
    if query.period:
        conditions.append(t.c.period == query.period)
    if query.voucher_no:
        conditions.append(t.c.voucher_no == query.voucher_no)
    if query.min_fen is not None:
        conditions.append(t.c.total_fen >= query.min_fen)
    if query.max_fen is not None:
        conditions.append(t.c.total_fen <= query.max_fen)
    if query.employee:
        conditions.append(
            or_(t.c.applicant_id == query.employee, t.c.applicant_name == query.employee)
        )
    if query.invoice_number:
        stmt = stmt.join(
            archive_package_invoices,
            and_(
                archive_package_invoices.c.package_id == t.c.id,
                archive_package_invoices.c.invoice_number == query.invoice_number,
            ),
        )
    rows = conn.execute(
        stmt.where(*conditions)
        .order_by(t.c.period, t.c.word, t.c.voucher_number, t.c.id)
        .limit(query.limit)
        .offset(query.offset)
    ).all()
    numbers: dict[str, list[str]] = {r.id: [] for r in rows}
    if rows:
        for link in conn.execute(
            select(archive_package_invoices).where(
                archive_package_invoices.c.package_id.in_(list(numbers))
            )
        ):
            numbers[link.package_id].append(link.invoice_number)
    return [record_from_row(r, tuple(sorted(numbers[r.id]))) for r in rows]


@dataclass(frozen=True)
class CheckRun:
    reports: list[tuple[PackageRecord, CheckReport]]
    set_items: list[CheckItem]

    @property
    def passed(self) -> bool:
        return all(r.passed for _, r in self.reports) and all(
            i.outcome.value != "fail" for i in self.set_items
        )


def check_archive(
    db: Database, archive: Archive, query: PackageQuery, *, stage: str = "on_demand"
) -> CheckRun:
    """四性检测 of the packages `query` selects, stored per package; a period also gets the
    checks over its set (numbering, 档号 unique)."""
    with db.engine.connect() as conn:
        records = find_packages(conn, query)
    reports = [(r, check_package(r, archive.store, archive.config.scheme)) for r in records]
    set_items = check_set(records) if records and query.period else []

    def store(uow: UnitOfWork) -> None:
        from finoa.archive.notices import check_failed

        for record, report in reports:
            store_report(uow, record.package_id, stage, report)
            if not report.passed:
                check_failed(uow, record, [f"{i.item}: {i.detail}" for i in report.failed()])

    if reports:
        db.perform(store, actor="archive")
    return CheckRun(reports, set_items)


def latest_reports(conn: Connection, package_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The newest stored check of each package."""
    found: dict[str, dict[str, Any]] = {}
    if not package_ids:
        return found
    rows = conn.execute(
        select(archive_checks)
        .where(archive_checks.c.package_id.in_(package_ids))
        .order_by(archive_checks.c.checked_at, archive_checks.c.id)
    )
    for row in rows:
        found[row.package_id] = {
            "stage": row.stage,
            "checked_at": row.checked_at.isoformat(),
            "passed": row.passed,
            "items": row.items,
        }
    return found


def record_view(record: PackageRecord) -> dict[str, Any]:
    return {
        "package_id": record.package_id,
        "archive_no": record.archive_no,
        "fonds": record.fonds,
        "fiscal_year": record.fiscal_year,
        "period": record.period,
        "voucher_no": record.voucher_no,
        "voucher_id": record.voucher_id,
        "claim_id": record.claim_id,
        "retention": record.retention,
        "retain_until": record.retain_until.isoformat() if record.retain_until else None,
        "total_fen": record.total_fen,
        "currency": record.currency,
        "applicant_id": record.applicant_id,
        "applicant_name": record.applicant_name,
        "invoice_numbers": list(record.invoice_numbers),
        "files": [f.as_dict() for f in record.files],
    }


def push_payload(record: PackageRecord) -> ArchivePushPayload:
    """What the outbox keeps of a package to push: its ids, catalog fields and file list
    with hashes (the connector reads the files' bytes from the store when it delivers)."""
    view = record_view(record)
    files = view.pop("files")
    return {
        "package_id": record.package_id,
        "archive_no": record.archive_no,
        "metadata": view,
        "files": files,
    }


def archive_posted(settings: Settings) -> ArchiveSummary:
    """Build the packages of every posted voucher that has none (the demo calls this after its
    claims are posted): packages built, and how many passed their 四性检测."""
    from finoa.archive.builders import build_archive
    from finoa.runtime import prepare_database
    from finoa.services.context import open_database

    prepare_database(settings)
    db = open_database(settings)
    try:
        return build_archive(settings, db, Archive.from_settings(settings))
    finally:
        db.dispose()


def retention_view(until: date | None) -> str:
    return until.isoformat() if until else "永久"


MAX_FILTER = 128


def package_query(
    *,
    archive_no: str | None = None,
    period: str | None = None,
    voucher_no: str | None = None,
    min_amount: str | None = None,
    max_amount: str | None = None,
    employee: str | None = None,
    invoice_number: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> PackageQuery:
    """Catalog filters from text, each checked; a bad one is InvalidInput naming it."""
    from finoa.domain.errors import InvalidInput
    from finoa.domain.money import yuan_to_fen
    from finoa.domain.periods import Period

    texts = {
        "archive_no": archive_no,
        "voucher_no": voucher_no,
        "employee": employee,
        "invoice_number": invoice_number,
    }
    for name, value in texts.items():
        if value is not None and (
            not value.strip() or len(value) > MAX_FILTER or not value.isprintable()
        ):
            raise InvalidInput(name, f"must be 1-{MAX_FILTER} printable characters")
    if period is not None:
        period = str(Period.parse(period))
    low = yuan_to_fen(min_amount, field="min_amount") if min_amount is not None else None
    high = yuan_to_fen(max_amount, field="max_amount") if max_amount is not None else None
    if low is not None and high is not None and low > high:
        raise InvalidInput("max_amount", "is below min_amount")
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit", "must be 1-1000")
    if not 0 <= offset <= 1_000_000_000:
        raise InvalidInput("offset", "must be 0 or more")
    return PackageQuery(
        archive_no, period, voucher_no, low, high, employee, invoice_number, limit, offset
    )
