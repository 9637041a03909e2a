"""Canonical payloads ⇄ Weaver e-cology wire formats, as plain functions.

Outbound: a canonical todo (`TodoPayload`) becomes a unified-todo record for
`/rest/ofs/ReceiveRequestInfoByJson`; an OA notice the message centre's form; a claim becomes
the `doCreateRequest` form fields and the SOAP `WorkflowRequestInfo` of
`doCreateWorkflowRequest`. Inbound: an approver's decision sent back by e-cology becomes a
canonical `DecideTask`; an expense request an employee started in e-cology (its
`getWorkflowRequest` data) becomes a claim submission through the mapping
`weaver/expense_claim`. Free of I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from finoa.connectors.base import (
    ApprovalRequestPayload,
    ApprovalResult,
    ConcludeApproval,
    DecideTask,
    InboundInvalid,
    TodoPayload,
)
from finoa.domain.money import fen_to_yuan
from finoa.mapping import MappingCatalog, apply_mapping, code_tables
from finoa.schemas import ClaimSubmission, Line, Paragraph

# isremark of a unified todo: 0 待办 (to do), 2 已办 (done), 4 办结 (flow finished).
TODO_OPEN, TODO_DONE, TODO_FINISHED = "0", "2", "4"
WORKFLOW_NAME = "费用报销 expense claim"
ROLE_NODES = {
    "manager": "直属上级审批",
    "finance_director": "财务总监审批",
    "cfo": "CFO审批",
}
WEAVER_TIME = "%Y-%m-%d %H:%M:%S"
# e-cology's own action names for what an approver did: 提交/批准 (submit) and 退回 (reject).
APPROVE_OPERATIONS = frozenset({"submit", "approve"})
REJECT_OPERATIONS = frozenset({"reject"})
# OA-led: how a request ended, as the flow action at its end node posts it (归档 archived,
# 退回 rejected to the creator, 撤回 withdrawn by the creator).
REQUEST_RESULTS = {
    "archive": ApprovalResult.AGREE,
    "reject": ApprovalResult.REFUSE,
    "withdraw": ApprovalResult.REVOKE,
}
CLAIM_ID_FIELD = "finoadh"  # the form field carrying finoa's claim id (finoa单号)
CLAIM_MAPPING = "expense_claim"  # mapping weaver/expense_claim: a started request -> a claim
# OA-led: the flow action on the creator's node (申请人提交) posts `create` once a request is
# submitted; finoa records a claim of each request it did not create itself.
REQUEST_STARTED = "create"


def weaver_time(at: datetime, timezone: str) -> str:
    """`yyyy-MM-dd HH:mm:ss` in the company's time zone, as e-cology writes times."""
    return at.astimezone(ZoneInfo(timezone)).strftime(WEAVER_TIME)


def todo_record(
    payload: TodoPayload,
    *,
    sys_code: str,
    creator: str,
    hub_url: str,
    sequence: int,
    at: datetime,
    timezone: str,
) -> dict[str, str]:
    """The unified-todo record for a canonical todo.

    `flowid` is the hub's task id, `receiver` the approver's login id. `receivets` orders the
    records of one todo: e-cology keeps the record with the highest value, so a create sent
    again after its close changes nothing. It is the outbox message's sequence number, which
    grows with every message the hub queues."""
    task = payload["task_id"]
    link = f"{hub_url.rstrip('/')}/tasks/{task}"
    return {
        "syscode": sys_code,
        "flowid": task,
        "requestname": payload["title"],
        "workflowname": WORKFLOW_NAME,
        "nodename": ROLE_NODES.get(payload["role"], payload["role"]),
        "pcurl": link,
        "appurl": link,
        "isremark": TODO_OPEN if payload["op"] == "create" else TODO_DONE,
        "viewtype": "0",
        "creator": creator,
        "createdatetime": weaver_time(at, timezone),
        "receiver": payload["assignee_id"],
        "receivedatetime": weaver_time(at, timezone),
        "receivets": str(sequence),
    }


def notice_message_form(notice: Mapping[str, Any], code: str) -> dict[str, str]:
    """The message centre's (消息中心) form for an OA notice (`notice.send`): from the hub's
    message source `code` to the recipient, whose hub id is their e-cology login id
    (`loginIdList`); `targetId` is `code|notice id`, the message's business key."""
    return {
        "code": code,
        "loginIdList": str(notice["recipient_id"]),
        "title": str(notice["title"]),
        "context": str(notice["body"]),
        "targetId": f"{code}|{notice['notice_id']}",
    }


