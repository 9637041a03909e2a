"""Realistic e-invoices built by the tests: 数电票 XML, MoF XBRL (einv, rai, atr), OFD
containers and PDFs carrying them as embedded files."""

from __future__ import annotations

import io
import itertools
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal

from pypdf import PdfWriter

from finoa.invoices.validation import credit_code_check_char


def credit_code(first17: str) -> str:
    return first17 + credit_code_check_char(first17)


COMPANY_TAX_ID = credit_code("91310000MA1FL8XQ3")  # the buyer: the sample company
OTHER_TAX_ID = credit_code("91440300MA5G0E2K7")
SELLER_TAX_ID = credit_code("91310115MA1H9A2B4")
_SEQUENCE = itertools.count(1)


def invoice_number(year: int = 25, region: str = "31", channel: str = "2") -> str:
    """A fresh, well-formed 20-digit number."""
    return f"{year:02d}{region}{channel}{next(_SEQUENCE) + 10**8:015d}"


@dataclass
class EInvoiceSpec:
    number: str = field(default_factory=invoice_number)
    issue_time: str = "2025-11-03 10:22:11"
    label_code: str = "01"  # 01 专票, 02 普票
    buyer_tax_id: str = COMPANY_TAX_ID
    items: tuple[tuple[str, str, str, str], ...] = (("*住宿服务*住宿费", "500.00", "6%", "30.00"),)
    amount: str | None = None
    tax: str | None = None
    total: str | None = None

    def totals(self) -> tuple[str, str, str]:
        amount = sum(Decimal(i[1]) for i in self.items)
        tax = sum(Decimal(i[3]) for i in self.items)
        return (
            self.amount or f"{amount:.2f}",
            self.tax or f"{tax:.2f}",
            self.total or f"{amount + tax:.2f}",
        )


def einvoice_xml(spec: EInvoiceSpec | None = None) -> bytes:
    """The tax platform's 数电票 XML (root EInvoice), laid out as issued."""
    spec = spec or EInvoiceSpec()
    amount, tax, total = spec.totals()
    items = "".join(
        f"<IssuItemInformation><ItemName>{name}</ItemName><SpecMod></SpecMod>"
        f"<MeaUnits>天</MeaUnits><Quantity>1</Quantity><UnPrice>{amt}</UnPrice>"
        f"<Amount>{amt}</Amount><TaxRate>{rate}</TaxRate><ComTaxAm>{t}</ComTaxAm>"
        "</IssuItemInformation>"
        for name, amt, rate, t in spec.items
    )
    label = "增值税专用发票" if spec.label_code == "01" else "普通发票"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<EInvoice>
  <Header>
    <EIid>{spec.number}</EIid>
    <EInvoiceTag>SWEI3100</EInvoiceTag>
    <Version>0.1</Version>
    <InherentLabel>
      <EInvoiceType><EInvoiceTypeCode>{spec.label_code}</EInvoiceTypeCode></EInvoiceType>
      <GeneralOrSpecialVAT><LabelCode>{spec.label_code}</LabelCode><LabelName>{label}</LabelName></GeneralOrSpecialVAT>
    </InherentLabel>
  </Header>
  <EInvoiceData>
    <SellerInformation>
      <SellerIdNum>{SELLER_TAX_ID}</SellerIdNum>
      <SellerName>上海浦江酒店管理有限公司</SellerName>
      <SellerAddr>上海市浦东新区世纪大道100号</SellerAddr>
      <SellerTelNum>021-50000000</SellerTelNum>
    </SellerInformation>
    <BuyerInformation>
      <BuyerIdNum>{spec.buyer_tax_id}</BuyerIdNum>
      <BuyerName>示例科技有限公司</BuyerName>
    </BuyerInformation>
    <BasicInformation>
      <TotalAmWithoutTax>{amount}</TotalAmWithoutTax>
      <TotalTaxAm>{tax}</TotalTaxAm>
      <TotalTax-includedAmount>{total}</TotalTax-includedAmount>
      <TotalTax-includedAmountInChinese>（略）</TotalTax-includedAmountInChinese>
      <Drawer>张三</Drawer>
      <RequestTime>{spec.issue_time}</RequestTime>
    </BasicInformation>
    {items}
  </EInvoiceData>
  <TaxSupervisionInfo>
    <InvoiceNumber>{spec.number}</InvoiceNumber>
    <IssueTime>{spec.issue_time}</IssueTime>
    <TaxBureauCode>13100000000</TaxBureauCode>
  </TaxSupervisionInfo>
</EInvoice>
""".encode()


def _xbrl(prefix: str, version: str, facts: dict[str, str]) -> bytes:
    ns = f"http://xbrl.mof.gov.cn/taxonomy/{version}/{prefix}"
    body = "\n".join(
        f'  <{prefix}:{name} contextRef="ctx">{value}</{prefix}:{name}>'
        for name, value in facts.items()
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<xbrli:xbrl xmlns:xbrli="http://www.xbrl.org/2003/instance"
    xmlns:link="http://www.xbrl.org/2003/linkbase"
    xmlns:xlink="http://www.w3.org/1999/xlink"
    xmlns:iso4217="http://www.xbrl.org/2003/iso4217"
    xmlns:{prefix}="{ns}">
  <link:schemaRef xlink:type="simple" xlink:href="{ns}/{prefix}_entry_point.xsd"/>
  <xbrli:context id="ctx"><xbrli:entity><xbrli:identifier scheme="http://www.mof.gov.cn">{COMPANY_TAX_ID}</xbrli:identifier></xbrli:entity><xbrli:period><xbrli:instant>2025-11-03</xbrli:instant></xbrli:period></xbrli:context>
  <xbrli:unit id="CNY"><xbrli:measure>iso4217:CNY</xbrli:measure></xbrli:unit>
{body}
</xbrli:xbrl>
""".encode()


