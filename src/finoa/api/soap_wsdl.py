"""The WSDL of finoa's claims Web Service (SOAP 1.1, document/literal wrapped).

Element names are the field names of the REST API (`applicant_id`, `lines`, `amount` …), so a
SOAP fault names a field exactly as a REST problem does (`lines[0].amount`); lists are
wrapper elements (`lines` holds `line` elements, `invoice_refs` holds `invoice_ref`,
`attachments` holds `attachment`). Amounts are yuan as plain decimals, dates `yyyy-MM-dd`.
"""

from __future__ import annotations

from finoa.soap.wsdl import Operation, Service, document_literal_wsdl

CLAIMS_NS = "https://finoa.dev/soap/claims/v1"
CLAIM_LISTS = {"lines": "line", "invoice_refs": "invoice_ref", "attachments": "attachment"}

_SCHEMA = """
    <xs:schema targetNamespace="{CLAIMS_NS}" elementFormDefault="qualified">
      <xs:complexType name="InvoiceRefs">
        <xs:sequence>
          <xs:element name="invoice_ref" type="xs:string" minOccurs="0" maxOccurs="20"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="ClaimLine">
        <xs:sequence>
          <xs:element name="category" type="xs:string"/>
          <xs:element name="amount" type="xs:decimal"/>
          <xs:element name="tax" type="xs:decimal" minOccurs="0"/>
          <xs:element name="expense_date" type="xs:date"/>
          <xs:element name="description" type="xs:string" minOccurs="0"/>
          <xs:element name="invoice_refs" type="tns:InvoiceRefs" minOccurs="0"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="ClaimLines">
        <xs:sequence>
          <xs:element name="line" type="tns:ClaimLine" minOccurs="1" maxOccurs="200"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="Attachment">
        <xs:sequence>
          <xs:element name="name" type="xs:string"/>
          <xs:element name="sha256" type="xs:string"/>
          <xs:element name="size" type="xs:long"/>
          <xs:element name="content_type" type="xs:string" minOccurs="0"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="Attachments">
        <xs:sequence>
          <xs:element name="attachment" type="tns:Attachment" minOccurs="0" maxOccurs="50"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="Claim">
        <xs:sequence>
          <xs:element name="external_id" type="xs:string" minOccurs="0"/>
          <xs:element name="version" type="xs:int" minOccurs="0"/>
          <xs:element name="applicant_id" type="xs:string"/>
          <xs:element name="department_id" type="xs:string"/>
          <xs:element name="cost_center_id" type="xs:string" minOccurs="0"/>
          <xs:element name="project_id" type="xs:string" minOccurs="0"/>
          <xs:element name="currency" type="xs:string" minOccurs="0"/>
          <xs:element name="title" type="xs:string"/>
          <xs:element name="lines" type="tns:ClaimLines"/>
          <xs:element name="attachments" type="tns:Attachments" minOccurs="0"/>
          <xs:element name="document_type" type="xs:string" minOccurs="0"/>
          <xs:element name="requisition_id" type="xs:string" minOccurs="0"/>
        </xs:sequence>
      </xs:complexType>
      <xs:element name="SubmitClaim">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="message_id" type="xs:string" minOccurs="0"/>
            <xs:element name="claim" type="tns:Claim"/>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
      <xs:element name="SubmitClaimResponse">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="claim_id" type="xs:string"/>
            <xs:element name="status" type="xs:string"/>
            <xs:element name="duplicate" type="xs:boolean"/>
            <xs:element name="total_fen" type="xs:long"/>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
      <xs:element name="GetClaimStatus">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="claim_id" type="xs:string" minOccurs="0"/>
            <xs:element name="external_id" type="xs:string" minOccurs="0"/>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
      <xs:element name="GetClaimStatusResponse">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="claim_id" type="xs:string"/>
            <xs:element name="external_id" type="xs:string"/>
            <xs:element name="version" type="xs:int"/>
            <xs:element name="status" type="xs:string"/>
            <xs:element name="reason" type="xs:string" minOccurs="0"/>
            <xs:element name="total_fen" type="xs:long"/>
            <xs:element name="voucher_no" type="xs:string" minOccurs="0"/>
            <xs:element name="erp_voucher_no" type="xs:string" minOccurs="0"/>
            <xs:element name="updated_at" type="xs:dateTime"/>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
      <xs:complexType name="FieldError">
        <xs:sequence>
          <xs:element name="field" type="xs:string"/>
          <xs:element name="message" type="xs:string"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="FieldErrors">
        <xs:sequence>
          <xs:element name="error" type="tns:FieldError" maxOccurs="unbounded"/>
        </xs:sequence>
      </xs:complexType>
      <xs:element name="problem">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="type" type="xs:string"/>
            <xs:element name="title" type="xs:string"/>
            <xs:element name="status" type="xs:int"/>
            <xs:element name="detail" type="xs:string"/>
            <xs:element name="field" type="xs:string" minOccurs="0"/>
            <xs:element name="errors" type="tns:FieldErrors" minOccurs="0"/>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
    </xs:schema>
"""

CLAIMS_SERVICE = Service(
    name="ClaimService",
    namespace=CLAIMS_NS,
    port_type="ClaimPortType",
    binding="ClaimBinding",
    port="ClaimPort",
    schema=_SCHEMA.format(CLAIMS_NS=CLAIMS_NS),
    documentation=(
        "finoa claims Web Service: submit expense claims and query their status. "
        "Authenticate with the HTTP header Authorization: Bearer (an access token from "
        "/api/v1/oauth/token with the scopes claims:write and claims:read)."
    ),
    operations=[
        Operation(
            name,
            input_element=name,
            output_element=f"{name}Response",
            fault_element="problem",
            fault_name="ClaimFault",
            soap_action=f"{CLAIMS_NS}/{name}",
        )
        for name in ("SubmitClaim", "GetClaimStatus")
    ],
)


def claims_wsdl(location: str) -> bytes:
    """The WSDL, with the service's address at `location`."""
    return document_literal_wsdl(CLAIMS_SERVICE, location)
