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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import orjson

from finoa.connectors.auth import CachedToken, delivery_error
from finoa.connectors.base import (
    AccessToken,
    ApprovalRequestPayload,
    ConnectorManifest,
    DeliveryResult,
    HealthReport,
    InboundCommand,
    InboundInvalid,
    OAChanges,
    OutboundMessage,
    TaskReport,
    TodoPayload,
)
from finoa.connectors.created_here import created_here
from finoa.connectors.pacing import ReadOnce, app_pacer, each_call
from finoa.connectors.wecom.inbound import WeComInbound
from finoa.connectors.wecom.manifest import MANIFEST
from finoa.connectors.wecom.mapping import (
    CLAIM_ID_TITLE,
    IN_APPROVAL,
    PASSED,
    REJECTED,
    TASK_ID_TITLE,
    WeComConfig,
    WireMappingError,
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
    classify_vendor_code,
    retry_after_seconds,
)

TOKEN_PARAM = "access_token"
REFRESH_MARGIN_SECONDS = 300.0
TOKEN_ERRCODES = frozenset({40014, 41001, 42001})
LOOKUP_WINDOW = timedelta(days=7)  # how far back the posted-lookup looks for an approval
MAX_WINDOW = timedelta(days=31)  # oa/getapprovalinfo takes at most 31 days per call
PAGE_SIZE = 100


def _errcode_error(errcode: int, errmsg: str, path: str) -> DeliveryError:
    error_class = classify_vendor_code("wecom", str(errcode))
    return DeliveryError(
        error_class,
        f"WeCom errcode {errcode} from {path}: {errmsg}",
        retry_after=1.0 if error_class is ErrorClass.RATE_LIMITED else None,
    )


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


