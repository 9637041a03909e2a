"""A package built where no CJK TrueType font is installed: its PDF and what it records."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from lxml import etree
from pypdf import PdfReader
from support import invoices as build

from finoa.archive import pdf
from finoa.archive.checks import check_package
from finoa.archive.metadata import NS
from finoa.archive.model import FileRole
from finoa.archive.service import Archive, PackageQuery, build_packages, find_packages
from finoa.services.context import Hub


def pdf_format_notes(metadata: bytes) -> list[tuple[str | None, str | None]]:
    root = etree.fromstring(metadata)
    return [
        (note.get("字体嵌入"), note.text)
        for item in root.iter(f"{{{NS}}}文件")
        if item.get("角色") == FileRole.VOUCHER_PDF.value
        for note in item.iterfind(f"{{{NS}}}格式信息")
    ]


def test_without_a_truetype_font_the_package_says_its_pdf_font_is_not_embedded_and_fails(
    hub: Hub, archive: Archive, posted: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pdf, "FONT_CANDIDATES", ())
    posted("OA-FONT-1", invoice=build.railway_xbrl(fare="553.00"))
    summary = build_packages(hub.db, archive)
    # A font only named is not fit for long-term keeping: the usability check fails on it.
    assert len(summary.built) == 1 and summary.checks_failed == 1, summary
    with hub.db.engine.connect() as conn:
        (record,) = find_packages(conn, PackageQuery())
    voucher_pdf, metadata = record.file(FileRole.VOUCHER_PDF), record.file(FileRole.METADATA)
    assert voucher_pdf is not None and metadata is not None
    ((embedded, detail),) = pdf_format_notes(archive.store.read(metadata.sha256))
    assert embedded == "否"
    assert detail is not None and "STSong-Light" in detail and "not embedded" in detail
    text = PdfReader(io.BytesIO(archive.store.read(voucher_pdf.sha256))).pages[0].extract_text()
    assert record.archive_no in text.replace("\n", "")
    assert record.applicant_name and record.applicant_name in text.replace("\n", "")
    report = check_package(record, archive.store, archive.config.scheme)
    (failed,) = report.failed()
    assert failed.item == "usability.fonts_embedded"
    named = failed.detail.split("; ")
    assert f"{voucher_pdf.name}: font STSong-Light is not embedded" in named
    assert all(n.startswith(f"{voucher_pdf.name}: font ") for n in named)


def test_with_a_truetype_font_every_pdf_font_is_embedded(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    if pdf.find_font() is None:
        pytest.fail("a CJK TrueType font is needed here (fonts-wqy-zenhei)")
    posted("OA-FONT-2", invoice=build.railway_xbrl(fare="553.00"))
    summary = build_packages(hub.db, archive)
    assert summary.checks_passed == 1, summary
    with hub.db.engine.connect() as conn:
        (record,) = find_packages(conn, PackageQuery())
    report = check_package(record, archive.store, archive.config.scheme)
    (item,) = [i for i in report.items if i.item == "usability.fonts_embedded"]
    assert item.outcome.value == "pass" and item.detail == "every font of 1 PDF(s) embedded"
