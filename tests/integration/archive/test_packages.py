"""Archive packages of posted vouchers on SQLite and PostgreSQL, and their 四性检测."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from support import invoices as build

from finoa.archive.metadata import read_metadata
from finoa.archive.model import FileRole
from finoa.archive.service import (
    Archive,
    PackageQuery,
    build_packages,
    check_archive,
    find_packages,
)
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
    assert (
        record.archive_no
        == f"F001-{record.fiscal_year}-KJ·{record.period[-2:]}-D30-{record.voucher_no}"
    )
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


def built_record(hub: Hub, archive: Archive):  # type: ignore[no-untyped-def]
    build_packages(hub.db, archive)
    with hub.db.engine.connect() as conn:
        return find_packages(conn, PackageQuery())


def failed(run, item: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        i.detail
        for _, report in run.reports
        for i in report.items
        if i.item == item and i.outcome.value == "fail"
    ] + [i.detail for i in run.set_items if i.item == item and i.outcome.value == "fail"]


def test_a_flipped_byte_in_any_stored_file_fails_fixity_naming_the_file(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    posted("OA-ARC-F", invoice=build.einv_xbrl())
    (record,) = built_record(hub, archive)
    assert {f.role for f in record.files} == set(FileRole)
    for f in record.files:
        path = archive.store.files.path(f.sha256)  # type: ignore[attr-defined]
        original = path.read_bytes()
        path.chmod(0o644)
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0x01
        path.write_bytes(bytes(damaged))
        run = check_archive(hub.db, archive, PackageQuery(archive_no=record.archive_no))
        details = failed(run, "authenticity.fixity")
        assert details and details[0].startswith(f"{f.name}: SHA-256 differs"), (f.name, details)
        assert "SM3 differs" in details[0]
        path.write_bytes(original)
    run = check_archive(hub.db, archive, PackageQuery(archive_no=record.archive_no))
    assert run.passed


def test_a_missing_file_fails_integrity_content(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    posted("OA-ARC-M", invoice=build.railway_xbrl())
    (record,) = built_record(hub, archive)
    invoice = record.file(FileRole.INVOICE)
    assert invoice is not None
    archive.store.files.path(invoice.sha256).unlink()  # type: ignore[attr-defined]
    run = check_archive(hub.db, archive, PackageQuery())
    assert not run.passed
    assert failed(run, "integrity.content") == [f"{invoice.name}: missing"]
    assert failed(run, "authenticity.fixity") == []  # what is there is still intact


def test_a_catalog_edit_fails_the_metadata_check(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    posted("OA-ARC-E")
    (record,) = built_record(hub, archive)
    with hub.db.engine.begin() as conn:
        conn.execute(
            archive_packages.update()
            .where(archive_packages.c.id == record.package_id)
            .values(total_fen=record.total_fen + 100)
        )
    run = check_archive(hub.db, archive, PackageQuery())
    assert failed(run, "authenticity.metadata") == [
        "金额合计: metadata says '553.00', the catalog '554.00'"
    ]
    assert failed(run, "authenticity.fixity") == []


def test_a_voucher_missing_from_the_period_fails_numbering(
    hub: Hub, archive: Archive, approved: Callable[..., str], post: Callable[[str], None]
) -> None:
    vouchers = [approved(f"OA-ARC-N{n}") for n in range(3)]
    post(vouchers[0])
    post(vouchers[2])  # the second is numbered but never posted
    (first, third) = built_record(hub, archive)
    assert (first.voucher_number, third.voucher_number) == (1, 3)
    run = check_archive(hub.db, archive, PackageQuery(period=first.period))
    assert all(report.passed for _, report in run.reports)
    assert failed(run, "integrity.numbering") == [f"{first.period}: 记-0002 not archived"]
    assert not run.passed
    post(vouchers[1])
    assert len(build_packages(hub.db, archive).built) == 1
    assert check_archive(hub.db, archive, PackageQuery(period=first.period)).passed


def test_a_posted_voucher_without_a_queue_row_is_still_archived(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    posted("OA-ARC-Q")
    with hub.db.engine.begin() as conn:
        conn.execute(archive_queue.delete())  # as for vouchers posted before the archive existed
    assert len(build_packages(hub.db, archive).built) == 1


def test_a_voucher_whose_invoice_original_is_gone_stays_queued_with_the_reason(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    invoice = build.railway_xbrl()
    voucher_id = posted("OA-ARC-G", invoice=invoice)
    archive.invoice_files.path(sha256_hex(invoice)).unlink()
    summary = build_packages(hub.db, archive)
    assert summary.built == []
    assert summary.refused == [
        f"{voucher_id}: an invoice original is missing from the invoice store"
    ]
    with hub.db.engine.connect() as conn:
        (row,) = conn.execute(select(archive_queue)).all()
    assert (row.voucher_id, row.attempts, row.last_error) == (voucher_id, 1, summary.refused[0])
    assert count(hub, archive_packages) == 0


def test_archive_posted_builds_what_the_demo_posted(hub: Hub, posted: Callable[..., str]) -> None:
    from finoa.archive.service import archive_posted

    posted("OA-ARC-D1")
    posted("OA-ARC-D2")
    summary = archive_posted(hub.settings)
    assert (len(summary.built), summary.checks_passed, summary.checks_failed) == (2, 2, 0)
    assert archive_posted(hub.settings).built == []
