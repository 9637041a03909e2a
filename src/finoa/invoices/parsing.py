"""Reading e-invoices from the files people upload.

Four shapes are read: the tax platform's 数电票 XML (root `EInvoice`), MoF e-voucher
accounting data in XBRL (taxonomies `einv`, `rai` for railway tickets, `atr` for air
itineraries), OFD containers carrying either in `Attachs/` or `Tags/`, and PDFs carrying
either as an embedded file. A PDF or OFD without such data (a scan, a printout) is not
refused: it is read as needing manual entry, with the reason.

Everything here is defensive: XML is parsed without DTDs, entities or network access and a
document type declaration is refused; containers are read entry by entry with bounded sizes
and entry counts; nothing is extracted to disk. The bytes passed in are never changed.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from datetime import date
from typing import Any

from lxml import etree

from finoa.domain.errors import InvalidInput
from finoa.domain.money import yuan_to_fen
from finoa.invoices.model import Invoice, InvoiceItem, InvoiceKind, ReadInvoice, SourceFormat

MAX_XML_BYTES = 2 * 1024 * 1024  # an invoice's data is a few kilobytes
MAX_CONTAINER_ENTRIES = 2_000  # OFD entries: pages, fonts, images, signatures …
MAX_PDF_ATTACHMENTS = 50
XBRL_INSTANCE = "http://www.xbrl.org/2003/instance"
MOF_TAXONOMY = "http://xbrl.mof.gov.cn/taxonomy/"
OFD_ENTRY = re.compile(r"Doc_\d+/(?:Attachs|Tags)/[^/]+\.xml", re.IGNORECASE)
XML_MEDIA_TYPE = "application/xml"
OFD_MEDIA_TYPE = "application/ofd"
PDF_MEDIA_TYPE = "application/pdf"
FILE = "file"


class InvoiceFileError(InvalidInput):
    """The uploaded file cannot be read as an invoice; the field names the part at fault."""

    title = "Unreadable invoice"


class UnsupportedFileType(InvoiceFileError):
    """Neither XML, OFD nor PDF."""

    status = 415
    title = "Unsupported invoice file type"


def read_invoice(data: bytes) -> ReadInvoice:
    """Read an uploaded invoice file: the kind is told by its bytes, not by its name."""
    if not data:
        raise InvoiceFileError(FILE, "is empty")
    if data.startswith(b"%PDF-"):
        return _read_pdf(data)
    if data.startswith(b"PK\x03\x04"):
        return _read_ofd(data)
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        invoice = full_invoice(data, FILE)
        fmt = SourceFormat.EINVOICE_XML if invoice.taxonomy == "EInvoice" else SourceFormat.XBRL
        return ReadInvoice(fmt, XML_MEDIA_TYPE, invoice)
    raise UnsupportedFileType(FILE, "is not an XML, OFD or PDF invoice (judged by its content)")


# -- XML ----------------------------------------------------------------------------------


def _xml_root(data: bytes, where: str) -> Any:
    """Parse XML safely: no DTD, no entities, no network; a DOCTYPE is refused."""
    if len(data) > MAX_XML_BYTES:
        raise InvoiceFileError(where, f"XML larger than {MAX_XML_BYTES} bytes")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise InvoiceFileError(where, f"is not well-formed XML: {exc}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise InvoiceFileError(where, "declares a document type; invoice XML must not")
    return root


def _local(element: Any) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _children(element: Any, name: str) -> Iterator[Any]:
    for child in element:
        if _local(child) == name:
            yield child


def _find(element: Any, path: str) -> Any:
    """The element at a slash-separated path of local names, or None."""
    current = element
    for name in path.split("/"):
        current = next(_children(current, name), None)
        if current is None:
            return None
    return current


def is_invoice_xml(root: Any) -> bool:
    return _local(root) == "EInvoice" or (
        _local(root) == "xbrl" and etree.QName(root).namespace == XBRL_INSTANCE
    )


def parse_invoice_xml(data: bytes, where: str) -> tuple[Invoice, Any]:
    """Parse 数电票 XML or MoF XBRL data; `where` names the file (or entry) in errors."""
    root = _xml_root(data, where)
    if _local(root) == "EInvoice":
        return _einvoice(_Facts(where, lambda path: _text(_find(root, path)))), root
    if _local(root) == "xbrl" and etree.QName(root).namespace == XBRL_INSTANCE:
        return _xbrl(root, where), root
    raise InvoiceFileError(
        where, f"root element {_local(root)!r} is neither EInvoice nor an XBRL instance"
    )


def _text(element: Any) -> str | None:
    if element is None:
        return None
    return "".join(element.itertext()).strip()


class _Facts:
    """Named values of one invoice, read through `lookup`; errors name the element."""

    def __init__(self, where: str, lookup: Any) -> None:
        self.where = where
        self.lookup = lookup

    def field(self, path: str) -> str:
        return f"{self.where}.{path.rsplit('/', 1)[-1]}"

    def text(self, path: str, *, required: bool = True) -> str:
        value = self.lookup(path)
        if value is None or value == "":
            if required:
                raise InvoiceFileError(self.field(path), "is missing")
            return ""
        return str(value)

    def first(self, *paths: str) -> str:
        for path in paths:
            value = self.text(path, required=False)
            if value:
                return value
        raise InvoiceFileError(self.field(paths[0]), "is missing")

    def fen(self, path: str, *, required: bool = True) -> int:
        value = self.text(path, required=required)
        if not value:
            return 0
        return yuan_to_fen(value, field=self.field(path))

    def day(self, *paths: str) -> date:
        value = self.first(*paths)
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            raise InvoiceFileError(self.field(paths[0]), f"{value!r} is not a date") from None


# Where the 数电票 XML keeps each group of facts; MoF einv XBRL has them all at the top.
EINVOICE_GROUPS = {
    "label": "Header/InherentLabel/GeneralOrSpecialVAT/",
    "supervision": "TaxSupervisionInfo/",
    "seller": "EInvoiceData/SellerInformation/",
    "buyer": "EInvoiceData/BuyerInformation/",
    "basic": "EInvoiceData/BasicInformation/",
}


def _einvoice(facts: _Facts, taxonomy: str = "EInvoice") -> Invoice:
    """A VAT invoice (专票 or 普票) from 数电票 XML, or from einv XBRL facts."""
    at = EINVOICE_GROUPS if taxonomy == "EInvoice" else dict.fromkeys(EINVOICE_GROUPS, "")
    label = facts.text(at["label"] + "LabelCode", required=False)
    return Invoice(
        number=facts.text(at["supervision"] + "InvoiceNumber"),
        issue_date=facts.day(at["supervision"] + "IssueTime", at["basic"] + "RequestTime"),
        kind=InvoiceKind.SPECIAL_VAT if label == "01" else InvoiceKind.GENERAL_VAT,
        seller_tax_id=facts.text(at["seller"] + "SellerIdNum"),
        seller_name=facts.text(at["seller"] + "SellerName"),
        buyer_tax_id=facts.text(at["buyer"] + "BuyerIdNum"),
        buyer_name=facts.text(at["buyer"] + "BuyerName"),
        amount_fen=facts.fen(at["basic"] + "TotalAmWithoutTax"),
        tax_fen=facts.fen(at["basic"] + "TotalTaxAm"),
        total_fen=facts.fen(at["basic"] + "TotalTax-includedAmount"),
        taxonomy=taxonomy,
    )


def _items(elements: Iterator[Any], where: str) -> tuple[InvoiceItem, ...]:
    """Item lines (项目): each with ItemName, Amount, TaxRate and ComTaxAm."""
    items = []
    for index, element in enumerate(elements):
        facts = _Facts(f"{where}[{index}]", lambda p, e=element: _text(_find(e, p)))
        items.append(
            InvoiceItem(
                name=facts.text("ItemName"),
                amount_fen=facts.fen("Amount"),
                tax_fen=facts.fen("ComTaxAm", required=False),
                tax_rate=facts.text("TaxRate", required=False),
            )
        )
    return tuple(items)


def einvoice_items(root: Any, where: str) -> tuple[InvoiceItem, ...]:
    """The item lines (IssuItemInformation) of a 数电票 XML."""
    data = _find(root, "EInvoiceData")
    if data is None:
        return ()
    return _items(_children(data, "IssuItemInformation"), f"{where}.IssuItemInformation")


def _xbrl(root: Any, where: str) -> Invoice:
    taxonomies = {
        etree.QName(el).namespace
        for el in root.iter()
        if isinstance(el.tag, str) and (etree.QName(el).namespace or "").startswith(MOF_TAXONOMY)
    }
    if len(taxonomies) != 1:
        raise InvoiceFileError(
            where,
            f"an XBRL instance with facts of one MoF taxonomy is expected, found {len(taxonomies)}",
        )
    namespace = taxonomies.pop()
    prefix = namespace.rstrip("/").rsplit("/", 1)[-1]
    values: dict[str, str] = {}
    for element in root.iter(f"{{{namespace}}}*"):
        name = _local(element)
        if len(element) == 0 and name not in values:
            values[name] = (element.text or "").strip()
    facts = _Facts(where, values.get)
    if prefix == "einv":
        invoice = _einvoice(facts, "einv")
    elif prefix == "rai":
        invoice = _railway(facts)
    elif prefix == "atr":
        invoice = _air(facts)
    else:
        raise InvoiceFileError(where, f"the MoF taxonomy {prefix!r} is not an invoice finoa reads")
    items = _xbrl_items(root, namespace, where)
    return Invoice(**{**_as_dict(invoice), "items": items})


def _as_dict(invoice: Invoice) -> dict[str, Any]:
    return {name: getattr(invoice, name) for name in Invoice.__slots__}


def _xbrl_items(root: Any, namespace: str, where: str) -> tuple[InvoiceItem, ...]:
    tuples = root.iter(f"{{{namespace}}}IssuItemInformationTuple")
    return _items(tuples, f"{where}.IssuItemInformationTuple")


def _ticket(
    facts: _Facts,
    kind: InvoiceKind,
    number: str,
    total: int,
    tax: int,
    fare: int,
    fuel: int = 0,
) -> Invoice:
    """A passenger ticket: its face value is the total, tax included."""
    return Invoice(
        number=facts.text(number),
        issue_date=facts.day("DateOfIssue"),
        kind=kind,
        seller_tax_id=facts.text("SellerIdNum", required=False),
        seller_name=facts.text("SellerName", required=False),
        buyer_tax_id=facts.text("BuyerIdNum"),
        buyer_name=facts.text("BuyerName", required=False),
        amount_fen=total - tax,
        tax_fen=tax,
        total_fen=total,
        fare_fen=fare,
        fuel_surcharge_fen=fuel,
        passenger=facts.text("PassengerName", required=False),
        taxonomy={InvoiceKind.RAILWAY: "rai", InvoiceKind.AIR: "atr"}[kind],
    )


def _railway(facts: _Facts) -> Invoice:
    fare = facts.fen("Fare")
    tax = facts.fen("TaxAmount", required=False)
    return _ticket(
        facts, InvoiceKind.RAILWAY, "ElectronicInvoiceRailwayETicketNumber", fare, tax, fare
    )


def _air(facts: _Facts) -> Invoice:
    fare = facts.fen("Fare")
    fuel = facts.fen("FuelSurcharge", required=False)
    fund = facts.fen("CivilAviationDevelopmentFund", required=False)
    tax = facts.fen("TaxAmount", required=False)
    total = facts.fen("TotalAmount", required=False) or fare + fuel + fund
    return _ticket(facts, InvoiceKind.AIR, "InvoiceNumber", total, tax, fare, fuel)


def full_invoice(data: bytes, where: str) -> Invoice:
    """Parse invoice XML with its item lines (数电票 XML keeps them outside the totals)."""
    invoice, root = parse_invoice_xml(data, where)
    if invoice.taxonomy == "EInvoice":
        return Invoice(**{**_as_dict(invoice), "items": einvoice_items(root, where)})
    return invoice


# -- containers -----------------------------------------------------------------------------


def _candidate(data: bytes, where: str) -> Invoice | None:
    """The invoice in an embedded XML file, or None when that XML is something else."""
    root = _xml_root(data, where)
    if not is_invoice_xml(root):
        return None
    return full_invoice(data, where)


def _read_ofd(data: bytes) -> ReadInvoice:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvoiceFileError(FILE, f"is not a readable OFD (zip) container: {exc}") from None
    if len(entries) > MAX_CONTAINER_ENTRIES:
        raise InvoiceFileError(FILE, f"OFD container has more than {MAX_CONTAINER_ENTRIES} entries")
    names = {info.filename: info for info in entries}
    if "OFD.xml" not in names:
        raise InvoiceFileError(FILE, "is a zip file but not an OFD document (no OFD.xml)")
    ofd_root = _xml_root(_entry(archive, names["OFD.xml"]), "file:OFD.xml")
    if _local(ofd_root) != "OFD":
        raise InvoiceFileError("file:OFD.xml", "root element is not OFD")
    for info in entries:
        if not OFD_ENTRY.fullmatch(info.filename):
            continue
        where = f"file:{info.filename}"
        invoice = _candidate(_entry(archive, info), where)
        if invoice is not None:
            return ReadInvoice(SourceFormat.OFD, OFD_MEDIA_TYPE, invoice, data_path=info.filename)
    return ReadInvoice(
        SourceFormat.OFD,
        OFD_MEDIA_TYPE,
        manual_entry_reason="the OFD carries no invoice XML in Attachs/ or Tags/",
    )


def _entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One container entry, read with a bound whatever size it declares."""
    where = f"file:{info.filename}"
    if info.flag_bits & 0x1:
        raise InvoiceFileError(where, "is encrypted")
    if info.file_size > MAX_XML_BYTES:
        raise InvoiceFileError(where, f"larger than {MAX_XML_BYTES} bytes")
    try:
        with archive.open(info) as stream:
            content = stream.read(MAX_XML_BYTES + 1)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        raise InvoiceFileError(where, f"cannot be read: {exc}") from None
    if len(content) > MAX_XML_BYTES:
        raise InvoiceFileError(where, f"larger than {MAX_XML_BYTES} bytes")
    return content


def _read_pdf(data: bytes) -> ReadInvoice:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return ReadInvoice(
                SourceFormat.PDF,
                PDF_MEDIA_TYPE,
                manual_entry_reason="the PDF is encrypted, its attachments cannot be read",
            )
        attachments = reader.attachments
        found = [
            (name, content)
            for name in list(attachments)[:MAX_PDF_ATTACHMENTS]
            if name.lower().endswith(".xml")
            for content in attachments[name]
        ]
        _ = len(reader.pages)  # a PDF whose page tree is broken is not an invoice printout
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise InvoiceFileError(FILE, f"is not a readable PDF: {exc}") from None
    for name, content in found:
        invoice = _candidate(content, f"file:{name}")
        if invoice is not None:
            return ReadInvoice(SourceFormat.PDF, PDF_MEDIA_TYPE, invoice, data_path=name)
    return ReadInvoice(
        SourceFormat.PDF,
        PDF_MEDIA_TYPE,
        manual_entry_reason="the PDF has no embedded invoice XML (a printout or a scan)",
    )
