"""Handover (移交): export packages with a 移交清册, and import a handover after checking it.

An export is one directory (or that directory as a zip): `handover.xml` (the 移交清册 as XML,
with every package's catalog data and every file's size, SHA-256 and SM3), `移交清册.xlsx` (the
same list for people) and `packages/<package id>/<file>`. An import reads the 清册, runs the
四性检测 on every package as found in the handover and refuses the whole handover, naming the
file, when any item fails; nothing is imported then.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from lxml import etree
from openpyxl import Workbook
from sqlalchemy import insert, select

from finoa.archive.checks import check_package, check_set
from finoa.archive.model import CheckReport, Outcome, PackageFile, PackageRecord
from finoa.archive.service import (
    Archive,
    PackageQuery,
    find_packages,
    insert_package,
    store_report,
)
from finoa.domain.money import format_fen
from finoa.soap.envelope import parse_xml
from finoa.store.tables import archive_access_log, archive_packages
from finoa.store.uow import Database, UnitOfWork

NS = "https://finoa.dev/archive/handover/v1"
REGISTER_XML = "handover.xml"
REGISTER_XLSX = "移交清册.xlsx"
RECORD_FIELDS = (
    "package_id",
    "voucher_id",
    "archive_no",
    "fonds",
    "fiscal_year",
    "period",
    "word",
    "voucher_number",
    "voucher_no",
    "record_kind",
    "retention",
    "retain_until",
    "total_fen",
    "currency",
    "claim_id",
    "applicant_id",
    "applicant_name",
    "metadata_sha256",
)
INT_FIELDS = {"fiscal_year", "voucher_number", "total_fen"}


class HandoverRefused(Exception):
    """The handover cannot be accepted; `problems` name the package and file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ExportResult:
    path: Path
    packages: int
    files: int
    bytes: int


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def export_handover(
    db: Database,
    archive: Archive,
    destination: Path,
    query: PackageQuery,
    *,
    as_zip: bool = False,
    actor: str = "cli",
) -> ExportResult:
    """Write the packages `query` selects to `destination` (a new directory, or a zip file)."""
    with db.engine.connect() as conn:
        records = find_packages(conn, query)
    contents: dict[str, bytes] = {}
    for record in records:
        for f in record.files:
            contents[f"packages/{record.package_id}/{f.name}"] = archive.store.read(f.sha256)
    contents[REGISTER_XML] = register_xml(records, datetime.now().astimezone())
    contents[REGISTER_XLSX] = register_xlsx(records)
    if as_zip:
        destination.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(destination, "x", compression=zipfile.ZIP_DEFLATED) as container:
            for name, data in sorted(contents.items()):
                container.writestr(name, data)
    else:
        if destination.exists() and any(destination.iterdir()):
            raise FileExistsError(f"{destination} is not empty")
        for name, data in contents.items():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def log(uow: UnitOfWork) -> None:
        if records:
            uow.conn.execute(
                insert(archive_access_log),
                [
                    {
                        "package_id": r.package_id,
                        "at": uow.now,
                        "actor": actor,
                        "action": "exported",
                        "detail": {"handover": destination.name},
                    }
                    for r in records
                ],
            )

    db.perform(log, actor=actor)
    files = sum(len(r.files) for r in records)
    size = sum(f.size for r in records for f in r.files)
    return ExportResult(destination, len(records), files, size)