def _field(name: str, value: Any) -> dict[str, Any]:
    return {"fieldName": name, "fieldValue": "" if value is None else str(value)}


def main_fields(claim: ClaimSubmission, total_fen: int) -> list[dict[str, Any]]:
    """The main table of the expense form: applicant, department, purpose, total in yuan."""
    return [
        _field("sqr", claim.applicant_id),
        _field("sqbm", claim.department_id),
        _field("cbzx", claim.cost_center_id),
        _field("xm", claim.project_id),
        _field("sy", claim.title),
        _field("je", fen_to_yuan(total_fen)),
        _field("wbdh", claim.external_id),
    ]


def detail_records(claim: ClaimSubmission) -> list[list[dict[str, Any]]]:
    """One detail-table record per expense line: category, amount, tax, date, description."""
    return [
        [
            _field("fylb", line.category.value),
            _field("je", line.amount),
            _field("se", line.tax),
            _field("fyrq", line.expense_date.isoformat()),
            _field("sm", line.description),
        ]
        for line in claim.lines
    ]


def create_request_form(
    claim: ClaimSubmission, total_fen: int, workflow_id: str, detail_table: str
) -> dict[str, Any]:
    """The body of `POST /api/workflow/paService/doCreateRequest`."""
    return {
        "workflowId": workflow_id,
        "requestName": claim.title,
        "mainData": main_fields(claim, total_fen),
        "detailData": [
            {
                "tableDBName": detail_table,
                "workflowRequestTableRecords": [
                    {"recordOrder": order, "workflowRequestTableFields": fields}
                    for order, fields in enumerate(detail_records(claim))
                ],
            }
        ],
        "otherParams": {"isnextflow": "1", "delReqFlowFaild": "1"},
        "remark": f"finoa {claim.external_id or ''}".strip(),
    }


def approval_request_form(
    claim: ApprovalRequestPayload, workflow_id: str, detail_table: str
) -> dict[str, Any]:
    """OA-led `approval.create`: the `doCreateRequest` body of a stored claim; finoa's claim
    id rides in the main table (`finoadh`) so the request's result finds its claim."""
    main = [
        _field("sqr", claim["applicant_id"]),
        _field("sqbm", claim["department_id"]),
        _field("cbzx", claim["cost_center_id"]),
        _field("xm", claim["project_id"]),
        _field("sy", claim["title"]),
        _field("je", fen_to_yuan(claim["total_fen"])),
        _field("wbdh", claim["external_id"]),
        _field(CLAIM_ID_FIELD, claim["id"]),
    ]
    records = [
        {
            "recordOrder": order,
            "workflowRequestTableFields": [
                _field("fylb", line["category"]),
                _field("je", fen_to_yuan(line["amount_fen"])),
                _field("se", fen_to_yuan(line["tax_fen"])),
                _field("fyrq", line["expense_date"]),
                _field("sm", line["description"]),
            ],
        }
        for order, line in enumerate(claim["lines"])
    ]
    return {
        "workflowId": workflow_id,
        "requestName": claim["title"],
        "mainData": main,
        "detailData": [{"tableDBName": detail_table, "workflowRequestTableRecords": records}],
        "otherParams": {"isnextflow": "1", "delReqFlowFaild": "1"},
        "remark": f"finoa {claim['id']}",
    }


def _soap_record(fields: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "workflowRequestTableFields": {
            "WorkflowRequestTableField": [{**f, "view": True, "edit": True} for f in fields]
        }
    }


def workflow_request_info(
    claim: ClaimSubmission, total_fen: int, workflow_id: str, creator_id: str
) -> dict[str, Any]:
    """The SOAP `WorkflowRequestInfo` of `doCreateWorkflowRequest` (zeep's dict form)."""
    return {
        "creatorId": creator_id,
        "requestLevel": "0",
        "requestName": claim.title,
        "workflowBaseInfo": {"workflowId": workflow_id},
        "workflowMainTableInfo": {
            "requestRecords": {
                "WorkflowRequestTableRecord": [_soap_record(main_fields(claim, total_fen))]
            }
        },
        "workflowDetailTableInfos": {
            "WorkflowDetailTableInfo": [
                {
                    "workflowRequestTableRecords": {
                        "WorkflowRequestTableRecord": [
                            _soap_record(fields) for fields in detail_records(claim)
                        ]
                    }
                }
            ]
        },
    }


