"""Reading invoices from the files people upload: every shape, and bad files refused."""

from __future__ import annotations

import io
import zipfile
from datetime import date

import pytest
from support import invoices as build

from finoa.domain.errors import InvalidInput
from finoa.invoices.model import InvoiceKind, SourceFormat
from finoa.invoices.parsing import (
    MAX_XML_BYTES,
    InvoiceFileError,
    UnsupportedFileType,
    read_invoice,
)


def test_einvoice_xml_is_read_with_items_and_hyphenated_total() -> None:
    spec = build.EInvoiceSpec(
        items=(
            ("*住宿服务*住宿费", "400.00", "6%", "24.00"),
            ("*餐饮服务*餐费", "100.00", "6%", "6.00"),
        )
    )
    read = read_invoice(build.einvoice_xml(spec))
    invoice = read.invoice
    assert read.source_format is SourceFormat.EINVOICE_XML and read.media_type == "application/xml"
    assert invoice is not None
    assert invoice.number == spec.number
    assert invoice.kind is InvoiceKind.SPECIAL_VAT
    assert invoice.issue_date == date(2025, 11, 3)
    assert (invoice.amount_fen, invoice.tax_fen, invoice.total_fen) == (50000, 3000, 53000)
    assert [item.name for item in invoice.items] == ["*住宿服务*住宿费", "*餐饮服务*餐费"]
    assert invoice.buyer_tax_id == build.COMPANY_TAX_ID


def test_general_invoice_label() -> None:
    invoice = read_invoice(build.einvoice_xml(build.EInvoiceSpec(label_code="02"))).invoice
    assert invoice is not None and invoice.kind is InvoiceKind.GENERAL_VAT


def test_mof_xbrl_einv_rai_and_atr() -> None:
    einv = read_invoice(build.einv_xbrl()).invoice
    assert einv is not None and einv.taxonomy == "einv" and einv.total_fen == 10900
    rail = read_invoice(build.railway_xbrl(fare="553.00")).invoice
    assert rail is not None and rail.kind is InvoiceKind.RAILWAY
    assert (rail.total_fen, rail.passenger, rail.issue_date) == (55300, "李四", date(2025, 11, 2))
    air = read_invoice(build.air_xbrl(fare="1200.00", fuel="60.00", fund="50.00")).invoice
    assert air is not None and air.kind is InvoiceKind.AIR
    assert (air.fare_fen, air.fuel_surcharge_fen, air.total_fen) == (120000, 6000, 131000)


def test_ofd_attachment_is_read_and_bytes_are_untouched() -> None:
    xml = build.railway_xbrl()
    data = build.ofd(xml, entry="Doc_0/Attachs/rai_issuer.xml")
    before = bytes(data)
    read = read_invoice(data)
    assert (
        read.source_format is SourceFormat.OFD and read.data_path == "Doc_0/Attachs/rai_issuer.xml"
    )
    assert read.invoice is not None and read.invoice.kind is InvoiceKind.RAILWAY
    assert data == before


def test_ofd_tags_entry_is_read() -> None:
    read = read_invoice(build.ofd(build.einvoice_xml(), entry="Doc_0/Tags/invoice.xml"))
    assert read.invoice is not None and read.data_path == "Doc_0/Tags/invoice.xml"


def test_pdf_with_embedded_xml() -> None:
    read = read_invoice(build.pdf(build.einvoice_xml(), name="fapiao.xml"))
    assert read.source_format is SourceFormat.PDF and read.data_path == "fapiao.xml"
    assert read.invoice is not None and read.invoice.total_fen == 53000


def test_pdf_and_ofd_without_data_need_manual_entry() -> None:
    pdf = read_invoice(build.pdf(None))
    assert pdf.invoice is None and "no embedded invoice XML" in pdf.manual_entry_reason
    ofd = read_invoice(build.ofd(None))
    assert ofd.invoice is None and "Attachs/ or Tags/" in ofd.manual_entry_reason


def test_pdf_with_an_unrelated_xml_attachment_needs_manual_entry() -> None:
    read = read_invoice(build.pdf(b"<?xml version='1.0'?><note>hello</note>", name="note.xml"))
    assert read.invoice is None and read.manual_entry_reason


