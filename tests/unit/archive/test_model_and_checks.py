"""Retention at the year boundary, the 档号 scheme, and the usability checks of single files."""

from __future__ import annotations

import io
import zipfile
from datetime import date

import pytest
from pypdf import PdfWriter

from finoa.archive.checks import _open, check_set
from finoa.archive.model import (
    ArchiveNoScheme,
    FileRole,
    PackageFile,
    RecordKind,
    retention_for,
)
from finoa.archive.pdf import FontMissing, find_font
from finoa.archive.storage import sm3_hex


def test_retention_counts_from_the_day_after_the_fiscal_year_ends() -> None:
    last_day = retention_for(RecordKind.VOUCHER, date(2026, 12, 31).year)
    first_day_next = retention_for(RecordKind.VOUCHER, date(2027, 1, 1).year)
    assert last_day.starts == date(2027, 1, 1)
    assert last_day.until == date(2056, 12, 31)  # 30 full years: 2027 … 2056
    assert first_day_next.starts == date(2028, 1, 1)
    assert first_day_next.until == date(2057, 12, 31)
    assert retention_for(RecordKind.MONTHLY_REPORT, 2026).until == date(2036, 12, 31)
    assert retention_for(RecordKind.BANK_STATEMENT, 2026).code == "D10"
    assert retention_for(RecordKind.TAX_RETURN, 2026).years == 10
    annual = retention_for(RecordKind.ANNUAL_REPORT, 2026)
    assert (annual.code, annual.until, annual.label) == ("Y", None, "永久")
    assert retention_for(RecordKind.LEDGER, 2026).code == "D30"
    assert retention_for(RecordKind.CUSTODY_REGISTER, 2026).until is None


def test_the_archive_no_scheme_formats_and_recognises_its_numbers() -> None:
    scheme = ArchiveNoScheme("{fonds}-{year}-KJ·{period}-{retention}-{voucher_no}")
    number = scheme.format(
        fonds="F001", year=2026, period="2026-11", retention="D30", voucher_no="记-0007"
    )
    assert number == "F001-2026-KJ·11-D30-记-0007"
    assert scheme.matches(number)
    assert not scheme.matches("F001-2026-KJ·13-D30-记-0007")  # no month 13
    assert not scheme.matches("F001-2026-KJ·11-D30-记-7")
    with pytest.raises(ValueError, match="unknown field"):
        ArchiveNoScheme("{fonds}-{year}-{colour}-{voucher_no}")
    with pytest.raises(ValueError, match="voucher_no"):
        ArchiveNoScheme("{fonds}-{year}")


def test_sm3_is_the_standard_one() -> None:
    # GB/T 32905-2016, example 1: SM3("abc")
    assert sm3_hex(b"abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def file(media_type: str) -> PackageFile:
    return PackageFile("x", FileRole.INVOICE, media_type, 0, "", "")


def test_an_encrypted_pdf_is_reported_as_blocking_use() -> None:
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    assert _open(file("application/pdf"), buffer.getvalue()) == ["x: the PDF is encrypted"]


def test_an_ofd_with_non_public_compression_is_reported() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_LZMA) as container:
        container.writestr("OFD.xml", "<ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'/>")
    assert _open(file("application/ofd"), buffer.getvalue()) == [
        f"x: compression method(s) [{zipfile.ZIP_LZMA}] are not public"
    ]


def test_files_that_do_not_parse_raise() -> None:
    with pytest.raises(ValueError):
        _open(file("image/jpeg"), b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ValueError):
        _open(file("application/pdf"), b"not a pdf")
    with pytest.raises(Exception):  # noqa: B017 - whatever the XML parser raises
        _open(file("application/xml"), b"<unclosed>")


def test_a_set_without_records_has_nothing_to_number() -> None:
    assert [i.outcome.value for i in check_set([])] == ["pass", "pass"]


def test_a_configured_font_that_does_not_exist_is_named() -> None:
    with pytest.raises(FontMissing, match="archive_font: /nonexistent.ttf"):
        find_font("/nonexistent.ttf")
