"""Canonical payloads <-> Feishu's wire format, through the mapping engine.

- `approval.create` (OA-led): the claim -> `POST /open-apis/approval/v4/instances`, by the
  mapping `feishu/expense_claim_create`; `form` is a JSON string of widgets
  `{"id", "type", "value"}` (amounts are numbers with a `currency`, dates RFC 3339, the
  expense table a `fieldList` whose value is a list of rows of widgets).
- An instance an employee started in Feishu -> a claim submission, by the mapping
  `feishu/expense_claim`.
- `todo.push` (hub-led): the approval task as an external instance in Feishu's Approval
  Center (`POST /open-apis/approval/v4/external_instances`), with 同意 / 拒绝 quick actions
  whose callbacks come back to finoa; the `action_context` names the task.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from finoa.connectors import vendor_oa
from finoa.connectors.base import ApprovalRequestPayload, TodoPayload
from finoa.connectors.vendor_oa import ConfigCheck, claim_by_mapping, mapped_create
from finoa.mapping import MappingCatalog
from finoa.schemas import ClaimSubmission

CLAIM_ID_WIDGET = "claim_no"  # the widget carrying finoa's claim id on instances it created
APPROVE, REJECT = "APPROVE", "REJECT"
EXTERNAL_APPROVAL_CODE = "finoa-expense-claim"
# The expense form's widgets by custom ID, and their types (what Feishu checks values by).
FORM_WIDGETS: dict[str, str] = {
    "reason": "input",
    "claim_no": "input",
    "total": "amount",
    "details": "fieldList",
    "cost_center": "input",
    "project": "input",
}
DETAIL_WIDGETS: dict[str, str] = {
    "category": "radioV2",
    "amount": "amount",
    "tax": "amount",
    "date": "date",
    "note": "input",
}
REQUIRED_WIDGETS = ("reason", "total", "details")
# The create uuid (Feishu's idempotency key) of a claim's instance: one per claim.
UUID_NAMESPACE = uuid.UUID("0f6b8a52-5d3e-4c1e-9a57-6c2f1f0e9b11")


class WireMappingError(vendor_oa.WireMappingError):
    """A canonical payload the Feishu mapping cannot express; names every field."""


@dataclass(frozen=True, repr=False)
class FeishuConfig:
    """A `feishu` instance's config, checked (ValueError `field: reason`)."""

    app_id: str
    app_secret: str = field(repr=False)
    verification_token: str = field(repr=False)
    encrypt_key: str = field(repr=False)
    approval_code: str
    external_approval_code: str
    callback_url: str | None
    base_url: str
    timeout_seconds: float
    rate_limit_per_second: float
    tolerance_seconds: int
    catalog: MappingCatalog

    def __repr__(self) -> str:
        return f"FeishuConfig(app_id={self.app_id!r}, approval_code={self.approval_code!r})"

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> FeishuConfig:
        from finoa.connectors.feishu.manifest import (
            BASE_URL,
            CONFIG_SCHEMA,
            DEFAULT_TOLERANCE_SECONDS,
            RATE_LIMIT_PER_SECOND,
        )

        check = ConfigCheck("feishu", config, CONFIG_SCHEMA)
        external = config.get("external_approval_code", EXTERNAL_APPROVAL_CODE)
        if not isinstance(external, str) or not external:
            raise ValueError("external_approval_code: a non-empty string")
        base = check.url("base_url", BASE_URL)
        callback = check.optional_url("callback_url")
        timeout = check.timeout()
        rate = check.rate(RATE_LIMIT_PER_SECOND)
        tolerance = check.tolerance(DEFAULT_TOLERANCE_SECONDS)
        catalog = check.catalog()
        return cls(
            app_id=str(config["app_id"]),
            app_secret=str(config["app_secret"]),
            verification_token=str(config["verification_token"]),
            encrypt_key=str(config["encrypt_key"]),
            approval_code=str(config["approval_code"]),
            external_approval_code=external,
            callback_url=callback,
            base_url=base,
            timeout_seconds=timeout,
            rate_limit_per_second=rate,
            tolerance_seconds=tolerance,
            catalog=catalog,
        )


def create_uuid(claim_id: str) -> str:
    """The `uuid` of a claim's instance: the same for every attempt, so a repeat is 60012."""
    return str(uuid.uuid5(UUID_NAMESPACE, claim_id))


def _widget(widget_id: str, kind: str, value: Any, currency: str) -> dict[str, Any]:
    if kind == "amount":
        return {"id": widget_id, "type": kind, "value": float(Decimal(value)), "currency": currency}
    if kind == "date":
        return {"id": widget_id, "type": kind, "value": f"{value}T00:00:00+08:00"}
    return {"id": widget_id, "type": kind, "value": "" if value is None else str(value)}


def form_widgets(form: Mapping[str, Any], currency: str) -> list[dict[str, Any]]:
    """`{"reason": "…", "details": [{"amount": "12.00"}]}` -> Feishu's widget list."""
    widgets: list[dict[str, Any]] = []
    for widget_id, value in form.items():
        kind = FORM_WIDGETS.get(widget_id)
        if kind is None:
            raise WireMappingError(f"form.{widget_id}: the expense form has no such widget")
        if kind == "fieldList":
            rows = []
            for r, row in enumerate(value or []):
                cells = []
                for cell_id, cell in row.items():
                    cell_kind = DETAIL_WIDGETS.get(cell_id)
                    if cell_kind is None:
                        raise WireMappingError(f"form.{widget_id}[{r}].{cell_id}: no such column")
                    cells.append(_widget(cell_id, cell_kind, cell, currency))
                rows.append(cells)
            widgets.append({"id": widget_id, "type": kind, "value": rows})
        else:
            widgets.append(_widget(widget_id, kind, value, currency))
    return widgets


