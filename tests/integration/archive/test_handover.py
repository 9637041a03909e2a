"""Handover: export with a 移交清册, import into another database after the 四性检测 again, and
a tampered handover refused naming the file."""

from __future__ import annotations

import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path

import pytest
from lxml import etree
from openpyxl import load_workbook
from sqlalchemy import func, select
from support import invoices as build
from support.databases import pg_admin, pg_url

from finoa.archive.handover import HandoverRefused, export_handover, import_handover
from finoa.archive.service import (
    Archive,
    PackageQuery,
    build_packages,
    check_archive,
    find_packages,
)
from finoa.config import load_settings
from finoa.services.context import Hub
from finoa.store.db import upgrade
from finoa.store.tables import archive_access_log, archive_packages
from finoa.store.uow import Database


@pytest.fixture
def receiver(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Database, Archive]]:
    """The receiving archive: another database of the same kind, its own file store."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'receiver.db'}"
        upgrade(url)
        name = None
    else:
        name = f"finoa_r_{uuid.uuid4().hex[:12]}"
        pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{request.getfixturevalue("pg_template")}"')
        url = pg_url(name)
    settings = load_settings(data_dir=tmp_path / "receiver", database_url=url)
    db = Database.connect(url)
    yield db, Archive.from_settings(settings)
    db.dispose()
    if name is not None:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def packages_in(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(archive_packages)).scalar_one())


@pytest.fixture
def handover(hub: Hub, archive: Archive, posted: Callable[..., str], tmp_path: Path) -> Path:
    posted("OA-HO-1", invoice=build.railway_xbrl())
    posted("OA-HO-2", invoice=build.einv_xbrl(), amount="1060.00")
    assert len(build_packages(hub.db, archive).built) == 2
    destination = tmp_path / "handover"
    result = export_handover(hub.db, archive, destination, PackageQuery())
    assert (result.packages, result.files) == (2, 14)
    return destination


def test_export_then_import_round_trip(
    hub: Hub, handover: Path, receiver: tuple[Database, Archive]
) -> None:
    db, archive = receiver
    sheet = load_workbook(handover / "移交清册.xlsx").active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:2] == ("序号", "档号") and len(rows) == 3
    with hub.db.engine.connect() as conn:
        assert (
            int(conn.execute(select(func.count()).select_from(archive_access_log)).scalar_one())
            == 2
        )
    result = import_handover(db, archive, handover)
    assert (result.imported, result.already_present) == (2, 0)
    assert all(report.passed for _, report in result.reports)
    with db.engine.connect() as conn:
        imported = find_packages(conn, PackageQuery())
    assert sorted(r.archive_no for r in imported) == sorted(str(row[1]) for row in rows[1:])
    assert check_archive(db, archive, PackageQuery(period=imported[0].period)).passed
    with db.engine.connect() as conn:
        (found,) = find_packages(conn, PackageQuery(invoice_number=imported[1].invoice_numbers[0]))
    assert found.archive_no == imported[1].archive_no
    again = import_handover(db, archive, handover)  # the same handover again changes nothing
    assert (again.imported, again.already_present) == (0, 2)


def test_a_zip_handover_imports_too(
    hub: Hub, archive: Archive, handover: Path, receiver: tuple[Database, Archive], tmp_path: Path
) -> None:
    target = tmp_path / "handover.zip"
    export_handover(hub.db, archive, target, PackageQuery(), as_zip=True)
    with zipfile.ZipFile(target) as container:
        assert "handover.xml" in container.namelist()
    db, receiving = receiver
    assert import_handover(db, receiving, target).imported == 2


def test_a_tampered_handover_is_refused_naming_the_file(
    handover: Path, receiver: tuple[Database, Archive]
) -> None:
    db, archive = receiver
    (package,) = sorted((handover / "packages").iterdir())[:1]
    target = package / "voucher.pdf"
    data = bytearray(target.read_bytes())
    data[200] ^= 0x20
    target.write_bytes(bytes(data))
    with pytest.raises(HandoverRefused) as refused:
        import_handover(db, archive, handover)
    assert refused.value.problems[0].startswith(
        f"packages/{package.name}: authenticity.fixity: voucher.pdf: SHA-256 differs"
    )
    assert packages_in(db) == 0


def test_a_handover_with_a_file_too_many_or_missing_is_refused(
    handover: Path, receiver: tuple[Database, Archive]
) -> None:
    db, archive = receiver
    package = sorted((handover / "packages").iterdir())[0]
    (package / "extra.exe").write_bytes(b"MZ")
    with pytest.raises(HandoverRefused) as refused:
        import_handover(db, archive, handover)
    assert refused.value.problems == [
        f"packages/{package.name}/extra.exe: not listed in handover.xml"
    ]
    (package / "extra.exe").unlink()
    (package / "claim.json").unlink()
    with pytest.raises(HandoverRefused) as refused:
        import_handover(db, archive, handover)
    assert (
        f"packages/{package.name}: integrity.content: claim.json: missing" in refused.value.problems
    )
    assert packages_in(db) == 0


def test_a_duplicate_archive_no_in_a_handover_is_refused(
    handover: Path, receiver: tuple[Database, Archive]
) -> None:
    """The same package listed twice under another id: each copy is intact, the set is not."""
    db, archive = receiver
    register = handover / "handover.xml"
    root = etree.fromstring(register.read_bytes())
    first = root.find("{https://finoa.dev/archive/handover/v1}档案")
    assert first is not None
    copy = deepcopy(first)
    copy.find("{https://finoa.dev/archive/handover/v1}package_id").text = "AP-COPY"  # type: ignore[union-attr]
    root.append(copy)
    register.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    original = first.findtext("{https://finoa.dev/archive/handover/v1}package_id")
    shutil.copytree(handover / "packages" / str(original), handover / "packages" / "AP-COPY")
    archive_no = first.findtext("{https://finoa.dev/archive/handover/v1}archive_no")
    with pytest.raises(HandoverRefused) as refused:
        import_handover(db, archive, handover)
    assert refused.value.problems == [
        f"authenticity.archive_no_unique: 档号 {archive_no} appears 2 times"
    ]
    assert packages_in(db) == 0
