"""Canonical payloads <-> WeCom approvals, through the mapping engine.

- `approval.create` (OA-led): the claim -> `oa/applyevent` of the expense template, by the
  mapping `wecom/expense_claim_create`, whose `form` names controls by title; each value is
  written as its control type takes it (`apply_data.contents[{control, id, value}]`).
- An approval an employee started in WeCom -> a claim submission, by `wecom/expense_claim`
  over the detail as `oa/getapprovaldetail` answers it (controls found by title).
- `todo.push` (hub-led): an approval of the task template per finoa task, its approver the
  task's assignee (`use_template_approver` 0); the approver's decision comes back as the
  approval's `sys_approval_change`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from finoa.connectors import vendor_oa
from finoa.connectors.base import (
    ApprovalRequestPayload,
    ApprovalResult,
    ConcludeApproval,
    DecideTask,
    InboundCommand,
    SubmitClaim,
    TodoPayload,
)
from finoa.connectors.vendor_oa import ConfigCheck, claim_by_mapping, mapped_create
from finoa.mapping import MappingCatalog
from finoa.schemas import ClaimSubmission

CLAIM_ID_TITLE = "finoa单号"  # the control carrying finoa's claim id on approvals it created
TASK_ID_TITLE = "finoa任务"  # the control carrying finoa's task id (hub-led approvals)
WECOM_ZONE = ZoneInfo("Asia/Shanghai")  # WeCom's Date controls are days in China time
# sp_status of an approval (审批状态)
IN_APPROVAL, PASSED, REJECTED, REVOKED, REVOKED_AFTER_PASS, DELETED, PAID = 1, 2, 3, 4, 6, 7, 10
# An approval's sp_status -> the final result of the claim it decides (OA-led). 6 (revoked
# after it passed) is not among them: the claim is booked then and is corrected by reversal.
STATUS_RESULTS = {
    PASSED: ApprovalResult.AGREE,
    PAID: ApprovalResult.AGREE,
    REJECTED: ApprovalResult.REFUSE,
    REVOKED: ApprovalResult.REVOKE,
    DELETED: ApprovalResult.TERMINATE,
}


class WireMappingError(vendor_oa.WireMappingError):
    """A canonical payload the WeCom template cannot express; names every field."""


@dataclass(frozen=True, repr=False)
class WeComConfig:
    """A `wecom` instance's config, checked (ValueError `field: reason`)."""

    corp_id: str
    corp_secret: str = field(repr=False)
    token: str = field(repr=False)
    aes_key: str = field(repr=False)
    template_id: str
    task_template_id: str
    task_creator_userid: str | None
    agent_id: int | None
    api_base_url: str
    timeout_seconds: float
    rate_limit_per_second: float
    tolerance_seconds: int
    catalog: MappingCatalog

    def __repr__(self) -> str:
        return f"WeComConfig(corp_id={self.corp_id!r}, template_id={self.template_id!r})"

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> WeComConfig:
        from finoa.connectors.wecom.crypto import aes_key_bytes
        from finoa.connectors.wecom.manifest import (
            API_BASE_URL,
            CONFIG_SCHEMA,
            DEFAULT_TOLERANCE_SECONDS,
            RATE_LIMIT_PER_SECOND,
        )

        check = ConfigCheck("wecom", config, CONFIG_SCHEMA)
        aes_key_bytes(str(config["aes_key"]))
        task_template = config.get("task_template_id", config["template_id"])
        if not isinstance(task_template, str) or not task_template:
            raise ValueError("task_template_id: a non-empty string")
        creator = config.get("task_creator_userid")
        if creator is not None and (not isinstance(creator, str) or not creator):
            raise ValueError("task_creator_userid: a WeCom userid")
        url = check.url("api_base_url", API_BASE_URL)
        agent = check.whole_number_or_none("agent_id")
        timeout = check.timeout()
        rate = check.rate(RATE_LIMIT_PER_SECOND)
        tolerance = check.tolerance(DEFAULT_TOLERANCE_SECONDS)
        catalog = check.catalog()
        return cls(
            corp_id=str(config["corp_id"]),
            corp_secret=str(config["corp_secret"]),
            token=str(config["token"]),
            aes_key=str(config["aes_key"]),
            template_id=str(config["template_id"]),
            task_template_id=task_template,
            task_creator_userid=creator,
            agent_id=agent,
            api_base_url=url,
            timeout_seconds=timeout,
            rate_limit_per_second=rate,
            tolerance_seconds=tolerance,
            catalog=catalog,
        )


# -- controls by type ------------------------------------------------------------------------


def _title(item: Mapping[str, Any]) -> str:
    """A control's title (the zh_CN one, else the first) from a template or a detail."""
    titles = item.get("title") or []
    for title in titles:
        if isinstance(title, Mapping) and title.get("lang") == "zh_CN":
            return str(title.get("text") or "")
    return str(titles[0].get("text") or "") if titles and isinstance(titles[0], Mapping) else ""