def create_instance_body(config: FeishuConfig, claim: ApprovalRequestPayload) -> dict[str, Any]:
    """The body of `POST /open-apis/approval/v4/instances` for a claim."""
    value = mapped_create(config.catalog, "feishu", claim)
    widgets = form_widgets(value.get("form", {}), claim["currency"])
    return {
        "approval_code": config.approval_code,
        "user_id": value["user_id"],
        "department_id": value["department_id"],
        "form": json.dumps(widgets, ensure_ascii=False, separators=(",", ":")),
        "uuid": create_uuid(claim["id"]),
        "title": claim["title"][:100],
    }


def read_form(instance: Mapping[str, Any]) -> list[Any]:
    """An instance's `form` (a JSON string) as its widget list; amounts as exact Decimals."""
    raw = instance.get("form")
    if isinstance(raw, list):
        return raw
    if not isinstance(raw, str):
        return []
    try:
        widgets = json.loads(raw, parse_float=Decimal)
    except json.JSONDecodeError:
        return []
    return widgets if isinstance(widgets, list) else []


def widget_value(instance: Mapping[str, Any], widget_id: str) -> str | None:
    """The text value of a widget of an instance's form, by its (custom) id."""
    for widget in read_form(instance):
        if isinstance(widget, Mapping) and widget_id in (widget.get("id"), widget.get("custom_id")):
            value = widget.get("value")
            return value if isinstance(value, str) and value else None
    return None


def claim_from_instance(
    config: FeishuConfig, instance_code: str, instance: Mapping[str, Any]
) -> ClaimSubmission:
    """A claim submission from an instance an employee started in Feishu; InboundInvalid
    naming every field the mapping or the claim's rules refuse (paths of the claim)."""
    document = {**instance, "instance_code": instance_code, "form": read_form(instance)}
    return claim_by_mapping(config.catalog, "feishu", document, "instance")


def action_context(todo: TodoPayload) -> str:
    """What a quick action carries back: the task, its claim and its approver."""
    return json.dumps(
        {"task_id": todo["task_id"], "claim_id": todo["claim_id"], "approver": todo["assignee_id"]},
        separators=(",", ":"),
    )


def external_instance_body(
    config: FeishuConfig, todo: TodoPayload, *, status: str, now_ms: int
) -> dict[str, Any]:
    """The body of `POST /open-apis/approval/v4/external_instances` for one approval task:
    its own external instance (`instance_id` = the task id) holding the task; created
    PENDING with 同意 / 拒绝 quick actions, sent again DONE when the task is decided (the
    newer `update_time` wins at Feishu)."""
    link = config.callback_url or "https://finoa.invalid/"
    amount = f"{Decimal(todo['amount_fen']) / 100:.2f} {todo['currency']}"
    task_status = "PENDING" if status == "PENDING" else "DONE"
    task: dict[str, Any] = {
        "task_id": todo["task_id"],
        "user_id": todo["assignee_id"],
        "title": todo["title"][:100],
        "links": {"pc_link": link, "mobile_link": link},
        "status": task_status,
        "create_time": str(now_ms),
        "update_time": str(now_ms),
        "action_context": action_context(todo),
        "action_configs": [
            {"action_type": APPROVE, "is_need_reason": False},
            {"action_type": REJECT, "is_need_reason": True},
        ]
        if task_status == "PENDING"
        else [],
    }
    if task_status == "DONE":
        task["end_time"] = str(now_ms)
    return {
        "approval_code": config.external_approval_code,
        "status": status,
        "instance_id": todo["task_id"],
        "links": {"pc_link": link, "mobile_link": link},
        "title": todo["title"][:100],
        "form": [
            {"name": "单号", "value": todo["claim_id"]},
            {"name": "金额", "value": amount},
            {"name": "审批角色", "value": todo["role"]},
        ],
        "start_time": str(now_ms),
        "end_time": str(now_ms) if status != "PENDING" else "0",
        "update_time": str(now_ms),
        "display_method": "SIDEBAR",
        "update_mode": "REPLACE",
        "task_list": [task],
    }


TEXT_LIMIT = 150 * 1024  # bytes Feishu takes in one text message's content


def notice_message_body(notice: Mapping[str, Any]) -> dict[str, Any]:
    """The body of `POST /open-apis/im/v1/messages?receive_id_type=user_id` for one notice
    (消息通知): a text message from the app's bot to the recipient, its title on the first
    line. The `uuid` is the notice's, so Feishu sends a repeat within its dedup window (one
    hour) once."""
    text = f"{notice['title']}\n{notice['body']}"
    content = json.dumps({"text": text}, ensure_ascii=False)
    if len(content.encode("utf-8")) > TEXT_LIMIT:
        raise WireMappingError(f"body: the notice is longer than Feishu's {TEXT_LIMIT} bytes")
    return {
        "receive_id": notice["recipient_id"],
        "msg_type": "text",
        "content": content,
        "uuid": uuid.uuid5(UUID_NAMESPACE, f"notice:{notice['notice_id']}").hex,
    }
