"""Canonical payloads <-> DingTalk's wire format, through the mapping engine.

- `approval.create` (OA-led): the claim -> `POST /v1.0/workflow/processInstances`, by the
  mapping `dingtalk/expense_claim_create`; every value a string, every table a JSON string
  of rows of `{"name", "value"}` cells.
- An instance an employee started in DingTalk -> a claim submission, by the mapping
  `dingtalk/expense_claim` (its table arrives as a JSON string of `rowValue` rows).
- `todo.push` (hub-led): a todo in the approver's DingTalk 待办 with 同意 / 拒绝 buttons
  whose requests come back to finoa signed by `todo_action_signature`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from finoa.connectors import vendor_oa
from finoa.connectors.base import ApprovalRequestPayload, TodoPayload
from finoa.connectors.vendor_oa import ConfigCheck, claim_by_mapping, mapped_create
from finoa.mapping import MappingCatalog
from finoa.schemas import ClaimSubmission

CLAIM_ID_FIELD = "finoa单号"  # the form field carrying finoa's claim id on instances it created
TODO_SIGNATURE_HEADER = "x-finoa-todo-signature"
APPROVE, REJECT = "approve", "reject"
REJECT_COMMENT = "在钉钉待办中拒绝 / refused in the DingTalk todo"
APPROVE_COMMENT = "在钉钉待办中同意 / approved in the DingTalk todo"


class WireMappingError(vendor_oa.WireMappingError):
    """A canonical payload the DingTalk mapping cannot express; names every field."""


@dataclass(frozen=True, repr=False)
class DingTalkConfig:
    """A `dingtalk` instance's config, checked (ValueError `field: reason`)."""

    app_key: str
    app_secret: str = field(repr=False)
    token: str = field(repr=False)
    aes_key: str = field(repr=False)
    process_code: str
    owner_key: str
    agent_id: int | None
    callback_url: str | None
    api_base_url: str
    oapi_base_url: str
    timeout_seconds: float
    rate_limit_per_second: float
    tolerance_seconds: int
    catalog: MappingCatalog

    def __repr__(self) -> str:
        return f"DingTalkConfig(app_key={self.app_key!r}, process_code={self.process_code!r})"

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> DingTalkConfig:
        from finoa.connectors.dingtalk.crypto import aes_key_bytes
        from finoa.connectors.dingtalk.manifest import (
            API_BASE_URL,
            CONFIG_SCHEMA,
            DEFAULT_TOLERANCE_SECONDS,
            OAPI_BASE_URL,
            RATE_LIMIT_PER_SECOND,
        )

        check = ConfigCheck("dingtalk", config, CONFIG_SCHEMA)
        aes_key_bytes(str(config["aes_key"]))
        api_base_url = check.url("api_base_url", API_BASE_URL)
        oapi_base_url = check.url("oapi_base_url", OAPI_BASE_URL)
        callback = check.optional_url("callback_url")
        agent = check.whole_number_or_none("agent_id")
        timeout = check.timeout()
        rate = check.rate(RATE_LIMIT_PER_SECOND)
        tolerance = check.tolerance(DEFAULT_TOLERANCE_SECONDS)
        owner = config.get("owner_key") or config["app_key"]
        catalog = check.catalog()
        return cls(
            app_key=str(config["app_key"]),
            app_secret=str(config["app_secret"]),
            token=str(config["token"]),
            aes_key=str(config["aes_key"]),
            process_code=str(config["process_code"]),
            owner_key=str(owner),
            agent_id=agent,
            callback_url=callback,
            api_base_url=api_base_url,
            oapi_base_url=oapi_base_url,
            timeout_seconds=timeout,
            rate_limit_per_second=rate,
            tolerance_seconds=tolerance,
            catalog=catalog,
        )


def instance_key(config: DingTalkConfig) -> tuple[str, ...]:
    """Where the instances this process started for claims are remembered (`created_here`):
    the instanceId DingTalk answered -> finoa's claim id."""
    return ("dingtalk-claim", config.api_base_url, config.app_key, config.process_code)


def _text(value: Any) -> str:
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def form_component_values(form: Mapping[str, Any]) -> list[dict[str, str]]:
    """`{"报销事由": "…", "费用明细": [{"金额（元）": "12.00"}]}` -> DingTalk's
    `formComponentValues`: strings, and a table as a JSON string of rows of named cells."""
    values: list[dict[str, str]] = []
    for name, value in form.items():
        if isinstance(value, list):
            rows = [[{"name": k, "value": _text(v)} for k, v in row.items()] for row in value]
            values.append({"name": name, "value": json.dumps(rows, ensure_ascii=False)})
        else:
            values.append({"name": name, "value": _text(value)})
    return values