def day_timestamp(value: str) -> str:
    """`2026-11-20` -> the seconds of that day's midnight in China, as WeCom's Date takes it."""
    day = date.fromisoformat(value)
    return str(int(datetime.combine(day, time(), WECOM_ZONE).timestamp()))


def timestamp_day(value: Any) -> str:
    """A Date control's `s_timestamp` (seconds) -> the day in China time."""
    return datetime.fromtimestamp(int(value), WECOM_ZONE).date().isoformat()


def control_value(control: Mapping[str, Any], value: Any, path: str) -> dict[str, Any]:
    """A value as the template's control (`{property, config}`) takes it."""
    prop = control.get("property") or {}
    kind = prop.get("control")
    config = control.get("config") or {}
    if kind in ("Text", "Textarea"):
        return {"text": "" if value is None else str(value)}
    if kind == "Number":
        return {"new_number": str(value)}
    if kind == "Money":
        return {"new_money": str(value)}
    if kind == "Date":
        try:
            return {
                "date": {
                    "type": (config.get("date") or {}).get("type", "day"),
                    "s_timestamp": day_timestamp(str(value)),
                }
            }
        except ValueError:
            raise WireMappingError(f"{path}: {value!r} is not a yyyy-mm-dd date") from None
    if kind == "Selector":
        selector = config.get("selector") or {}
        for option in selector.get("options") or []:
            if any(v.get("text") == value for v in option.get("value") or []):
                return {
                    "selector": {
                        "type": selector.get("type", "single"),
                        "options": [{"key": option["key"]}],
                    }
                }
        raise WireMappingError(f"{path}: {value!r} is not an option of the template's selector")
    if kind == "Table":
        if not isinstance(value, list):
            raise WireMappingError(f"{path}: a table takes a list of rows")
        children = (config.get("table") or {}).get("children") or []
        rows = []
        for r, row in enumerate(value):
            rows.append({"list": contents_of(children, row, f"{path}[{r}]")})
        return {"children": rows}
    raise WireMappingError(f"{path}: control type {kind!r} is not supported")


def contents_of(
    controls: Sequence[Mapping[str, Any]], form: Mapping[str, Any], path: str = "form"
) -> list[dict[str, Any]]:
    """`{title: value}` -> `apply_data.contents` (or a table row's `list`) for the controls."""
    by_title = {_title(c.get("property") or {}): c for c in controls}
    unknown = [t for t in form if t not in by_title]
    if unknown:
        raise WireMappingError(f"{path}.{unknown[0]}: the template has no control with this title")
    contents = []
    for title, value in form.items():
        if value is None:
            continue
        control = by_title[title]
        prop = control.get("property") or {}
        contents.append(
            {
                "control": prop.get("control"),
                "id": prop.get("id"),
                "value": control_value(control, value, f"{path}.{title}"),
            }
        )
    return contents


def read_value(item: Mapping[str, Any]) -> Any:
    """A detail control's value in plain form: text, amount, day, option text, rows."""
    kind = item.get("control")
    value = item.get("value") or {}
    if kind in ("Text", "Textarea"):
        return value.get("text")
    if kind == "Number":
        return value.get("new_number")
    if kind == "Money":
        return value.get("new_money")
    if kind == "Date":
        stamp = (value.get("date") or {}).get("s_timestamp")
        return timestamp_day(stamp) if stamp not in (None, "") else None
    if kind == "Selector":
        options = (value.get("selector") or {}).get("options") or []
        texts = [_title({"title": o.get("value") or []}) for o in options]
        return texts[0] if len(texts) == 1 else texts
    if kind == "Table":
        return [form_of(child.get("list") or []) for child in value.get("children") or []]
    return value


def form_of(contents: list[Mapping[str, Any]]) -> dict[str, Any]:
    """An approval's `apply_data.contents` (or a row's `list`) by control title."""
    return {_title(item): read_value(item) for item in contents if isinstance(item, Mapping)}


def detail_form(detail: Mapping[str, Any]) -> dict[str, Any]:
    return form_of((detail.get("apply_data") or {}).get("contents") or [])


# -- payloads --------------------------------------------------------------------------------


