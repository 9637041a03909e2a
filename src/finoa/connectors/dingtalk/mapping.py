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
from pathlib import Path
from typing import Any

from finoa.connectors.base import ApprovalRequestPayload, InboundInvalid, TodoPayload
from finoa.connectors.instances import MAPPINGS_KEY
from finoa.connectors.pacing import rate_limit_setting
from finoa.mapping import MappingCatalog, apply_mapping, code_tables
from finoa.schemas import ClaimSubmission

CLAIM_MAPPING = "expense_claim"
CREATE_MAPPING = "expense_claim_create"
CLAIM_ID_FIELD = "finoa单号"  # the form field carrying finoa's claim id on instances it created
TODO_SIGNATURE_HEADER = "x-finoa-todo-signature"
APPROVE, REJECT = "approve", "reject"
REJECT_COMMENT = "在钉钉待办中拒绝 / refused in the DingTalk todo"
APPROVE_COMMENT = "在钉钉待办中同意 / approved in the DingTalk todo"


class WireMappingError(ValueError):
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

        unknown = sorted(set(config) - set(CONFIG_SCHEMA["properties"]) - {MAPPINGS_KEY})
        if unknown:
            raise ValueError(f"{unknown[0]}: is not a dingtalk config field")
        for name in CONFIG_SCHEMA["required"]:
            value = config.get(name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name}: required, a non-empty string")
        aes_key_bytes(str(config["aes_key"]))
        urls = {}
        for name, default in (("api_base_url", API_BASE_URL), ("oapi_base_url", OAPI_BASE_URL)):
            url = config.get(name, default)
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError(f"{name}: an http(s) URL")
            urls[name] = url.rstrip("/")
        callback = config.get("callback_url")
        if callback is not None and (
            not isinstance(callback, str) or not callback.startswith(("http://", "https://"))
        ):
            raise ValueError("callback_url: an http(s) URL")
        agent = config.get("agent_id")
        if agent is not None and (isinstance(agent, bool) or not isinstance(agent, int)):
            raise ValueError("agent_id: a whole number")
        timeout = config.get("timeout_seconds", 5)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError("timeout_seconds: must be a positive number")
        rate = rate_limit_setting(config, RATE_LIMIT_PER_SECOND)
        tolerance = config.get("callback_tolerance_seconds", DEFAULT_TOLERANCE_SECONDS)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 1:
            raise ValueError("callback_tolerance_seconds: must be a positive whole number")
        owner = config.get("owner_key") or config["app_key"]
        try:
            catalog = MappingCatalog(config.get(MAPPINGS_KEY), Path.cwd())
            for name in (CLAIM_MAPPING, CREATE_MAPPING):
                catalog.get("dingtalk", name)
        except ValueError as exc:
            raise ValueError(f"mappings: {exc}") from None
        return cls(
            app_key=str(config["app_key"]),
            app_secret=str(config["app_secret"]),
            token=str(config["token"]),
            aes_key=str(config["aes_key"]),
            process_code=str(config["process_code"]),
            owner_key=str(owner),
            agent_id=agent,
            callback_url=callback,
            api_base_url=urls["api_base_url"],
            oapi_base_url=urls["oapi_base_url"],
            timeout_seconds=float(timeout),
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
    loaded = config.catalog.get("dingtalk", CREATE_MAPPING)
    result = apply_mapping(loaded.spec, claim, code_tables=code_tables(loaded, unchecked=True))
    if not result.ok:
        raise WireMappingError("; ".join(str(error) for error in result.errors))
    value = result.value
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
    loaded = config.catalog.get("dingtalk", CLAIM_MAPPING)
    document = {**instance, "processInstanceId": instance_id}
    result = apply_mapping(
        loaded.spec,
        document,
        code_tables=code_tables(loaded, unchecked=True),
        target=ClaimSubmission,
    )
    if not result.ok:
        raise InboundInvalid(
            [
                {
                    "type": "mapping",
                    "loc": ("instance", *_loc(e.path)),
                    "msg": e.message,
                    "input": e.source,
                }
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