def start_instance_body(config: DingTalkConfig, claim: ApprovalRequestPayload) -> dict[str, Any]:
    """The body of `POST /v1.0/workflow/processInstances` for a claim."""
    value = mapped_create(config.catalog, "dingtalk", claim)
    try:
        dept_id = int(value["deptId"])
    except (TypeError, ValueError):
        raise WireMappingError(
            f"deptId: {value['deptId']!r} is not a DingTalk department id"
        ) from None
    body: dict[str, Any] = {
        "processCode": config.process_code,
        "originatorUserId": value["originatorUserId"],
        "deptId": dept_id,
        "formComponentValues": form_component_values(value.get("form", {})),
    }
    if config.agent_id is not None:
        body["microappAgentId"] = config.agent_id
    return body


def form_value(instance: Mapping[str, Any], name: str) -> str | None:
    """The value of a named component of an instance's form."""
    for component in instance.get("formComponentValues") or []:
        if isinstance(component, Mapping) and component.get("name") == name:
            value = component.get("value")
            return value if isinstance(value, str) and value else None
    return None


def claim_from_instance(
    config: DingTalkConfig, instance_id: str, instance: Mapping[str, Any]
) -> ClaimSubmission:
    """A claim submission from an instance an employee started in DingTalk; InboundInvalid
    naming every field the mapping or the claim's rules refuse (paths of the claim)."""
    document = {**instance, "processInstanceId": instance_id}
    return claim_by_mapping(config.catalog, "dingtalk", document, "instance")


def todo_signing_key(config: DingTalkConfig) -> bytes:
    """The key finoa signs its todo buttons' requests with: from the subscription secrets."""
    return hashlib.sha256(f"finoa-todo:{config.token}:{config.aes_key}".encode()).digest()


def todo_action_signature(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def todo_action_body(todo: TodoPayload, decision: str) -> str:
    comment = APPROVE_COMMENT if decision == APPROVE else REJECT_COMMENT
    action = {
        "type": "todo_action",
        "task_id": todo["task_id"],
        "claim_id": todo["claim_id"],
        "approver_id": todo["assignee_id"],
        "decision": decision,
        "comment": comment,
    }
    return json.dumps(action, ensure_ascii=False, separators=(",", ":"))


def create_todo_body(config: DingTalkConfig, todo: TodoPayload, union_id: str) -> dict[str, Any]:
    """The body of `POST /v1.0/todo/users/{unionId}/tasks`: the approval as a todo of its
    approver, with 同意 / 拒绝 buttons that call finoa back (actionType 2, an HTTP request
    DingTalk makes with the given body and headers)."""
    key = todo_signing_key(config)
    actions = []
    for decision, title in ((APPROVE, "同意"), (REJECT, "拒绝")):
        body = todo_action_body(todo, decision)
        actions.append(
            {
                "title": title,
                "actionType": 2,
                "actionKey": decision,
                "url": config.callback_url,
                "param": {
                    "body": body,
                    "header": {
                        "content-type": "application/json",
                        TODO_SIGNATURE_HEADER: todo_action_signature(key, body),
                    },
                },
            }
        )
    amount = f"{Decimal(todo['amount_fen']) / 100:.2f} {todo['currency']}"
    return {
        "sourceId": todo["task_id"],
        "subject": todo["title"][:200],
        "description": f"{todo['title']} · {amount} · {todo['role']}",
        "creatorId": union_id,
        "executorIds": [union_id],
        "participantIds": [],
        "detailUrl": {"appUrl": config.callback_url or "", "pcUrl": config.callback_url or ""},
        "bizCategoryId": "finoa.expense_claim",
        "actionList": actions,
    }


NOTICE_LIMIT = 2000  # characters of a work notification's text finoa sends


def work_notice_body(config: DingTalkConfig, notice: Mapping[str, Any]) -> dict[str, Any]:
    """The body of `topapi/message/corpconversation/asyncsend_v2` for one notice (工作通知):
    a text message from the app (`agent_id`) to the recipient, its title on the first line.
    DingTalk sends the same content to the same user once a day, so a re-send is dropped."""
    if config.agent_id is None:
        raise WireMappingError("agent_id: required for notices (the app's AgentId)")
    content = f"{notice['title']}\n{notice['body']}"[:NOTICE_LIMIT]
    return {
        "agent_id": config.agent_id,
        "userid_list": str(notice["recipient_id"]),
        "msg": {"msgtype": "text", "text": {"content": content}},
    }
