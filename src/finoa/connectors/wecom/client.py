"""The hub's client to WeCom's server API, and the connector's outbound side.

Auth: `GET /cgi-bin/gettoken?corpid=&corpsecret=` gives an access token for 7200 seconds;
it is cached (`CachedToken`) and fetched again 5 minutes before it expires, or at once when
WeCom refuses it (errcode 40014 invalid, 42001 expired, 41001 missing), and the call is sent
once more. Every answer is HTTP 200 `{"errcode", "errmsg", …}`; errors are classed by their
errcode in the one table of `finoa.messaging.retry` (`VENDOR_CODE_CLASSES["wecom"]`).

Actions: `approval.create` (OA-led: `oa/applyevent` of the expense template, its approvers
the template's own; the answer's `sp_no` is the claim's OA approval), `todo.push` (hub-led:
an approval of the task template per finoa task, its only approver the task's assignee; its
`sys_approval_change` brings the decision back; a todo closed in finoa is acknowledged,
as WeCom has no call to withdraw an approval on its applicant's behalf) and
`status.writeback` (acknowledged: the result is visible in WeCom's approval itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, cast

import httpx
import orjson

from finoa.connectors.base import (
    ApprovalRequestPayload,
    ConnectorManifest,
    DeliveryResult,
    InboundCommand,
    InboundInvalid,
    OAChanges,
    OutboundMessage,
    TaskReport,
    TodoPayload,
)
from finoa.connectors.created_here import created_here
from finoa.connectors.pacing import ReadOnce
from finoa.connectors.vendor_oa import (
    Refusal,
    VendorApi,
    VendorOAConnector,
    mapping_problem,
    vendor_refusal,
)
from finoa.connectors.wecom.inbound import WeComInbound
from finoa.connectors.wecom.manifest import MANIFEST
from finoa.connectors.wecom.mapping import (
    CLAIM_ID_TITLE,
    IN_APPROVAL,
    PASSED,
    REJECTED,
    TASK_ID_TITLE,
    WeComConfig,
    applyevent_body,
    approval_commands,
    claim_key,
    detail_form,
    notice_message_body,
    task_applyevent_body,
    task_key,
)
from finoa.messaging.retry import (
    UNKNOWN_OUTCOME_STATUSES,
    DeliveryError,
    ErrorClass,
    classify_status,
    retry_after_seconds,
)

TOKEN_PARAM = "access_token"
TOKEN_ERRCODES = frozenset({40014, 41001, 42001})
LOOKUP_WINDOW = timedelta(days=7)  # how far back the posted-lookup looks for an approval
MAX_WINDOW = timedelta(days=31)  # oa/getapprovalinfo takes at most 31 days per call
PAGE_SIZE = 100


def _errcode_error(errcode: int, errmsg: str, path: str) -> DeliveryError:
    return vendor_refusal("wecom", errcode, f"WeCom errcode {errcode} from {path}: {errmsg}")


def _answer(response: httpx.Response, path: str) -> dict[str, Any]:
    if not response.is_success:
        retry_after = retry_after_seconds(response)
        raise DeliveryError(
            classify_status(response.status_code),
            f"WeCom HTTP {response.status_code} from {path}: {response.text[:200]}",
            retry_after=retry_after,
            outcome_unknown=response.status_code in UNKNOWN_OUTCOME_STATUSES,
        )
    try:
        answer = orjson.loads(response.content)
        if not isinstance(answer, dict):
            raise TypeError("not an object")
        int(answer.get("errcode", 0))
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise DeliveryError(
            ErrorClass.PERMANENT, f"malformed answer from WeCom's {path}: {exc}"
        ) from exc
    return answer


def task_report(task_id: str, detail: Mapping[str, Any]) -> TaskReport:
    """A task's state from its approval's detail."""
    status = detail.get("sp_status")
    if status == IN_APPROVAL:
        return TaskReport(task_id, "pending")
    if status not in (PASSED, REJECTED):
        return TaskReport(task_id, "unknown")
    decided = [
        d
        for record in detail.get("sp_record") or []
        for d in record.get("details") or []
        if d.get("sp_status") in (PASSED, REJECTED)
    ]
    last = decided[-1] if decided else {}
    sptime = last.get("sptime")
    return TaskReport(
        task_id,
        "approved" if status == PASSED else "rejected",
        approver_id=str((last.get("approver") or {}).get("userid") or "") or None,
        comment=str(last.get("speech") or "") or None,
        decided_at=datetime.fromtimestamp(int(sptime), UTC).isoformat() if sptime else None,
        message_id=f"wecom-task:{detail.get('sp_no')}",
    )


class WeComApi(VendorApi):
    """WeCom's server API as finoa uses it: one instance per connector instance."""

    title = "WeCom"
    token_header = TOKEN_PARAM
    token_scheme = ""
    config: WeComConfig

    def __init__(
        self,
        config: WeComConfig,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config, http, clock=clock)
        self._templates = ReadOnce(self._read_template)

    @classmethod
    def app_of(cls, config: WeComConfig) -> tuple[str, ...]:
        return ("wecom", config.api_base_url, config.corp_id)

    async def request_token(self) -> httpx.Response:
        return await self.send(
            "GET",
            self.config.api_base_url + "/cgi-bin/gettoken",
            params={"corpid": self.config.corp_id, "corpsecret": self.config.corp_secret},
        )

    def read_token(self, response: httpx.Response) -> tuple[str, float]:
        path = "/cgi-bin/gettoken"
        answer = _answer(response, path)
        errcode = int(answer.get("errcode", 0))
        if errcode:
            error = _errcode_error(errcode, str(answer.get("errmsg", "")), path)
            refused = ErrorClass.CONFIG if errcode == 40013 else ErrorClass.AUTH
            raise self.refused_credentials(error, "the corpid/corpsecret", refused)
        return self.token_fields(answer, "access_token", "expires_in")

    async def call(
        self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A call with the access token; a refused token is dropped and the call sent once
        more with a fresh one. The answer (errcode 0), else DeliveryError."""

        def read(response: httpx.Response) -> Any:
            answer = _answer(response, path)
            errcode = int(answer.get("errcode", 0))
            if errcode == 0:
                return answer
            error = _errcode_error(errcode, str(answer.get("errmsg", "")), path)
            return Refusal(error, token_refused=errcode in TOKEN_ERRCODES)

        return cast(
            dict[str, Any],
            await self.authorized_json(
                method,
                self.config.api_base_url + path,
                read,
                body=body,
                params=params,
                token_param=TOKEN_PARAM,
            ),
        )

    # -- approvals (审批) ----------------------------------------------------------------------

    async def template_controls(self, template_id: str) -> list[dict[str, Any]]:
        """`oa/gettemplatedetail`: the template's controls, read once per client."""
        return await self._templates.get(template_id)

    async def _read_template(self, template_id: str) -> list[dict[str, Any]]:
        answer = await self.call(
            "POST", "/cgi-bin/oa/gettemplatedetail", body={"template_id": template_id}
        )
        return list((answer.get("template_content") or {}).get("controls") or [])

    async def apply(self, body: Mapping[str, Any]) -> str:
        answer = await self.call("POST", "/cgi-bin/oa/applyevent", body=body)
        sp_no = answer.get("sp_no")
        if not isinstance(sp_no, str) or not sp_no:
            raise DeliveryError(ErrorClass.PERMANENT, "WeCom's answer has no sp_no")
        return sp_no

    async def detail(self, sp_no: str) -> dict[str, Any]:
        answer = await self.call("POST", "/cgi-bin/oa/getapprovaldetail", body={"sp_no": sp_no})
        info = answer.get("info")
        if not isinstance(info, dict):
            raise DeliveryError(ErrorClass.PERMANENT, f"WeCom has no info for approval {sp_no}")
        return info

    async def list_sp_nos(
        self, since: datetime, until: datetime, filters: Mapping[str, str] | None = None
    ) -> list[str]:
        """`oa/getapprovalinfo`: sp_no of approvals applied in [since, until], every page,
        31 days per call."""
        found: list[str] = []
        start = since
        while start <= until:
            end = min(until, start + MAX_WINDOW - timedelta(seconds=1))
            cursor = ""
            while True:
                body: dict[str, Any] = {
                    "starttime": int(start.timestamp()),
                    "endtime": int(end.timestamp()),
                    "new_cursor": cursor,
                    "size": PAGE_SIZE,
                }
                if filters:
                    body["filters"] = [{"key": k, "value": v} for k, v in filters.items()]
                answer = await self.call("POST", "/cgi-bin/oa/getapprovalinfo", body=body)
                found.extend(str(n) for n in answer.get("sp_no_list") or [])
                cursor = str(answer.get("new_next_cursor") or "")
                if not cursor:
                    break
            start = end + timedelta(seconds=1)
        return found

    # -- contacts (通讯录) ---------------------------------------------------------------------

    async def departments(self, department_id: int | None = None) -> list[dict[str, Any]]:
        """`department/list`: a department and all below it (every one without an id)."""
        params = {"id": department_id} if department_id is not None else {}
        answer = await self.call("GET", "/cgi-bin/department/list", params=params)
        return list(answer.get("department") or [])

    async def users(
        self, department_id: int, *, fetch_child: bool = False, simple: bool = True
    ) -> list[dict[str, Any]]:
        """`user/simplelist` (or `user/list` for the details) of a department."""
        path = "/cgi-bin/user/simplelist" if simple else "/cgi-bin/user/list"
        answer = await self.call(
            "GET",
            path,
            params={"department_id": department_id, "fetch_child": int(fetch_child)},
        )
        return list(answer.get("userlist") or [])

    async def user(self, userid: str) -> dict[str, Any]:
        return await self.call("GET", "/cgi-bin/user/get", params={"userid": userid})


class WeComConnector(VendorOAConnector):
    """The `wecom` connector of one instance."""

    manifest: ClassVar[ConnectorManifest] = MANIFEST
    inbound: ClassVar[type[WeComInbound]] = WeComInbound
    config_type = WeComConfig
    api_type = WeComApi
    api: WeComApi | None

    async def _create_approval(
        self, api: WeComApi, claim: ApprovalRequestPayload
    ) -> dict[str, Any]:
        controls = await api.template_controls(api.config.template_id)
        body = applyevent_body(api.config, claim, controls)
        created = created_here(*claim_key(api.config))
        with created.creating():  # its first callbacks may come before the answer
            sp_no = await api.apply(body)
            created.remember(sp_no, claim["id"])
        return {"oa_approval_id": sp_no}

    async def _push_todo(self, api: WeComApi, todo: TodoPayload) -> dict[str, Any]:
        if todo["op"] != "create":
            # WeCom cannot withdraw an approval for its applicant: the approval stays, and a
            # decision made on it later is refused by the hub (the task is no longer pending).
            return {"status": "closed"}
        creator = api.config.task_creator_userid
        if creator is None:
            raise DeliveryError(ErrorClass.CONFIG, "task_creator_userid: required for hub-led")
        controls = await api.template_controls(api.config.task_template_id)
        body = task_applyevent_body(api.config, todo, creator, controls)
        created = created_here(*task_key(api.config))
        with created.creating():
            sp_no = await api.apply(body)
            created.remember(sp_no, todo["task_id"])
        return {"todo_id": sp_no, "status": "created"}

    async def _notice(self, api: WeComApi, notice: Mapping[str, Any]) -> dict[str, Any]:
        answer = await api.call(
            "POST", "/cgi-bin/message/send", body=notice_message_body(api.config, notice)
        )
        return {"msgid": str(answer.get("msgid") or ""), "status": "sent"}

    async def lookup_one(self, api: WeComApi, message: OutboundMessage) -> DeliveryResult | None:
        """Did it already happen? An approval of the template whose finoa单号 (or finoa任务)
        control is this claim's (task's), applied by the same person in the last week."""
        payload = message.payload
        now = datetime.now(UTC)
        if message.action == "approval.create":
            template, creator = api.config.template_id, str(payload["applicant_id"])
            title, wanted = CLAIM_ID_TITLE, str(payload["id"])
        elif message.action == "todo.push" and payload.get("op") == "create":
            if api.config.task_creator_userid is None:
                return None
            template, creator = api.config.task_template_id, api.config.task_creator_userid
            title, wanted = TASK_ID_TITLE, str(payload["task_id"])
        else:
            return None
        filters = {"template_id": template, "creator": creator}
        for sp_no in await api.list_sp_nos(now - LOOKUP_WINDOW, now, filters):
            if detail_form(await api.detail(sp_no)).get(title) == wanted:
                if message.action == "approval.create":
                    return DeliveryResult(response={"oa_approval_id": sp_no})
                return DeliveryResult(response={"todo_id": sp_no, "status": "created"})
        return None

    async def task_reports(self, task_ids: Sequence[str]) -> list[TaskReport]:
        """What WeCom holds on finoa's tasks (hub-led): the per-task approvals the
        `task_creator_userid` applied in the last 31 days, read until every task asked about
        is found. A decision carries the message id its callback has, so a late callback is
        a duplicate; a task with no approval is `unknown`."""
        api: WeComApi = self.configured()
        wanted = set(task_ids)
        found: dict[str, TaskReport] = {}
        creator = api.config.task_creator_userid
        if creator is not None and wanted:
            now = datetime.now(UTC)
            filters = {"template_id": api.config.task_template_id, "creator": creator}
            for sp_no in reversed(await api.list_sp_nos(now - MAX_WINDOW, now, filters)):
                detail = await api.detail(sp_no)
                task_id = str(detail_form(detail).get(TASK_ID_TITLE) or "")
                if task_id in wanted and task_id not in found:
                    found[task_id] = task_report(task_id, detail)
                if len(found) == len(wanted):
                    break
        return [found.get(t) or TaskReport(t, "unknown") for t in task_ids]

    async def approval_changes(self, since: datetime, until: datetime) -> OAChanges:
        """Approvals of the expense and task templates applied between `since` and `until`
        (WeCom lists by apply time), as the commands their callbacks carry."""
        api: WeComApi = self.configured()
        commands: list[InboundCommand] = []
        problems: list[str] = []
        templates = dict.fromkeys((api.config.template_id, api.config.task_template_id))
        for template in templates:
            for sp_no in await api.list_sp_nos(since, until, {"template_id": template}):
                try:
                    commands.extend(approval_commands(api.config, await api.detail(sp_no)))
                except InboundInvalid as exc:
                    problems.append(mapping_problem(f"approval {sp_no}", exc))
        return OAChanges(tuple(commands), tuple(problems))
