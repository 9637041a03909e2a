"""The hub's client to DingTalk's open API, and the connector's outbound side.

Auth: `POST /v1.0/oauth2/accessToken` with the app's AppKey and AppSecret gives a token for
7200 seconds; it is cached (`CachedToken`) and fetched again 5 minutes before it expires, or
at once when DingTalk refuses it (HTTP 401 `InvalidAuthentication` on the v1.0 API, errcode
40014 / 42001 on the topapi). Errors are classed by DingTalk's own codes in the one table of
`finoa.messaging.retry` (`VENDOR_CODE_CLASSES["dingtalk"]`), else by the HTTP status.

Actions: `approval.create` (OA-led: start the claim's 审批 instance; the answer carries its
id), `todo.push` (hub-led: a 待办 for the approver, marked done when decided, by the id it
was made with) and
`status.writeback` (DingTalk has no place for a foreign status on an instance it runs; the
result is visible in DingTalk itself, so this is acknowledged without a call).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, cast

import httpx
import orjson

from finoa.connectors.base import (
    ApprovalRequestPayload,
    ApprovalResult,
    ConnectorManifest,
    DeliveryResult,
    OAChanges,
    OutboundMessage,
    TodoPayload,
)
from finoa.connectors.created_here import created_here
from finoa.connectors.dingtalk.inbound import DingTalkInbound
from finoa.connectors.dingtalk.manifest import MANIFEST
from finoa.connectors.dingtalk.mapping import (
    CLAIM_ID_FIELD,
    DingTalkConfig,
    claim_from_instance,
    create_todo_body,
    form_value,
    instance_key,
    start_instance_body,
    work_notice_body,
)
from finoa.connectors.pacing import ReadOnce
from finoa.connectors.vendor_oa import (
    Refusal,
    SweepFindings,
    VendorApi,
    VendorOAConnector,
    vendor_refusal,
)
from finoa.messaging.retry import (
    UNKNOWN_OUTCOME_STATUSES,
    DeliveryError,
    ErrorClass,
    retry_after_seconds,
)

TOKEN_HEADER = "x-acs-dingtalk-access-token"
TOKEN_ERRCODES = frozenset({40014, 42001})
MAX_REMEMBERED_TODOS = 100_000  # open todos whose ids are kept for closing, per process
LOOKUP_WINDOW = timedelta(days=7)  # how far back the posted-lookup looks for an instance
PAGE_SIZE = 20  # ListProcessInstanceIds takes at most 20 per page
# An instance's (status, result) as GetProcessInstance reports it -> its final result.
INSTANCE_STATUS_RESULTS = {
    ("COMPLETED", "agree"): ApprovalResult.AGREE,
    ("COMPLETED", "refuse"): ApprovalResult.REFUSE,
    ("TERMINATED", ""): ApprovalResult.REVOKE,
}


def _vendor_error(response: httpx.Response) -> DeliveryError:
    """A DeliveryError from a DingTalk error answer, classed by its code."""
    code = ""
    message = response.text[:300]
    try:
        body = orjson.loads(response.content)
        if isinstance(body, dict):
            code = str(body.get("code") or body.get("errcode") or "")
            message = str(body.get("message") or body.get("errmsg") or message)
    except orjson.JSONDecodeError:
        pass
    return vendor_refusal(
        "dingtalk",
        code,
        f"DingTalk {response.status_code} {code or '-'} from {response.request.url.path}: "
        + message,
        status=response.status_code,
        retry_after=retry_after_seconds(response),
        outcome_unknown=response.status_code in UNKNOWN_OUTCOME_STATUSES,
    )


class DingTalkApi(VendorApi):
    """DingTalk's open API as finoa uses it: one instance per connector instance."""

    title = "DingTalk"
    token_header = TOKEN_HEADER
    token_scheme = ""

    config: DingTalkConfig

    @classmethod
    def app_of(cls, config: DingTalkConfig) -> tuple[str, ...]:
        return ("dingtalk", config.api_base_url, config.app_key)

    async def request_token(self) -> httpx.Response:
        return await self.send(
            "POST",
            self.config.api_base_url + "/v1.0/oauth2/accessToken",
            json={"appKey": self.config.app_key, "appSecret": self.config.app_secret},
        )

    def read_token(self, response: httpx.Response) -> tuple[str, float]:
        if not response.is_success:
            raise self.refused_credentials(_vendor_error(response), "the app key")
        return self.token_fields(response.content, "accessToken", "expireIn")

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """A v1.0 call with the access token (refreshed once on 401); the answer's JSON, or
        None for a 404 when `missing_ok`. Raises DeliveryError."""

        def read(response: httpx.Response) -> Any:
            if response.status_code == 404 and missing_ok:
                return None
            if not response.is_success:
                return Refusal(_vendor_error(response), token_refused=response.status_code == 401)
            try:
                return orjson.loads(response.content) if response.content else {}
            except orjson.JSONDecodeError as exc:
                raise DeliveryError(
                    ErrorClass.PERMANENT, f"DingTalk answered non-JSON to {path}: {exc}"
                ) from exc

        return await self.authorized_json(
            method, self.config.api_base_url + path, read, body=body, params=params
        )

    async def topapi(self, path: str, body: Mapping[str, Any], *, whole: bool = False) -> Any:
        """A topapi call (`?access_token=`; errors as `errcode` with HTTP 200); the `result`
        (`whole`: the whole answer). A refused token is dropped and the call sent once more
        with a fresh one."""

        def read(response: httpx.Response) -> Any:
            if not response.is_success:
                return Refusal(_vendor_error(response))
            try:
                answer = orjson.loads(response.content)
                errcode = int(answer.get("errcode", 0))
            except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
                raise DeliveryError(
                    ErrorClass.PERMANENT, f"malformed topapi answer: {exc}"
                ) from exc
            if errcode == 0:
                return answer if whole else answer.get("result")
            reason = f"DingTalk errcode {errcode} from {path}: {answer.get('errmsg', '')}"
            error = vendor_refusal("dingtalk", errcode, reason)
            return Refusal(error, token_refused=errcode in TOKEN_ERRCODES)

        return await self.authorized_json(
            "POST",
            self.config.oapi_base_url + path,
            read,
            body=dict(body),
            token_param="access_token",
        )

    # -- workflow (审批) ----------------------------------------------------------------------

    async def start_instance(self, body: Mapping[str, Any]) -> str:
        answer = await self.call("POST", "/v1.0/workflow/processInstances", body=body)
        instance_id = answer.get("instanceId") if isinstance(answer, dict) else None
        if not isinstance(instance_id, str) or not instance_id:
            raise DeliveryError(ErrorClass.PERMANENT, "DingTalk's answer has no instanceId")
        return instance_id

    async def get_instance(self, instance_id: str) -> dict[str, Any]:
        answer = await self.call(
            "GET", "/v1.0/workflow/processInstances", params={"processInstanceId": instance_id}
        )
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, dict):
            raise DeliveryError(
                ErrorClass.PERMANENT, f"DingTalk has no result for instance {instance_id}"
            )
        return result

    async def list_instance_ids(
        self, start_ms: int, end_ms: int, *, user_ids: Sequence[str] | None = None
    ) -> list[str]:
        """Ids of the form's instances started in [start_ms, end_ms], every page."""
        found: list[str] = []
        next_token: Any = 0
        while True:
            body: dict[str, Any] = {
                "processCode": self.config.process_code,
                "startTime": start_ms,
                "endTime": end_ms,
                "nextToken": next_token,
                "maxResults": PAGE_SIZE,
            }
            if user_ids:
                body["userIds"] = list(user_ids)
            answer = await self.call(
                "POST", "/v1.0/workflow/processes/instanceIds/query", body=body
            )
            result = answer.get("result") or {}
            found.extend(str(i) for i in result.get("list") or [])
            next_token = result.get("nextToken")
            if next_token in (None, "", 0, "0"):
                return found

    # -- todo (待办) ---------------------------------------------------------------------------

    async def create_todo(self, union_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            await self.call(
                "POST",
                f"/v1.0/todo/users/{union_id}/tasks",
                body=body,
                params={"operatorId": union_id},
            ),
        )

    async def todo_by_source(self, union_id: str, source_id: str) -> dict[str, Any] | None:
        return cast(
            dict[str, Any] | None,
            await self.call(
                "GET", f"/v1.0/todo/users/{union_id}/tasks/sources/{source_id}", missing_ok=True
            ),
        )

    async def update_todo(self, union_id: str, todo_id: str, body: Mapping[str, Any]) -> bool:
        """False when DingTalk has no such todo (deleted in DingTalk)."""
        answer = await self.call(
            "PUT",
            f"/v1.0/todo/users/{union_id}/tasks/{todo_id}",
            body=body,
            params={"operatorId": union_id},
            missing_ok=True,
        )
        return answer is not None

    async def delete_todo(self, union_id: str, todo_id: str) -> None:
        await self.call(
            "DELETE",
            f"/v1.0/todo/users/{union_id}/tasks/{todo_id}",
            params={"operatorId": union_id},
        )

    # -- contacts (通讯录) ---------------------------------------------------------------------

    async def send_work_notice(self, body: Mapping[str, Any]) -> str:
        """`topapi/message/corpconversation/asyncsend_v2`: a work notification; its task id."""
        answer = await self.topapi(
            "/topapi/message/corpconversation/asyncsend_v2", body, whole=True
        )
        task_id = answer.get("task_id") if isinstance(answer, dict) else None
        if task_id is None:
            raise DeliveryError(ErrorClass.PERMANENT, "DingTalk's answer has no task_id")
        return str(task_id)

    async def user(self, user_id: str) -> dict[str, Any]:
        """`topapi/v2/user/get`: one user (userid, unionid, name, dept_id_list, active)."""
        return cast(dict[str, Any], await self.topapi("/topapi/v2/user/get", {"userid": user_id}))

    async def sub_departments(self, dept_id: int = 1) -> list[dict[str, Any]]:
        """`topapi/v2/department/listsub`: the departments directly under `dept_id`."""
        return list(await self.topapi("/topapi/v2/department/listsub", {"dept_id": dept_id}) or [])

    async def department_users(self, dept_id: int) -> list[dict[str, Any]]:
        """`topapi/v2/user/list`: every user of a department, page by page."""
        users: list[dict[str, Any]] = []
        cursor = 0
        while True:
            page = await self.topapi(
                "/topapi/v2/user/list", {"dept_id": dept_id, "cursor": cursor, "size": 100}
            )
            users.extend(page.get("list") or [])
            if not page.get("has_more"):
                return users
            cursor = int(page["next_cursor"])


