"""Canonical vouchers (`finoa.connectors.base.VoucherPayload`) -> Yonyou's wire formats.

- U8 OpenAPI `voucher/add`: a JSON body `{"voucher": {...}}` with the header fields and the
  lines under `debit.entry[]` and `credit.entry[]`, amounts in yuan as decimal strings.
- NC / NCC: the `ufinterface` voucher XML (`roottag="voucher"`, `billtype="gl"`) with
  `voucher_head` and `voucher_body/entry`, and the result XML it answers
  (`successful="Y|N"`, `sendresult/resultcode`, `resultdescription`, `content`).

Accounts, voucher types and auxiliary items (department, person, project) travel by code,
as the ERP's base data knows them. The external business number (the hub's idempotency key)
rides in `reserve2` with `voucher_making_system` "CDM", which is how U8 documents carrying an
external number in a voucher.

XML is built and read with lxml; the parser resolves no entities, loads no DTD, touches no
network and refuses huge trees. The declared encoding of the prolog (UTF-8, GBK or GB2312)
is the one the bytes are read in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lxml import etree

EXTERNAL_SYSTEM = "CDM"  # U8: reserve2 carries an external number only with this maker
ENCODINGS = ("UTF-8", "GBK", "GB2312")


def yuan(fen: int) -> str:
    """An amount in fen as yuan with two decimals: 128050 -> "1280.50", -500 -> "-5.00"."""
    return f"{Decimal(fen).scaleb(-2):.2f}"


def fen(text: str | None, where: str) -> int:
    """Yuan as a decimal string back to fen; ValueError naming `where` otherwise."""
    try:
        value = Decimal((text or "0").strip())
    except ArithmeticError:
        raise ValueError(f"{where}: {text!r} is not an amount") from None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{where}: {text!r} is not an amount with at most two decimals")
    return int(value * 100)


def _period(payload: Mapping[str, Any]) -> tuple[str, str]:
    year, month = str(payload["period"]).split("-")
    return year, str(int(month))


def _aux(entry: Mapping[str, Any]) -> dict[str, str]:
    aux = entry["aux"]
    names = (("dept_id", "department"), ("person_id", "employee"), ("item_id", "project"))
    return {wire: aux[canonical] for wire, canonical in names if aux.get(canonical)}


def u8_voucher(payload: Mapping[str, Any], reference: str, enter: str) -> dict[str, Any]:
    """The body of U8 OpenAPI `voucher/add` for a canonical voucher posted under
    `reference` (kept in `reserve2`) by the operator `enter`. A red-ink reversal carries
    negative amounts on its lines' usual sides, as U8's 红字冲销 vouchers do."""
    year, period = _period(payload)
    debit: list[dict[str, Any]] = []
    credit: list[dict[str, Any]] = []
    for entry in payload["entries"]:
        line = {
            "entry_id": str(entry["line"]),
            "account_code": entry["account_code"],
            "abstract": entry["summary"],
            "currency": payload["currency"],
            **_aux(entry),
        }
        if entry["debit_fen"] != 0:
            debit.append({**line, "natural_debit_currency": yuan(entry["debit_fen"])})
        else:
            credit.append({**line, "natural_credit_currency": yuan(entry["credit_fen"])})
    return {
        "voucher": {
            "voucher_type": payload["word"],
            "fiscal_year": year,
            "accounting_period": period,
            "date": payload["date"],
            "enter": enter,
            "attachment_number": "0",
            "voucher_making_system": EXTERNAL_SYSTEM,
            "reserve2": reference,
            "debit": {"entry": debit},
            "credit": {"entry": credit},
        }
    }


@dataclass(frozen=True)
class NCEnvelope:
    """The `ufinterface` attributes of one exchange: who sends, to which NC account."""

    sender: str
    receiver: str
    company: str
    enter: str
    encoding: str = "UTF-8"


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def nc_voucher_xml(payload: Mapping[str, Any], reference: str, envelope: NCEnvelope) -> bytes:
    """The `ufinterface` voucher import for a canonical voucher, encoded (and declared in
    the prolog) in `envelope.encoding`."""
    year, period = _period(payload)
    root = etree.Element(
        "ufinterface",
        roottag="voucher",
        billtype="gl",
        proc="add",
        sender=envelope.sender,
        receiver=envelope.receiver,
        replace="N",
        isexchange="Y",
        filename=f"{reference}.xml",
    )
    voucher = _sub(root, "voucher", None)
    voucher.set("id", reference)
    head = _sub(voucher, "voucher_head")
    for tag, text in (
        ("company", envelope.company),
        ("voucher_type", payload["word"]),
        ("fiscal_year", year),
        ("accounting_period", period),
        ("voucher_id", ""),  # NC numbers the voucher
        ("attachment_number", "0"),
        ("prepareddate", payload["date"]),
        ("enter", envelope.enter),
        ("voucher_making_system", EXTERNAL_SYSTEM),
        ("reserve1", payload["summary"]),
        ("reserve2", reference),
        ("revokeflag", "N"),
    ):
        _sub(head, tag, text)
    body = _sub(voucher, "voucher_body")
    for item in payload["entries"]:
        entry = _sub(body, "entry")
        for tag, text in (
            ("entry_id", str(item["line"])),
            ("account_code", item["account_code"]),
            ("abstract", item["summary"]),
            ("currency", payload["currency"]),
            ("primary_debit_amount", yuan(item["debit_fen"])),
            ("natural_debit_currency", yuan(item["debit_fen"])),
            ("primary_credit_amount", yuan(item["credit_fen"])),
            ("natural_credit_currency", yuan(item["credit_fen"])),
        ):
            _sub(entry, tag, text)
        aux = _sub(entry, "auxiliary_accounting")
        for name, code in _aux(item).items():
            _sub(aux, "item", code).set("name", name)
    return etree.tostring(root, xml_declaration=True, encoding=envelope.encoding)


def safe_parser() -> etree.XMLParser:
    """An lxml parser for what a peer sends: no entities, no DTD, no network, no huge trees."""
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        dtd_validation=False,
        remove_blank_text=True,
    )


def read_xml(body: bytes) -> etree._Element:
    """The root of an XML document read in the encoding its prolog declares; ValueError
    (naming the problem) for what is not well-formed or carries a DOCTYPE."""
    try:
        root = etree.fromstring(body, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise ValueError("a DOCTYPE is not accepted")
    return root


def declared_encoding(body: bytes) -> str:
    """The encoding an XML document declares in its prolog (UTF-8 when none)."""
    if body.startswith(b"<?xml"):
        end = body.find(b"?>")
        prolog = body[:end].decode("ascii", "replace")
        for quote in ('"', "'"):
            marker = f"encoding={quote}"
            if marker in prolog:
                return prolog.split(marker, 1)[1].split(quote, 1)[0].upper()
    return "UTF-8"


@dataclass(frozen=True)
class NCResult:
    """What NC answered for one voucher: success, the result code and description, and the
    voucher number it made (`content`)."""

    successful: bool
    resultcode: str
    description: str
    content: str
    bdocid: str


def nc_result_xml(results: list[NCResult], *, sender: str, receiver: str, encoding: str) -> bytes:
    """The result XML NC answers an exchange with, one `sendresult` per voucher (the
    simulator's side); `successful` is Y only when every voucher succeeded."""
    root = etree.Element(
        "ufinterface",
        roottag="sendresult",
        billtype="gl",
        sender=sender,
        receiver=receiver,
        replace="N",
        isexchange="Y",
        successful="Y" if all(r.successful for r in results) else "N",
    )
    for result in results:
        sent = _sub(root, "sendresult")
        _sub(sent, "billpk", "")
        _sub(sent, "bdocid", result.bdocid)
        _sub(sent, "filename", f"{result.bdocid}.xml")
        _sub(sent, "resultcode", result.resultcode)
        _sub(sent, "resultdescription", result.description)
        _sub(sent, "content", result.content)
    return etree.tostring(root, xml_declaration=True, encoding=encoding)


def parse_nc_result(body: bytes) -> list[NCResult]:
    """The results in NC's answer, one per `sendresult`; ValueError when it is not one."""
    root = read_xml(body)
    if root.tag != "ufinterface":
        raise ValueError(f"the answer's root is <{root.tag}>, not <ufinterface>")
    overall = root.get("successful", "N") == "Y"
    results = []
    for sent in root.iter("sendresult"):
        code = (sent.findtext("resultcode") or "").strip()
        results.append(
            NCResult(
                successful=overall and code == "1",
                resultcode=code,
                description=(sent.findtext("resultdescription") or "").strip(),
                content=(sent.findtext("content") or "").strip(),
                bdocid=(sent.findtext("bdocid") or "").strip(),
            )
        )
    if not results:
        raise ValueError("the answer has no <sendresult>")
    return results
