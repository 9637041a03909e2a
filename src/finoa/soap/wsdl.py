"""WSDL 1.1 documents for SOAP 1.1 document/literal services.

Every WSDL that finoa serves (its own claims Web Service, and the simulators that speak SOAP)
has the same frame around its own schema: one message per element an operation takes, gives
or faults with, a port type, a document/literal binding and a service with one port. A
service declares its schema and its operations; :func:`document_literal_wsdl` writes the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP_HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"


@dataclass(frozen=True)
class Operation:
    """One operation: the schema elements it takes and answers with, and its fault, if any.

    ``input_message`` / ``output_message`` name the WSDL messages (by default the element's
    name with ``Request`` / itself); ``named_io`` writes the messages' names on the port
    type's and binding's input and output, as some SOAP stacks do.
    """

    name: str
    input_element: str
    output_element: str
    fault_element: str | None = None
    fault_name: str | None = None
    soap_action: str = ""
    input_message: str | None = None
    output_message: str | None = None
    named_io: bool = False

    @property
    def request_message(self) -> str:
        return self.input_message or f"{self.name}Request"

    @property
    def response_message(self) -> str:
        return self.output_message or self.output_element


@dataclass(frozen=True)
class Service:
    """A SOAP service: its WSDL names, its schema (the inner text of ``<wsdl:types>``, with
    the prefix ``tns`` bound to the namespace) and its operations."""

    name: str
    namespace: str
    port_type: str
    binding: str
    port: str
    schema: str
    operations: Sequence[Operation]
    documentation: str | None = None


def _messages(service: Service) -> list[str]:
    out: list[str] = []
    faults: set[str] = set()
    for op in service.operations:
        out.append(_message(op.request_message, "parameters", op.input_element))
        out.append(_message(op.response_message, "parameters", op.output_element))
        if op.fault_element and op.fault_name and op.fault_name not in faults:
            faults.add(op.fault_name)
            out.append(_message(op.fault_name, op.fault_element, op.fault_element))
    return out


def _message(name: str, part: str, element: str) -> str:
    return (
        f'  <wsdl:message name="{name}">\n'
        f'    <wsdl:part name="{part}" element="tns:{element}"/>\n'
        "  </wsdl:message>"
    )


def _io_name(op: Operation, message: str) -> str:
    return f' name="{message}"' if op.named_io else ""


def _port_type(service: Service) -> str:
    ops = []
    for op in service.operations:
        lines = [
            f'    <wsdl:operation name="{op.name}">',
            f"      <wsdl:input{_io_name(op, op.request_message)}"
            f' message="tns:{op.request_message}"/>',
            f"      <wsdl:output{_io_name(op, op.response_message)}"
            f' message="tns:{op.response_message}"/>',
        ]
        if op.fault_name:
            lines.append(
                f'      <wsdl:fault name="{op.fault_name}" message="tns:{op.fault_name}"/>'
            )
        lines.append("    </wsdl:operation>")
        ops.append("\n".join(lines))
    body = "\n".join(ops)
    return f'  <wsdl:portType name="{service.port_type}">\n{body}\n  </wsdl:portType>'


def _binding(service: Service) -> str:
    ops = []
    for op in service.operations:
        lines = [
            f'    <wsdl:operation name="{op.name}">',
            f"      <soap:operation soapAction={quoteattr(op.soap_action)}/>",
            f'      <wsdl:input{_io_name(op, op.request_message)}><soap:body use="literal"/>'
            "</wsdl:input>",
            f'      <wsdl:output{_io_name(op, op.response_message)}><soap:body use="literal"/>'
            "</wsdl:output>",
        ]
        if op.fault_name:
            lines.append(
                f'      <wsdl:fault name="{op.fault_name}"><soap:fault name="{op.fault_name}"'
                ' use="literal"/></wsdl:fault>'
            )
        lines.append("    </wsdl:operation>")
        ops.append("\n".join(lines))
    body = "\n".join(ops)
    return (
        f'  <wsdl:binding name="{service.binding}" type="tns:{service.port_type}">\n'
        f'    <soap:binding style="document" transport="{SOAP_HTTP_TRANSPORT}"/>\n'
        f"{body}\n  </wsdl:binding>"
    )


def document_literal_wsdl(service: Service, location: str) -> bytes:
    """The WSDL of `service`, with its port's address at `location`."""
    ns = quoteattr(service.namespace)
    documentation = (
        f"  <wsdl:documentation>{service.documentation}</wsdl:documentation>\n"
        if service.documentation
        else ""
    )
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<wsdl:definitions name="{service.name}" targetNamespace={ns}',
        f'    xmlns:wsdl="{WSDL_NS}"',
        f'    xmlns:soap="{WSDL_SOAP_NS}"',
        '    xmlns:xs="http://www.w3.org/2001/XMLSchema"',
        f"    xmlns:tns={ns}>",
        documentation.rstrip("\n") if documentation else None,
        "  <wsdl:types>",
        service.schema.strip("\n"),
        "  </wsdl:types>",
        *_messages(service),
        _port_type(service),
        _binding(service),
        f'  <wsdl:service name="{service.name}">',
        f'    <wsdl:port name="{service.port}" binding="tns:{service.binding}">',
        f"      <soap:address location={quoteattr(location)}/>",
        "    </wsdl:port>",
        "  </wsdl:service>",
        "</wsdl:definitions>",
    ]
    return ("\n".join(p for p in parts if p is not None) + "\n").encode("utf-8")
