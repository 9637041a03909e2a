"""Archive packages of posted vouchers on SQLite and PostgreSQL, and their 四性检测."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from support import invoices as build

from finoa.archive.metadata import read_metadata
from finoa.archive.model import FileRole
from finoa.archive.service import Archive, PackageQuery, build_packages, check_archive, find_packages
from finoa.archive.storage import sha256_hex, sm3_hex
from finoa.services.context import Hub
from finoa.store.tables import archive_checks, archive_packages, archive_queue


def count(hub: Hub, table) -> int:  # type: ignore[no-untyped-def]
    with hub.db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_posted_voucher_gets_one_package_that_passes_its_checks(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    invoice = build.railway_xbrl(fare="553.00")
    voucher_id = posted("OA-ARC-1", invoice=invoice)
    assert count(hub, archive_queue) == 1  # queued by the posting transaction
    summary = build_packages(hub.db, archive)
    assert len(summary.built) == 1 and summary.checks_passed == 1, summary
    assert count(hub, archive_queue) == 0
    again = build_packages(hub.db, archive)
    assert again.built == [] and count(hub, archive_packages) == 1
    with hub.db.engine.connect() as conn:
        (record,) = find_packages(conn, PackageQuery())
    assert record.voucher_id == voucher_id
    assert record.archive_no == f"F001-{record.fiscal_year}-KJ·{record.period[-2:]}-D30-{record.voucher_no}"
    assert record.retain_until is not None and record.retain_until.year == record.fiscal_year + 30
    invoice_file = record.file(FileRole.INVOICE)
    assert invoice_file is not None
    assert archive.store.read(invoice_file.sha256) == invoice  # bytes untouched
    metadata_file = record.file(FileRole.METADATA)
    assert metadata_file is not None
    metadata = read_metadata(archive.store.read(metadata_file.sha256))
    assert metadata.values["档号"] == record.archive_no
    assert metadata.values["金额合计"] == "553.00"
    pdf = record.file(FileRole.VOUCHER_PDF)
    assert pdf is not None
    data = archive.store.read(pdf.sha256)
    assert pdf.sm3 == sm3_hex(data) and pdf.sha256 == sha256_hex(data)
    run = check_archive(hub.db, archive, PackageQuery(period=record.period))
    assert run.passed, [r.failed() for _, r in run.reports]
    assert count(hub, archive_checks) == 2  # at archiving and now
