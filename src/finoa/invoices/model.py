"""What finoa knows of an invoice once it is read: the facts on its face, in integer fen."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


class InvoiceKind(StrEnum):
    """The kinds of voucher that decide how input VAT is deducted."""

    SPECIAL_VAT = "special_vat"  # 增值税专用发票 (数电票 LabelCode 01)
    GENERAL_VAT = "general_vat"  # 普通发票 (数电票 LabelCode 02)
    RAILWAY = "railway"  # 铁路电子客票
    AIR = "air"  # 航空运输电子客票行程单
    ROAD_WATER = "road_water"  # 公路、水路等其他客票


class SourceFormat(StrEnum):
    """What the uploaded file was and where its data came from."""

    EINVOICE_XML = "einvoice_xml"  # the tax platform's <EInvoice> XML
    XBRL = "xbrl"  # MoF e-voucher accounting data (einv, rai, atr)
    OFD = "ofd"  # an OFD container carrying one of the above
    PDF = "pdf"  # a PDF carrying one of the above as an embedded file


@dataclass(frozen=True, slots=True)
class InvoiceItem:
    """One line of the invoice (项目)."""

    name: str
    amount_fen: int
    tax_fen: int
    tax_rate: str = ""


@dataclass(frozen=True, slots=True)
class Invoice:
    """An invoice as read from its structured data.

    `amount_fen` is 金额 (without tax), `tax_fen` 税额 and `total_fen` 价税合计. Tickets
    (rail, air, road/water) state a face value: `total_fen` is 票面金额, and for air tickets
    `fare_fen` and `fuel_surcharge_fen` are kept apart because only they carry VAT.
    """

    number: str
    issue_date: date
    kind: InvoiceKind
    seller_tax_id: str
    seller_name: str
    buyer_tax_id: str
    buyer_name: str
    amount_fen: int
    tax_fen: int
    total_fen: int
    items: tuple[InvoiceItem, ...] = ()
    fare_fen: int = 0
    fuel_surcharge_fen: int = 0
    passenger: str = ""
    check_code: str = ""
    taxonomy: str = ""  # the XBRL taxonomy prefix (einv, rai, atr) or "EInvoice"


@dataclass(frozen=True, slots=True)
class ReadInvoice:
    """The result of reading an uploaded file: the invoice, or why it needs manual entry.

    `media_type` is what the bytes are (sniffed, not what the sender claimed); `data_path`
    names where the structured data was found inside a container (an OFD entry, a PDF
    attachment), empty for a bare XML file.
    """

    source_format: SourceFormat
    media_type: str
    invoice: Invoice | None = None
    manual_entry_reason: str = ""
    data_path: str = ""
    notes: tuple[str, ...] = field(default=())