def einv_xbrl(number: str | None = None, *, buyer: str = COMPANY_TAX_ID) -> bytes:
    return _xbrl(
        "einv",
        "2023-12-31",
        {
            "InvoiceNumber": number or invoice_number(),
            "RequestTime": "2025-11-03T09:30:00",
            "LabelCode": "02",
            "SellerName": "上海出行科技有限公司",
            "SellerIdNum": SELLER_TAX_ID,
            "BuyerName": "示例科技有限公司",
            "BuyerIdNum": buyer,
            "TotalAmWithoutTax": "100.00",
            "TotalTaxAm": "9.00",
            "TotalTax-includedAmount": "109.00",
        },
    )


def railway_xbrl(number: str | None = None, *, fare: str = "553.00") -> bytes:
    return _xbrl(
        "rai",
        "2023-12-31",
        {
            "ElectronicInvoiceRailwayETicketNumber": number or invoice_number(),
            "DateOfIssue": "2025-11-02",
            "TrainNumber": "G7",
            "DepartureStation": "北京南",
            "DestinationStation": "上海虹桥",
            "TravelDate": "2025-11-03",
            "PassengerName": "李四",
            "Fare": fare,
            "TaxAmount": f"{(Decimal(fare) / Decimal('1.09') * Decimal('0.09')):.2f}",
            "BuyerName": "示例科技有限公司",
            "BuyerIdNum": COMPANY_TAX_ID,
        },
    )


def air_xbrl(
    number: str | None = None,
    *,
    fare: str = "1200.00",
    fuel: str = "60.00",
    fund: str = "50.00",
) -> bytes:
    total = Decimal(fare) + Decimal(fuel) + Decimal(fund)
    return _xbrl(
        "atr",
        "2023-12-31",
        {
            "InvoiceNumber": number or invoice_number(),
            "DateOfIssue": "2025-11-01",
            "PassengerName": "李四",
            "Fare": fare,
            "FuelSurcharge": fuel,
            "CivilAviationDevelopmentFund": fund,
            "TotalAmount": f"{total:.2f}",
            "BuyerName": "示例科技有限公司",
            "BuyerIdNum": COMPANY_TAX_ID,
        },
    )


OFD_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.1" DocType="OFD">
  <ofd:DocBody><ofd:DocInfo><ofd:DocID>0C1D4F7159954EEEDE517F7285979E4B</ofd:DocID></ofd:DocInfo>
  <ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody>
</ofd:OFD>
"""
DOCUMENT_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<ofd:Document xmlns:ofd="http://www.ofdspec.org/2016">
  <ofd:CommonData><ofd:MaxUnitID>10</ofd:MaxUnitID>
    <ofd:PageArea><ofd:PhysicalBox>0 0 210 140</ofd:PhysicalBox></ofd:PageArea>
  </ofd:CommonData>
  <ofd:Pages><ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages>
  <ofd:Attachments>Attachs/Attachments.xml</ofd:Attachments>
  <ofd:CustomTags>Tags/CustomTags.xml</ofd:CustomTags>
</ofd:Document>
"""
PAGE_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<ofd:Page xmlns:ofd="http://www.ofdspec.org/2016">
  <ofd:Content><ofd:Layer ID="2"/></ofd:Content>
</ofd:Page>
"""


def ofd(invoice_xml: bytes | None, *, entry: str = "Doc_0/Attachs/invoice.xml") -> bytes:
    """An OFD container (zip) with the invoice data as an attachment (or none)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("OFD.xml", OFD_XML)
        archive.writestr("Doc_0/Document.xml", DOCUMENT_XML)
        archive.writestr("Doc_0/Pages/Page_0/Content.xml", PAGE_XML)
        archive.writestr(
            "Doc_0/Attachs/Attachments.xml",
            b'<?xml version="1.0"?><ofd:Attachments xmlns:ofd="http://www.ofdspec.org/2016">'
            b'<ofd:Attachment ID="5" Name="invoice" Format="xml" FileLoc="invoice.xml"/>'
            b"</ofd:Attachments>",
        )
        archive.writestr(
            "Doc_0/Tags/CustomTags.xml",
            b'<?xml version="1.0"?><ofd:CustomTags xmlns:ofd="http://www.ofdspec.org/2016">'
            b'<ofd:CustomTag NameSpace="urn:tax"><ofd:FileLoc>CustomTag.xml</ofd:FileLoc>'
            b"</ofd:CustomTag></ofd:CustomTags>",
        )
        if invoice_xml is not None:
            archive.writestr(entry, invoice_xml)
    return out.getvalue()


def pdf(invoice_xml: bytes | None, *, name: str = "invoice.xml") -> bytes:
    """A one-page PDF with the invoice XML embedded as a file attachment (or none)."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=396)
    writer.add_metadata({"/Title": "电子发票"})
    if invoice_xml is not None:
        writer.add_attachment(name, invoice_xml)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
