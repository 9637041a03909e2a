"""SOAP 1.1 envelopes read safely and written plainly, for every SOAP service finoa serves.

Reading: lxml with entities, DTDs and the network off, no huge trees, a size limit, and a
refusal of any document type declaration (the source of entity bombs and external entity
reads). A request is an envelope whose body holds one operation element; `element_data`
turns its children into plain values (text, nested mappings, lists) so that pydantic can
check them as it checks JSON, and names the place of anything that is not one value.

Writing: responses and faults are built as lxml trees. A fault carries the problem document
(RFC 9457 members, the failing `field` and every refused field) in its `detail`, so a SOAP
client learns exactly what a REST client learns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
DEFAULT_MAX_BYTES = 1_048_576


class SoapRequestError(Exception):
    """The request is not a SOAP message we can read, or a value in it is not one value;
    `field` names where (`body`, `Envelope`, `claim.lines[1].amount`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_xml(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """The root element of an XML document read with the defences above."""
    if len(body) > max_bytes:
        raise SoapRequestError("body", f"is larger than {max_bytes} bytes")
    if not body.strip():
        raise SoapRequestError("body", "is empty; a SOAP envelope is required")
    try:
        tree = etree.fromstring(body, _parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        raise SoapRequestError("body", f"is not well-formed XML: {exc.msg}") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise SoapRequestError("body", "a document type declaration is not allowed")
    return tree.getroot()


@dataclass(frozen=True)
class SoapCall:
    """An operation element of a request body: its namespace and local name."""

    namespace: str
    operation: str
    element: etree._Element


def read_call(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> SoapCall:
    """The one operation element inside a SOAP 1.1 envelope's body."""
    root = parse_xml(body, max_bytes=max_bytes)
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise SoapRequestError("Envelope", f"expected a SOAP 1.1 Envelope ({SOAP_ENV})")
    bodies = [child for child in root if child.tag == f"{{{SOAP_ENV}}}Body"]
    if len(bodies) != 1:
        raise SoapRequestError("Body", "the envelope must hold exactly one Body")
    calls = [child for child in bodies[0] if isinstance(child.tag, str)]
    if len(calls) != 1:
        raise SoapRequestError("Body", "the body must hold exactly one operation element")
    qname = etree.QName(calls[0])
    return SoapCall(qname.namespace or "", qname.localname, calls[0])


def _is_nil(element: etree._Element) -> bool:
    return element.get(f"{{{XSI}}}nil") in ("true", "1")


def element_data(
    element: etree._Element,
    namespace: str,
    lists: Mapping[str, str],
    *,
    path: str = "",
) -> dict[str, Any]:
    """The children of `element` as a mapping of local name to value.

    A leaf is its text ("" when empty; None when `xsi:nil`); an element with children is a
    mapping of its own; a wrapper named in `lists` (e.g. `lines` → `line`) is the list of its
    items. Children must be in `namespace`, and a name may appear once (as a JSON key may).
    """
    data: dict[str, Any] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        name = qname.localname
        where = f"{path}.{name}" if path else name
        if (qname.namespace or "") != namespace:
            raise SoapRequestError(where, f"is not in the namespace {namespace}")
        if name in data:
            raise SoapRequestError(where, "appears more than once")
        if name in lists:
            data[name] = _items(child, namespace, lists, name, where)
        else:
            data[name] = _value(child, namespace, lists, where)
    return data


def _items(
    wrapper: etree._Element, namespace: str, lists: Mapping[str, str], name: str, where: str
) -> list[Any]:
    items: list[Any] = []
    for item in wrapper:
        if not isinstance(item.tag, str):
            continue
        qname = etree.QName(item)
        if (qname.namespace or "") != namespace or qname.localname != lists[name]:
            raise SoapRequestError(f"{where}[{len(items)}]", f"expected an element {lists[name]}")
        items.append(_value(item, namespace, lists, f"{where}[{len(items)}]"))
    return items


def _value(element: etree._Element, namespace: str, lists: Mapping[str, str], where: str) -> Any:
    if _is_nil(element):
        return None
    if any(isinstance(child.tag, str) for child in element):
        if (element.text or "").strip():
            raise SoapRequestError(where, "mixes text with elements")
        return element_data(element, namespace, lists, path=where)
    return element.text or ""


def _append(parent: etree._Element, namespace: str, name: str, value: Any) -> None:
    """Write `value` under `parent`: None is left out, a sequence repeats `name`, a mapping
    becomes child elements, booleans are `true`/`false`, anything else its text."""
    if value is None:
        return
    if isinstance(value, list | tuple):
        for item in value:
            _append(parent, namespace, name, item)
        return
    child = etree.SubElement(parent, f"{{{namespace}}}{name}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _append(child, namespace, key, item)
    elif isinstance(value, bool):
        child.text = "true" if value else "false"
    else:
        child.text = str(value)


def _envelope(nsmap: dict[str | None, str]) -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, **nsmap})
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    return envelope, body


def _bytes(envelope: etree._Element) -> bytes:
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))


def response_envelope(namespace: str, element: str, values: Mapping[str, Any]) -> bytes:
    """A response envelope whose body holds `element` with `values` as its children."""
    envelope, body = _envelope({"tns": namespace})
    _append(body, namespace, element, values)
    return _bytes(envelope)


def fault_envelope(
    namespace: str,
    problem: Mapping[str, Any],
    *,
    detail_element: str = "problem",
) -> bytes:
    """A SOAP 1.1 fault for a problem document: `faultcode` Client for a 4xx, Server else;
    `faultstring` the problem's detail (`field: reason`); the problem itself in `detail`."""
    envelope, body = _envelope({"tns": namespace})
    fault = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    status = int(problem.get("status", 500))
    etree.SubElement(fault, "faultcode").text = "soap:Client" if status < 500 else "soap:Server"
    etree.SubElement(fault, "faultstring").text = str(problem.get("detail", ""))
    detail = etree.SubElement(fault, "detail")
    members: dict[str, Any] = {
        key: problem.get(key) for key in ("type", "title", "status", "detail", "field")
    }
    errors: Sequence[Mapping[str, Any]] = problem.get("errors") or ()
    if errors:
        members["errors"] = {
            "error": [{"field": e.get("field"), "message": e.get("message")} for e in errors]
        }
    _append(detail, namespace, detail_element, members)
    return _bytes(envelope)
