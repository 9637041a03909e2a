"""The WSDL of finoa's claims Web Service (SOAP 1.1, document/literal wrapped).

Element names are the field names of the REST API (`applicant_id`, `lines`, `amount` …), so a
SOAP fault names a field exactly as a REST problem does (`lines[0].amount`); lists are
wrapper elements (`lines` holds `line` elements, `invoice_refs` holds `invoice_ref`,
`attachments` holds `attachment`). Amounts are yuan as plain decimals, dates `yyyy-MM-dd`.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

CLAIMS_NS = "https://finoa.dev/soap/claims/v1"
CLAIM_LISTS = {"lines": "line", "invoice_refs": "invoice_ref", "attachments": "attachment"}

_WSDL = """<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions name="ClaimService" targetNamespace="{ns}"
    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="{ns}">
  <wsdl:documentation>finoa claims Web Service: submit expense claims and query their
    status. Authenticate with the HTTP header Authorization: Bearer (an access token from
    /api/v1/oauth/token with the scopes claims:write and claims:read).</wsdl:documentation>
  <wsdl:types>
    <xs:schema targetNamespace="{ns}" elementFormDefault="qualified">
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
  </wsdl:types>
  <wsdl:message name="SubmitClaimRequest">
    <wsdl:part name="parameters" element="tns:SubmitClaim"/>
  </wsdl:message>
  <wsdl:message name="SubmitClaimResponse">
    <wsdl:part name="parameters" element="tns:SubmitClaimResponse"/>
  </wsdl:message>
  <wsdl:message name="GetClaimStatusRequest">
    <wsdl:part name="parameters" element="tns:GetClaimStatus"/>
  </wsdl:message>
  <wsdl:message name="GetClaimStatusResponse">
    <wsdl:part name="parameters" element="tns:GetClaimStatusResponse"/>
  </wsdl:message>
  <wsdl:message name="ClaimFault">
    <wsdl:part name="problem" element="tns:problem"/>
  </wsdl:message>
  <wsdl:portType name="ClaimPortType">
    <wsdl:operation name="SubmitClaim">
      <wsdl:input message="tns:SubmitClaimRequest"/>
      <wsdl:output message="tns:SubmitClaimResponse"/>
      <wsdl:fault name="ClaimFault" message="tns:ClaimFault"/>
    </wsdl:operation>
    <wsdl:operation name="GetClaimStatus">
      <wsdl:input message="tns:GetClaimStatusRequest"/>
      <wsdl:output message="tns:GetClaimStatusResponse"/>
      <wsdl:fault name="ClaimFault" message="tns:ClaimFault"/>
    </wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="ClaimBinding" type="tns:ClaimPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="SubmitClaim">
      <soap:operation soapAction="{ns}/SubmitClaim"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
      <wsdl:fault name="ClaimFault"><soap:fault name="ClaimFault" use="literal"/></wsdl:fault>
    </wsdl:operation>
    <wsdl:operation name="GetClaimStatus">
      <soap:operation soapAction="{ns}/GetClaimStatus"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
      <wsdl:fault name="ClaimFault"><soap:fault name="ClaimFault" use="literal"/></wsdl:fault>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="ClaimService">
    <wsdl:port name="ClaimPort" binding="tns:ClaimBinding">
      <soap:address location={location}/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""


def claims_wsdl(location: str) -> bytes:
    """The WSDL, with the service's address at `location`."""
    return _WSDL.format(ns=CLAIMS_NS, location=quoteattr(location)).encode("utf-8")