@pytest.mark.parametrize(
    "data",
    [b"GIF89a\x01\x00", b"\x89PNG\r\n\x1a\n", b"hello world", b"\x00\x01\x02"],
    ids=["gif", "png", "text", "binary"],
)
def test_other_file_types_are_refused_as_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedFileType) as caught:
        read_invoice(data)
    assert caught.value.field == "file" and caught.value.status == 415


def test_empty_file_is_refused() -> None:
    with pytest.raises(InvoiceFileError, match="empty"):
        read_invoice(b"")


def test_entity_expansion_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE EInvoice [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><EInvoice>&b;</EInvoice>'
    )
    with pytest.raises(InvoiceFileError, match="document type"):
        read_invoice(bomb)


def test_external_entities_are_never_fetched(tmp_path: pytest.TempPathFactory) -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE EInvoice [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<EInvoice>&x;</EInvoice>"
    )
    with pytest.raises(InvoiceFileError) as caught:
        read_invoice(xxe)
    assert "root" not in str(caught.value)  # refused for the DOCTYPE, nothing was read


def test_missing_element_is_named() -> None:
    xml = build.einvoice_xml().replace(b"<TotalTaxAm>30.00</TotalTaxAm>", b"")
    with pytest.raises(InvoiceFileError) as caught:
        read_invoice(xml)
    assert caught.value.field == "file.TotalTaxAm"


def test_malformed_amount_is_named() -> None:
    xml = build.einvoice_xml().replace(
        b"<TotalTax-includedAmount>530.00<", b"<TotalTax-includedAmount>5.3e2<"
    )
    with pytest.raises(InvalidInput) as caught:
        read_invoice(xml)
    assert caught.value.field == "file.TotalTax-includedAmount"


def test_broken_xml_and_foreign_roots_are_refused() -> None:
    with pytest.raises(InvoiceFileError, match="well-formed"):
        read_invoice(b"<EInvoice><Header>")
    with pytest.raises(InvoiceFileError, match="neither EInvoice nor an XBRL"):
        read_invoice(b"<Invoice/>")


def test_xbrl_without_a_mof_taxonomy_is_refused() -> None:
    xml = b'<xbrli:xbrl xmlns:xbrli="http://www.xbrl.org/2003/instance"><a/></xbrli:xbrl>'
    with pytest.raises(InvoiceFileError, match="one MoF taxonomy"):
        read_invoice(xml)


def test_unknown_mof_taxonomy_is_refused() -> None:
    xml = build.einv_xbrl().replace(b"2023-12-31/einv", b"2023-12-31/bker")
    with pytest.raises(InvoiceFileError, match="bker"):
        read_invoice(xml)


def _zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return out.getvalue()


def test_zip_bomb_entry_is_refused_without_inflating_it() -> None:
    bomb = _zip({"OFD.xml": build.OFD_XML, "Doc_0/Attachs/big.xml": b" " * (MAX_XML_BYTES + 1)})
    assert len(bomb) < 20_000
    with pytest.raises(InvoiceFileError) as caught:
        read_invoice(bomb)
    assert caught.value.field == "file:Doc_0/Attachs/big.xml"


def test_zip_that_is_not_ofd_and_broken_zip_are_refused() -> None:
    with pytest.raises(InvoiceFileError, match="no OFD.xml"):
        read_invoice(_zip({"word/document.xml": b"<w/>"}))
    with pytest.raises(InvoiceFileError, match="not a readable OFD"):
        read_invoice(build.ofd(build.einvoice_xml())[:200])


def test_ofd_with_too_many_entries_is_refused() -> None:
    entries = {"OFD.xml": build.OFD_XML} | {f"Doc_0/Res/{i}.bin": b"" for i in range(2_001)}
    with pytest.raises(InvoiceFileError, match="more than"):
        read_invoice(_zip(entries, zipfile.ZIP_STORED))


def test_broken_pdf_is_refused() -> None:
    with pytest.raises(InvoiceFileError, match="not a readable PDF"):
        read_invoice(b"%PDF-1.7\n1 0 obj garbage")


def test_invoice_xml_inside_a_pdf_is_parsed_as_safely() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE EInvoice [<!ENTITY a "a">]><EInvoice>&a;</EInvoice>'
    with pytest.raises(InvoiceFileError) as caught:
        read_invoice(build.pdf(bomb, name="evil.xml"))
    assert caught.value.field == "file:evil.xml"