def register_xml(records: list[PackageRecord], at: datetime) -> bytes:
    root = etree.Element(_q("移交清册"), nsmap={None: NS})
    etree.SubElement(root, _q("移交时间")).text = at.isoformat(timespec="seconds")
    etree.SubElement(root, _q("档案数")).text = str(len(records))
    for record in records:
        item = etree.SubElement(root, _q("档案"))
        for name in RECORD_FIELDS:
            value = getattr(record, name)
            text = (
                value.isoformat()
                if isinstance(value, date)
                else ("" if value is None else str(value))
            )
            etree.SubElement(item, _q(name)).text = text
        numbers = etree.SubElement(item, _q("invoice_numbers"))
        for number in record.invoice_numbers:
            etree.SubElement(numbers, _q("number")).text = number
        files = etree.SubElement(item, _q("files"))
        for f in record.files:
            etree.SubElement(files, _q("file"), {k: str(v) for k, v in f.as_dict().items()})
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def register_xlsx(records: list[PackageRecord]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "移交清册"
    sheet.append(
        [
            "序号",
            "档号",
            "全宗号",
            "会计年度",
            "凭证号",
            "金额合计",
            "币种",
            "责任者",
            "保管期限",
            "保管期限至",
            "文件数",
            "总字节数",
        ]
    )
    for n, r in enumerate(records, start=1):
        sheet.append(
            [
                n,
                r.archive_no,
                r.fonds,
                r.fiscal_year,
                r.voucher_no,
                format_fen(r.total_fen).replace(",", ""),
                r.currency,
                r.applicant_name,
                r.retention,
                r.retain_until.isoformat() if r.retain_until else "永久",
                len(r.files),
                sum(f.size for f in r.files),
            ]
        )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


class _HandoverFiles:
    """The files of a handover, read by their recorded SHA-256 (unchecked, as found)."""

    def __init__(self, read: dict[str, bytes | None]) -> None:
        self._by_digest = read

    def put_many(self, files: Iterable[bytes]) -> list[str]:
        raise PermissionError("a handover is read-only")

    def read(self, sha256: str) -> bytes:
        data = self._by_digest.get(sha256)
        if data is None:
            raise FileNotFoundError(sha256)
        return data

    def exists(self, sha256: str) -> bool:
        return self._by_digest.get(sha256) is not None

    def location(self, sha256: str) -> str:
        return "handover"


def _reader(source: Path) -> dict[str, bytes]:
    if source.is_file():
        with zipfile.ZipFile(source) as container:
            return {i.filename: container.read(i) for i in container.infolist() if not i.is_dir()}
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such handover directory or zip file")
    return {
        p.relative_to(source).as_posix(): p.read_bytes() for p in source.rglob("*") if p.is_file()
    }


def read_register(data: bytes) -> list[PackageRecord]:
    try:
        root = parse_xml(data, max_bytes=256 << 20)
    except Exception as exc:
        raise HandoverRefused([f"{REGISTER_XML}: does not parse ({exc})"]) from None
    records = []
    for n, item in enumerate(root.iterfind(_q("档案"))):
        try:
            values: dict[str, object] = {}
            for name in RECORD_FIELDS:
                found = item.find(_q(name))
                text = "" if found is None or found.text is None else found.text
                if name in INT_FIELDS:
                    values[name] = int(text)
                elif name == "retain_until":
                    values[name] = date.fromisoformat(text) if text else None
                else:
                    values[name] = text
            numbers = tuple(
                e.text or "" for e in item.iterfind(f"{_q('invoice_numbers')}/{_q('number')}")
            )
            files = tuple(
                PackageFile.from_dict(dict(e.attrib))
                for e in item.iterfind(f"{_q('files')}/{_q('file')}")
            )
        except (ValueError, KeyError) as exc:
            raise HandoverRefused([f"{REGISTER_XML}: 档案[{n}] is malformed ({exc})"]) from None
        records.append(PackageRecord(invoice_numbers=numbers, files=files, **values))  # type: ignore[arg-type]
    return records


@dataclass(frozen=True)
class ImportResult:
    imported: int
    already_present: int
    reports: list[tuple[PackageRecord, CheckReport]]


def import_handover(
    db: Database, archive: Archive, source: Path, *, actor: str = "cli"
) -> ImportResult:
    """Check every package of the handover (四性) and take them into the catalog, or refuse."""
    files = _reader(source)
    if REGISTER_XML not in files:
        raise HandoverRefused([f"{REGISTER_XML}: missing from the handover"])
    records = read_register(files[REGISTER_XML])
    problems: list[str] = []
    reports = []
    for record in records:
        found: dict[str, bytes | None] = {}
        for f in record.files:
            found[f.sha256] = files.get(f"packages/{record.package_id}/{f.name}")
        report = check_package(record, _HandoverFiles(found), archive.config.scheme)
        reports.append((record, report))
        problems += [f"packages/{record.package_id}: {i.item}: {i.detail}" for i in report.failed()]
    problems += (
        [f"{i.item}: {i.detail}" for i in check_set(records) if i.outcome is Outcome.FAIL]
        if records
        else []
    )
    listed = {f"packages/{r.package_id}/{f.name}" for r in records for f in r.files}
    extra = sorted(n for n in files if n.startswith("packages/") and n not in listed)
    problems += [f"{name}: not listed in {REGISTER_XML}" for name in extra]
    with db.engine.connect() as conn:
        present = {
            row.archive_no: row.metadata_sha256
            for row in conn.execute(
                select(archive_packages.c.archive_no, archive_packages.c.metadata_sha256).where(
                    archive_packages.c.archive_no.in_([r.archive_no for r in records])
                )
            )
        }
    for r in records:
        if r.archive_no in present and present[r.archive_no] != r.metadata_sha256:
            problems.append(f"档号 {r.archive_no}: already in the catalog with other content")
    if problems:
        raise HandoverRefused(problems)
    new = [(r, report) for r, report in reports if r.archive_no not in present]
    archive.store.put_many(
        files[f"packages/{record.package_id}/{f.name}"] for record, _ in new for f in record.files
    )

    def take(uow: UnitOfWork) -> None:
        for record, report in new:
            insert_package(uow, record, "imported")
            store_report(uow, record.package_id, "import", report)

    db.perform(take, actor=actor)
    return ImportResult(len(new), len(records) - len(new), reports)
