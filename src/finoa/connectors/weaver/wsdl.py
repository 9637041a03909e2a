"""The WSDL of e-cology's SOAP `WorkflowService` as the simulator serves it (the parts the
hub uses: `doCreateWorkflowRequest`), in e-cology's namespace `http://webservice.workflow.weaver`.

Arrays follow e-cology's XFire style: `ArrayOfX` wrapper types holding `X` elements.
"""

from __future__ import annotations

from finoa.soap.wsdl import Operation, Service, document_literal_wsdl

WORKFLOW_NS = "http://webservice.workflow.weaver"
WORKFLOW_LISTS = {
    "requestRecords": "WorkflowRequestTableRecord",
    "workflowRequestTableRecords": "WorkflowRequestTableRecord",
    "workflowRequestTableFields": "WorkflowRequestTableField",
    "workflowDetailTableInfos": "WorkflowDetailTableInfo",
}

_SCHEMA = """
    <xs:schema targetNamespace="{WORKFLOW_NS}" elementFormDefault="qualified">
      <xs:complexType name="WorkflowRequestTableField">
        <xs:sequence>
          <xs:element name="fieldName" type="xs:string" minOccurs="0" nillable="true"/>
          <xs:element name="fieldValue" type="xs:string" minOccurs="0" nillable="true"/>
          <xs:element name="view" type="xs:boolean" minOccurs="0"/>
          <xs:element name="edit" type="xs:boolean" minOccurs="0"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="ArrayOfWorkflowRequestTableField">
        <xs:sequence>
          <xs:element name="WorkflowRequestTableField" type="tns:WorkflowRequestTableField"
              minOccurs="0" maxOccurs="unbounded" nillable="true"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="WorkflowRequestTableRecord">
        <xs:sequence>
          <xs:element name="workflowRequestTableFields"
              type="tns:ArrayOfWorkflowRequestTableField" minOccurs="0" nillable="true"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="ArrayOfWorkflowRequestTableRecord">
        <xs:sequence>
          <xs:element name="WorkflowRequestTableRecord" type="tns:WorkflowRequestTableRecord"
              minOccurs="0" maxOccurs="unbounded" nillable="true"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="WorkflowMainTableInfo">
        <xs:sequence>
          <xs:element name="requestRecords" type="tns:ArrayOfWorkflowRequestTableRecord"
              minOccurs="0" nillable="true"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="WorkflowDetailTableInfo">
        <xs:sequence>
          <xs:element name="tableDBName" type="xs:string" minOccurs="0" nillable="true"/>
          <xs:element name="workflowRequestTableRecords"
              type="tns:ArrayOfWorkflowRequestTableRecord" minOccurs="0" nillable="true"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="ArrayOfWorkflowDetailTableInfo">
        <xs:sequence>
          <xs:element name="WorkflowDetailTableInfo" type="tns:WorkflowDetailTableInfo"
              minOccurs="0" maxOccurs="unbounded" nillable="true"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="WorkflowBaseInfo">
        <xs:sequence>
          <xs:element name="workflowId" type="xs:string" minOccurs="0" nillable="true"/>
          <xs:element name="workflowName" type="xs:string" minOccurs="0" nillable="true"/>
        </xs:sequence>
      </xs:complexType>
      <xs:complexType name="WorkflowRequestInfo">
        <xs:sequence>
          <xs:element name="creatorId" type="xs:string" minOccurs="0" nillable="true"/>
          <xs:element name="requestLevel" type="xs:string" minOccurs="0" nillable="true"/>
          <xs:element name="requestName" type="xs:string" minOccurs="0" nillable="true"/>
          <xs:element name="workflowBaseInfo" type="tns:WorkflowBaseInfo" minOccurs="0"
              nillable="true"/>
          <xs:element name="workflowMainTableInfo" type="tns:WorkflowMainTableInfo"
              minOccurs="0" nillable="true"/>
          <xs:element name="workflowDetailTableInfos"
              type="tns:ArrayOfWorkflowDetailTableInfo" minOccurs="0" nillable="true"/>
        </xs:sequence>
      </xs:complexType>
      <xs:element name="doCreateWorkflowRequest">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="in0" type="tns:WorkflowRequestInfo" nillable="true"/>
            <xs:element name="in1" type="xs:int"/>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
      <xs:element name="doCreateWorkflowRequestResponse">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="out" type="xs:string" nillable="true"/>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
    </xs:schema>
"""

WORKFLOW_SERVICE = Service(
    name="WorkflowService",
    namespace=WORKFLOW_NS,
    port_type="WorkflowServicePortType",
    binding="WorkflowServiceHttpBinding",
    port="WorkflowServiceHttpPort",
    schema=_SCHEMA.format(WORKFLOW_NS=WORKFLOW_NS),
    operations=[
        Operation(
            "doCreateWorkflowRequest",
            input_element="doCreateWorkflowRequest",
            output_element="doCreateWorkflowRequestResponse",
            named_io=True,
        )
    ],
)


def workflow_wsdl(location: str) -> bytes:
    """The WSDL with the service's address at `location`."""
    return document_literal_wsdl(WORKFLOW_SERVICE, location)
