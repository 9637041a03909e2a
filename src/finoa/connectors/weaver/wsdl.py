"""The WSDL of e-cology's SOAP `WorkflowService` as the simulator serves it (the parts the
hub uses: `doCreateWorkflowRequest`), in e-cology's namespace `http://webservice.workflow.weaver`.

Arrays follow e-cology's XFire style: `ArrayOfX` wrapper types holding `X` elements.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

WORKFLOW_NS = "http://webservice.workflow.weaver"
WORKFLOW_LISTS = {
    "requestRecords": "WorkflowRequestTableRecord",
    "workflowRequestTableRecords": "WorkflowRequestTableRecord",
    "workflowRequestTableFields": "WorkflowRequestTableField",
    "workflowDetailTableInfos": "WorkflowDetailTableInfo",
}

_WSDL = """<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions targetNamespace="{ns}" xmlns:tns="{ns}"
    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:wsdlsoap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <wsdl:types>
    <xsd:schema targetNamespace="{ns}" elementFormDefault="qualified">
      <xsd:complexType name="WorkflowRequestTableField">
        <xsd:sequence>
          <xsd:element name="fieldName" type="xsd:string" minOccurs="0" nillable="true"/>
          <xsd:element name="fieldValue" type="xsd:string" minOccurs="0" nillable="true"/>
          <xsd:element name="view" type="xsd:boolean" minOccurs="0"/>
          <xsd:element name="edit" type="xsd:boolean" minOccurs="0"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="ArrayOfWorkflowRequestTableField">
        <xsd:sequence>
          <xsd:element name="WorkflowRequestTableField" type="tns:WorkflowRequestTableField"
              minOccurs="0" maxOccurs="unbounded" nillable="true"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="WorkflowRequestTableRecord">
        <xsd:sequence>
          <xsd:element name="workflowRequestTableFields"
              type="tns:ArrayOfWorkflowRequestTableField" minOccurs="0" nillable="true"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="ArrayOfWorkflowRequestTableRecord">
        <xsd:sequence>
          <xsd:element name="WorkflowRequestTableRecord" type="tns:WorkflowRequestTableRecord"
              minOccurs="0" maxOccurs="unbounded" nillable="true"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="WorkflowMainTableInfo">
        <xsd:sequence>
          <xsd:element name="requestRecords" type="tns:ArrayOfWorkflowRequestTableRecord"
              minOccurs="0" nillable="true"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="WorkflowDetailTableInfo">
        <xsd:sequence>
          <xsd:element name="tableDBName" type="xsd:string" minOccurs="0" nillable="true"/>
          <xsd:element name="workflowRequestTableRecords"
              type="tns:ArrayOfWorkflowRequestTableRecord" minOccurs="0" nillable="true"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="ArrayOfWorkflowDetailTableInfo">
        <xsd:sequence>
          <xsd:element name="WorkflowDetailTableInfo" type="tns:WorkflowDetailTableInfo"
              minOccurs="0" maxOccurs="unbounded" nillable="true"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="WorkflowBaseInfo">
        <xsd:sequence>
          <xsd:element name="workflowId" type="xsd:string" minOccurs="0" nillable="true"/>
          <xsd:element name="workflowName" type="xsd:string" minOccurs="0" nillable="true"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="WorkflowRequestInfo">
        <xsd:sequence>
          <xsd:element name="creatorId" type="xsd:string" minOccurs="0" nillable="true"/>
          <xsd:element name="requestLevel" type="xsd:string" minOccurs="0" nillable="true"/>
          <xsd:element name="requestName" type="xsd:string" minOccurs="0" nillable="true"/>
          <xsd:element name="workflowBaseInfo" type="tns:WorkflowBaseInfo" minOccurs="0"
              nillable="true"/>
          <xsd:element name="workflowMainTableInfo" type="tns:WorkflowMainTableInfo"
              minOccurs="0" nillable="true"/>
          <xsd:element name="workflowDetailTableInfos"
              type="tns:ArrayOfWorkflowDetailTableInfo" minOccurs="0" nillable="true"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:element name="doCreateWorkflowRequest">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="in0" type="tns:WorkflowRequestInfo" nillable="true"/>
            <xsd:element name="in1" type="xsd:int"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="doCreateWorkflowRequestResponse">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="out" type="xsd:string" nillable="true"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </wsdl:types>
  <wsdl:message name="doCreateWorkflowRequestRequest">
    <wsdl:part name="parameters" element="tns:doCreateWorkflowRequest"/>
  </wsdl:message>
  <wsdl:message name="doCreateWorkflowRequestResponse">
    <wsdl:part name="parameters" element="tns:doCreateWorkflowRequestResponse"/>
  </wsdl:message>
  <wsdl:portType name="WorkflowServicePortType">
    <wsdl:operation name="doCreateWorkflowRequest">
      <wsdl:input name="doCreateWorkflowRequestRequest"
          message="tns:doCreateWorkflowRequestRequest"/>
      <wsdl:output name="doCreateWorkflowRequestResponse"
          message="tns:doCreateWorkflowRequestResponse"/>
    </wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="WorkflowServiceHttpBinding" type="tns:WorkflowServicePortType">
    <wsdlsoap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="doCreateWorkflowRequest">
      <wsdlsoap:operation soapAction=""/>
      <wsdl:input name="doCreateWorkflowRequestRequest"><wsdlsoap:body use="literal"/></wsdl:input>
      <wsdl:output name="doCreateWorkflowRequestResponse">
        <wsdlsoap:body use="literal"/>
      </wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="WorkflowService">
    <wsdl:port name="WorkflowServiceHttpPort" binding="tns:WorkflowServiceHttpBinding">
      <wsdlsoap:address location={location}/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""


def workflow_wsdl(location: str) -> bytes:
    """The WSDL with the service's address at `location`."""
    return _WSDL.format(ns=WORKFLOW_NS, location=quoteattr(location)).encode("utf-8")