class DingTalkConnector(VendorOAConnector):
    """The `dingtalk` connector of one instance."""

    manifest: ClassVar[ConnectorManifest] = MANIFEST
    inbound: ClassVar[type[DingTalkInbound]] = DingTalkInbound
    config_type = DingTalkConfig
    api_type = DingTalkApi
    api: DingTalkApi | None

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        super().__init__(config, http)
        self._union_ids = ReadOnce(self._read_union_id)
        # task id -> the todo DingTalk made for it (this process's creations): closed with
        # one call instead of a look-up by sourceId first
        self._todos: OrderedDict[str, str] = OrderedDict()

    async def _create_approval(
        self, api: DingTalkApi, claim: ApprovalRequestPayload
    ) -> dict[str, Any]:
        body = start_instance_body(api.config, claim)
        created = created_here(*instance_key(api.config))
        with created.creating():  # its first callbacks may come before the answer
            instance_id = await api.start_instance(body)
            created.remember(instance_id, claim["id"])
        return {"oa_approval_id": instance_id}

    async def union_id(self, api: DingTalkApi, user_id: str) -> str:
        """The unionId of a DingTalk user (todos are addressed by it), read once."""
        return await self._union_ids.get(user_id)

    async def _read_union_id(self, user_id: str) -> str:
        assert self.api is not None
        user = await self.api.user(user_id)
        known = str(user.get("unionid") or "")
        if not known:
            raise DeliveryError(ErrorClass.PERMANENT, f"DingTalk user {user_id} has no unionid")
        return known

    async def _push_todo(self, api: DingTalkApi, todo: TodoPayload) -> dict[str, Any]:
        union_id = await self.union_id(api, todo["assignee_id"])
        if todo["op"] == "create":
            if api.config.callback_url is None:
                raise DeliveryError(ErrorClass.CONFIG, "callback_url: required for todos (hub-led)")
            created = await api.create_todo(union_id, create_todo_body(api.config, todo, union_id))
            if created.get("id"):
                self._todos[todo["task_id"]] = str(created["id"])
                while len(self._todos) > MAX_REMEMBERED_TODOS:
                    self._todos.popitem(last=False)
            return {"todo_id": created.get("id"), "status": "created"}
        known = self._todos.pop(todo["task_id"], None)
        if known is not None:
            found = await api.update_todo(union_id, known, {"done": True})
            return {"todo_id": known if found else None, "status": "closed"}
        existing = await api.todo_by_source(union_id, todo["task_id"])
        if existing is None or existing.get("done"):
            return {"todo_id": existing.get("id") if existing else None, "status": "closed"}
        await api.update_todo(union_id, str(existing["id"]), {"done": True})
        return {"todo_id": existing["id"], "status": "closed"}

    async def _notice(self, api: DingTalkApi, notice: Mapping[str, Any]) -> dict[str, Any]:
        task_id = await api.send_work_notice(work_notice_body(api.config, notice))
        return {"task_id": task_id, "status": "sent"}

    async def lookup_one(self, api: DingTalkApi, message: OutboundMessage) -> DeliveryResult | None:
        """Did it already happen? An instance of this claim (its 单号 in the form) started
        by the claim's applicant in the last week; a todo with the task's id as sourceId."""
        payload = message.payload
        if message.action == "approval.create":
            now = datetime.now(UTC)
            ids = await api.list_instance_ids(
                int((now - LOOKUP_WINDOW).timestamp() * 1000),
                int(now.timestamp() * 1000),
                user_ids=[str(payload["applicant_id"])],
            )
            for instance_id in ids:
                instance = await api.get_instance(instance_id)
                if form_value(instance, CLAIM_ID_FIELD) == payload["id"]:
                    return DeliveryResult(response={"oa_approval_id": instance_id})
            return None
        if message.action == "todo.push" and payload.get("op") == "create":
            union_id = await self.union_id(api, str(payload["assignee_id"]))
            existing = await api.todo_by_source(union_id, str(payload["task_id"]))
            if existing is not None:
                return DeliveryResult(response={"todo_id": existing.get("id"), "status": "created"})
        return None

    async def approval_changes(self, since: datetime, until: datetime) -> OAChanges:
        """The form's instances started between `since` and `until` (DingTalk lists by start
        time), as the commands their callbacks carry: an instance an employee started is a
        claim, a finished, revoked or deleted one concludes its claim."""
        api: DingTalkApi = self.configured()
        ids = await api.list_instance_ids(
            int(since.timestamp() * 1000), int(until.timestamp() * 1000)
        )
        found = SweepFindings("dingtalk")
        for instance_id in ids:
            instance = await api.get_instance(instance_id)
            claim_id = form_value(instance, CLAIM_ID_FIELD)
            if claim_id is None and not found.started(
                claim_from_instance, api.config, instance_id, instance
            ):
                continue
            state = (str(instance.get("status")), str(instance.get("result") or ""))
            result = INSTANCE_STATUS_RESULTS.get(state)
            if result is not None:
                found.concluded(instance_id, result, claim_id=claim_id)
        return found.changes()
