"""A package built where no CJK TrueType font is installed: its PDF and what it records."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from lxml import etree
from pypdf import PdfReader
from support import invoices as build

from finoa.archive import pdf
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


def test_without_a_truetype_font_the_package_says_its_pdf_font_is_not_embedded(
    hub: Hub, archive: Archive, posted: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pdf, "FONT_CANDIDATES", ())
    posted("OA-FONT-1", invoice=build.railway_xbrl(fare="553.00"))
    summary = build_packages(hub.db, archive)
    assert len(summary.built) == 1 and summary.checks_passed == 1, summary
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