class WeComApi:
    """WeCom's server API as finoa uses it: one instance per connector instance."""

    def __init__(
        self,
        config: WeComConfig,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._http = http
        self.auth = CachedToken(
            self._fetch_token,
            clock=clock,
            refresh_margin_seconds=REFRESH_MARGIN_SECONDS,
            header=TOKEN_PARAM,
            scheme="",
        )
        self._clock = clock
        self.pacer = app_pacer(
            config.rate_limit_per_second, "wecom", config.api_base_url, config.corp_id
        )
        self._templates = ReadOnce(self._read_template)

    async def _fetch_token(self) -> AccessToken:
        started = self._clock()
        path = "/cgi-bin/gettoken"
        await self.pacer.slot()
        try:
            response = await self._http.get(
                self.config.api_base_url + path,
                params={"corpid": self.config.corp_id, "corpsecret": self.config.corp_secret},
                timeout=self.config.timeout_seconds,
            )
        except Exception as exc:
            raise DeliveryError.from_exception(exc) from exc
        answer = _answer(response, path)
        errcode = int(answer.get("errcode", 0))
        if errcode:
            error = self.pacer.heard(_errcode_error(errcode, str(answer.get("errmsg", "")), path))
            if error.error_class is ErrorClass.RATE_LIMITED or errcode == -1:
                raise error
            raise DeliveryError(
                ErrorClass.CONFIG if errcode == 40013 else ErrorClass.AUTH,
                f"WeCom refused the corpid/corpsecret: {error.reason}",
            )
        value, lifetime = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(value, str) or not value or not isinstance(lifetime, int):
            raise DeliveryError(
                ErrorClass.PERMANENT, "malformed answer from WeCom's gettoken: no access_token"
            )
        return AccessToken(value, started + lifetime)

    async def call(
        self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A call with the access token; a refused token is dropped and the call sent once
        more with a fresh one. The answer (errcode 0), else DeliveryError."""
        url = self.config.api_base_url + path
        content = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else {}
        for attempt in (1, 2):
            token = await self.auth.headers()
            await self.pacer.slot()
            try:
                response = await self._http.request(
                    method,
                    url,
                    params={**(params or {}), TOKEN_PARAM: token[TOKEN_PARAM]},
                    content=content,
                    headers=headers,
                    timeout=self.config.timeout_seconds,
                )
            except Exception as exc:
                raise delivery_error(exc) from exc
            try:
                answer = _answer(response, path)
            except DeliveryError as exc:
                raise self.pacer.heard(exc) from None
            errcode = int(answer.get("errcode", 0))
            if errcode == 0:
                self.pacer.answered()
                return answer
            if errcode in TOKEN_ERRCODES and attempt == 1:
                await self.auth.rejected(token)
                continue
            raise self.pacer.heard(_errcode_error(errcode, str(answer.get("errmsg", "")), path))
        raise AssertionError("unreachable")  # pragma: no cover

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


class WeComConnector:
    """The `wecom` connector of one instance."""

    manifest: ClassVar[ConnectorManifest] = MANIFEST
    inbound: ClassVar[type[WeComInbound]] = WeComInbound
    uses_mappings: ClassVar[bool] = True  # it receives the `mappings:` overrides

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        self._config_error = ""
        self.api: WeComApi | None = None
        try:
            self.api = WeComApi(WeComConfig.parse(config), http)
        except ValueError as exc:
            self._config_error = f"wecom config: {exc}"

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        WeComConfig.parse(config)

    @property
    def auth(self) -> CachedToken | None:
        return self.api.auth if self.api is not None else None

    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """Each message on its own call (WeCom has no batch calls), four at a time (paced at
        the app's quota; a chunk holds no two messages of one document); one result each."""
        if self.api is None:
            error = DeliveryError(ErrorClass.CONFIG, self._config_error)
            return [DeliveryResult(error=error) for _ in messages]
        api = self.api
        return await each_call(messages, lambda message: self._one(api, message))

    async def _one(self, api: WeComApi, message: OutboundMessage) -> DeliveryResult:
        handlers: dict[str, Callable[[WeComApi, Any], Awaitable[dict[str, Any]]]] = {
            "approval.create": self._create_approval,
            "todo.push": self._push_todo,
            "status.writeback": self._status,
            "notice.send": self._notice,
        }
        handler = handlers.get(message.action)
        if handler is None:
            reason = f"wecom has no action {message.action!r}; it knows {list(handlers)}"
            return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, reason))
        try:
            return DeliveryResult(response=await handler(api, message.payload))
        except WireMappingError as exc:
            return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, f"mapping: {exc}"))
        except Exception as exc:
            return DeliveryResult(error=delivery_error(exc))

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

    async def _status(self, api: WeComApi, status: Mapping[str, Any]) -> dict[str, Any]:
        return {"status": "acknowledged"}

    async def _notice(self, api: WeComApi, notice: Mapping[str, Any]) -> dict[str, Any]:
        answer = await api.call(
            "POST", "/cgi-bin/message/send", body=notice_message_body(api.config, notice)
        )
        return {"msgid": str(answer.get("msgid") or ""), "status": "sent"}

    async def lookup(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult | None]:
        """Did it already happen? An approval of the template whose finoa单号 (or finoa任务)
        control is this claim's (task's), applied by the same person in the last week."""
        if self.api is None:
            error = DeliveryError(ErrorClass.CONFIG, self._config_error)
            return [DeliveryResult(error=error) for _ in messages]
        results: list[DeliveryResult | None] = []
        for message in messages:
            try:
                results.append(await self._lookup_one(self.api, message))
            except Exception as exc:
                results.append(DeliveryResult(error=delivery_error(exc)))
        return results

    async def _lookup_one(self, api: WeComApi, message: OutboundMessage) -> DeliveryResult | None:
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
        if self.api is None:
            raise DeliveryError(ErrorClass.CONFIG, self._config_error)
        api = self.api
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
        if self.api is None:
            raise DeliveryError(ErrorClass.CONFIG, self._config_error)
        api = self.api
        commands: list[InboundCommand] = []
        problems: list[str] = []
        templates = dict.fromkeys((api.config.template_id, api.config.task_template_id))
        for template in templates:
            for sp_no in await api.list_sp_nos(since, until, {"template_id": template}):
                try:
                    commands.extend(approval_commands(api.config, await api.detail(sp_no)))
                except InboundInvalid as exc:
                    first = exc.errors[0]
                    path = ".".join(str(p) for p in first["loc"])
                    problems.append(f"approval {sp_no}: {path}: {first['msg']}")
        return OAChanges(tuple(commands), tuple(problems))

    async def health(self) -> HealthReport:
        """An access token for the corpid and secret, fetched now."""
        if self.api is None:
            return HealthReport(False, self._config_error)
        started = time.perf_counter()
        try:
            await self.api._fetch_token()
        except DeliveryError as exc:
            return HealthReport(False, exc.reason)
        latency = round((time.perf_counter() - started) * 1000, 1)
        return HealthReport(True, f"WeCom issued a token in {latency} ms", latency)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""