class WeaverDecision(BaseModel):
    """An approver's action on a unified todo, as e-cology's flow action posts it back."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    eventid: Line = Field(min_length=1, max_length=128, description="The event's unique id")
    flowid: Line = Field(min_length=1, max_length=64, description="The todo's flow id: the task")
    operator: Line = Field(min_length=1, max_length=32, description="The approver's login id")
    operate: str = Field(pattern="^(submit|approve|reject)$", description="submit/approve/reject")
    remark: Paragraph | None = Field(default=None, max_length=1000, description="签字意见")
    operatetime: Line | None = Field(default=None, max_length=32)


def decision_command(decision: WeaverDecision) -> DecideTask:
    """The canonical decision for an approver's action (批准 → approve, 退回 → reject)."""
    return DecideTask(
        message_id=decision.eventid,
        task_id=decision.flowid,
        approver_id=decision.operator,
        approve=decision.operate in APPROVE_OPERATIONS,
        comment=decision.remark or None,
    )


class WeaverRequestResult(BaseModel):
    """OA-led: how a workflow request ended, as the flow action at its end posts it back."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    eventid: Line = Field(min_length=1, max_length=128, description="The event's unique id")
    requestid: Line = Field(min_length=1, max_length=32, pattern="^[0-9]+$",
                            description="The e-cology request id")  # fmt: skip
    operate: str = Field(pattern="^(archive|reject|withdraw)$", description="How it ended")
    operator: Line | None = Field(default=None, max_length=32, description="Who ended it")
    remark: Paragraph | None = Field(default=None, max_length=1000, description="签字意见")
    finoadh: Line | None = Field(default=None, max_length=64, description="finoa's claim id")
    operatetime: Line | None = Field(default=None, max_length=32)


def conclusion_command(result: WeaverRequestResult) -> ConcludeApproval:
    """The canonical conclusion of an OA-led request (归档 → agree, 退回 → refuse,
    撤回 → revoke)."""
    return ConcludeApproval(
        message_id=result.eventid,
        oa_approval_id=result.requestid,
        result=REQUEST_RESULTS[result.operate],
        actor_id=result.operator or None,
        comment=result.remark or None,
        claim_id=result.finoadh or None,
    )


class WeaverRequestStarted(BaseModel):
    """OA-led: a request was submitted at its creator's node, as that node's flow action
    (接口动作) posts it; the request's content is read with `getWorkflowRequest`."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    eventid: Line = Field(min_length=1, max_length=128, description="The event's unique id")
    requestid: Line = Field(min_length=1, max_length=32, pattern="^[0-9]+$",
                            description="The e-cology request id")  # fmt: skip
    operate: str = Field(pattern=f"^{REQUEST_STARTED}$", description="create: submitted")
    workflowid: Line | None = Field(default=None, max_length=32, description="Its workflow")
    creator: Line | None = Field(default=None, max_length=32, description="Who started it")
    operatetime: Line | None = Field(default=None, max_length=32)


def main_field(request: Mapping[str, Any], name: str) -> str | None:
    """A main-table field of `getWorkflowRequest`'s data, by its database name."""
    records = (request.get("workflowMainTableInfo") or {}).get("requestRecords") or [{}]
    for cell in records[0].get("workflowRequestTableFields") or []:
        if isinstance(cell, Mapping) and cell.get("fieldName") == name:
            value = cell.get("fieldValue")
            return str(value) if value not in (None, "") else None
    return None


def claim_from_request(catalog: MappingCatalog, request: Mapping[str, Any]) -> ClaimSubmission:
    """A claim submission from a request an employee started in e-cology; InboundInvalid
    naming every field the mapping or the claim's rules refuse (paths of the claim)."""
    loaded = catalog.get("weaver", CLAIM_MAPPING)
    result = apply_mapping(
        loaded.spec, request, code_tables=code_tables(loaded, unchecked=True),
        target=ClaimSubmission,
    )  # fmt: skip
    if not result.ok:
        raise InboundInvalid(
            [
                {
                    "type": "mapping",
                    "loc": ("request", *_loc(e.path)),
                    "msg": e.message,
                    "input": e.source,
                }  # fmt: skip
                for e in result.errors
            ]
        )
    return ClaimSubmission.model_validate(result.value)


def _loc(path: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for piece in path.replace("]", "").split("."):
        name, *indexes = piece.split("[")
        if name:
            parts.append(name)
        parts.extend(int(i) for i in indexes)
    return tuple(parts)