def applyevent_body(
    config: WeComConfig, claim: ApprovalRequestPayload, controls: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The body of `oa/applyevent` for a claim (OA-led: the template's approvers decide)."""
    value = mapped_create(config.catalog, "wecom", claim)
    form = dict(value.get("form") or {})
    return {
        "creator_userid": value["creator_userid"],
        "template_id": config.template_id,
        "use_template_approver": 1,
        "choose_department": int(value["department"]),
        "apply_data": {"contents": contents_of(controls, form)},
        "summary_list": [
            {"summary_info": [{"text": f"{claim['title']}"[:20], "lang": "zh_CN"}]},
            {
                "summary_info": [
                    {
                        "text": f"{Decimal(claim['total_fen']) / 100:.2f} {claim['currency']}",
                        "lang": "zh_CN",
                    }
                ]
            },
        ],
    }


def task_applyevent_body(
    config: WeComConfig, todo: TodoPayload, creator: str, controls: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The body of `oa/applyevent` for one finoa task (hub-led): `creator` (the configured
    `task_creator_userid`) submits it, the task's assignee is its only approver."""
    amount = f"{Decimal(todo['amount_fen']) / 100:.2f}"
    form = {
        "审批事项": todo["title"],
        CLAIM_ID_TITLE: todo["claim_id"],
        TASK_ID_TITLE: todo["task_id"],
        "金额（元）": amount,
        "审批角色": todo["role"],
    }
    return {
        "creator_userid": creator,
        "template_id": config.task_template_id,
        "use_template_approver": 0,
        "approver": [{"attr": 1, "userid": [todo["assignee_id"]]}],
        "apply_data": {"contents": contents_of(controls, form)},
        "summary_list": [
            {"summary_info": [{"text": todo["title"][:20], "lang": "zh_CN"}]},
            {"summary_info": [{"text": f"{amount} {todo['currency']}", "lang": "zh_CN"}]},
        ],
    }


def claim_from_detail(config: WeComConfig, detail: Mapping[str, Any]) -> ClaimSubmission:
    """A claim submission from an approval an employee started in WeCom; InboundInvalid
    naming every field the mapping or the claim's rules refuse (paths of the claim)."""
    return claim_by_mapping(config.catalog, "wecom", detail, "approval")


def approval_commands(
    config: WeComConfig,
    detail: Mapping[str, Any],
    *,
    start: bool = True,
    result: bool = True,
    task_id: str | None = None,
    claim_id: str | None = None,
) -> list[InboundCommand]:
    """What an approval's detail means for finoa, in order: a claim an employee submitted
    (`start`), and its final result or a task's decision (`result`). The message ids are
    the approval's, so a callback and a sweep of the same change are one message. `task_id`
    and `claim_id` are the task or claim of an approval finoa applied, when it knows them
    (an event carries no form)."""
    sp_no = str(detail.get("sp_no") or "")
    form = detail_form(detail)
    task_id, claim_id = task_id or form.get(TASK_ID_TITLE), claim_id or form.get(CLAIM_ID_TITLE)
    status = detail.get("sp_status")
    decided = [
        d
        for record in detail.get("sp_record") or []
        for d in record.get("details") or []
        if d.get("sp_status") in (PASSED, REJECTED)
    ]
    actor = str((decided[-1].get("approver") or {}).get("userid") or "") if decided else ""
    speech = str(decided[-1].get("speech") or "") if decided else ""
    commands: list[InboundCommand] = []
    if detail.get("template_id") == config.task_template_id and task_id:
        if result and status in (PASSED, REJECTED) and actor:
            commands.append(
                DecideTask(f"wecom-task:{sp_no}", str(task_id), actor, status == PASSED, speech)
            )
        return commands
    if detail.get("template_id") != config.template_id:
        return commands
    if start and not claim_id:
        claim = claim_from_detail(config, detail)
        commands.append(SubmitClaim(f"wecom-start:{sp_no}", claim, oa_approval_id=sp_no))
    final = STATUS_RESULTS.get(status) if isinstance(status, int) else None
    if result and final is not None:
        commands.append(
            ConcludeApproval(
                f"wecom-result:{sp_no}",
                sp_no,
                final,
                actor_id=actor or None,
                comment=speech or None,
                claim_id=str(claim_id) if claim_id else None,
            )
        )
    return commands


def task_key(config: WeComConfig) -> tuple[str, ...]:
    """Where the task approvals this process applied for the instance are remembered
    (`created_here`): the sp_no `oa/applyevent` answered -> finoa's task id."""
    return ("wecom-task", config.api_base_url, config.corp_id, config.task_template_id)


def claim_key(config: WeComConfig) -> tuple[str, ...]:
    """The same for the claims' approvals (OA-led): sp_no -> finoa's claim id."""
    return ("wecom-claim", config.api_base_url, config.corp_id, config.template_id)


NOTICE_LIMIT = 2000  # characters of an application message's text finoa sends
DUPLICATE_CHECK_SECONDS = 14_400  # WeCom's longest duplicate-check window: 4 hours


def notice_message_body(config: WeComConfig, notice: Mapping[str, Any]) -> dict[str, Any]:
    """The body of `message/send` for one notice (应用消息): a text message from the app
    (`agentid`) to the recipient, its title on the first line, with WeCom's duplicate check
    on, so the same message sent again within the window is not delivered twice."""
    if config.agent_id is None:
        raise WireMappingError("agent_id: required for notices (the app's AgentId)")
    return {
        "touser": str(notice["recipient_id"]),
        "msgtype": "text",
        "agentid": config.agent_id,
        "text": {"content": f"{notice['title']}\n{notice['body']}"[:NOTICE_LIMIT]},
        "safe": 0,
        "enable_duplicate_check": 1,
        "duplicate_check_interval": DUPLICATE_CHECK_SECONDS,
    }
