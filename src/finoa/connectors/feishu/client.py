"""The hub's client to Feishu's open API, and the connector's outbound side.

Auth: `POST /open-apis/auth/v3/tenant_access_token/internal` with the app's App ID and App
Secret gives a tenant access token for `expire` seconds (7200); it is cached (`CachedToken`)
and fetched again 5 minutes before it expires, or at once when Feishu refuses it (code
99991663 invalid or expired, 99991661 missing), after which the call is sent once more.

Every answer is `{"code", "msg", "data"}`; a code other than 0 is an error, classed by
Feishu's own codes in the one table of `finoa.messaging.retry` (`VENDOR_CODE_CLASSES
["feishu"]`), else by the HTTP status. Calls are paced to `rate_limit_per_second`; a
refusal for frequency (HTTP 429, code 99991400) is waited out once (up to
`MAX_BACKOFF_SECONDS`, by `x-ogw-ratelimit-reset`) and then left to the dispatcher's backoff.

Actions: `approval.create` (OA-led: start the claim's 审批 instance under a `uuid` derived
from the claim; a repeat answers 60012 and the instance already made is looked up),
`todo.push` (hub-led: each approval task as an external instance in the Approval Center,
sent again DONE when decided) and `status.writeback` (the result shows in Feishu itself; it
is acknowledged without a call).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

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
from finoa.connectors.feishu.inbound import FeishuInbound, instance_result
from finoa.connectors.feishu.manifest import MANIFEST
from finoa.connectors.feishu.mapping import (
    CLAIM_ID_WIDGET,
    FeishuConfig,
    claim_from_instance,
    create_instance_body,
    create_uuid,
    external_instance_body,
    notice_message_body,
    widget_value,
)
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

TOKEN_CODES = frozenset({99991661, 99991663, 99991668, 99991677})
UUID_CONFLICT_CODE = 60012
MAX_BACKOFF_SECONDS = 2.0
LOOKUP_WINDOW = timedelta(days=7)  # how far back an instance of a claim is looked for
PAGE_SIZE = 100  # the most instances Feishu lists per page


class FeishuError(DeliveryError):
    """A DeliveryError carrying Feishu's own `code`."""

    def __init__(self, code: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.code = code


def _answer(response: httpx.Response) -> tuple[int, str, Any]:
    """`(code, msg, data)` of a Feishu answer; code -1 when it is not Feishu's shape."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return -1, response.text[:300], None
    if not isinstance(body, dict) or isinstance(body.get("code"), bool):
        return -1, response.text[:300], None
    try:
        code = int(body.get("code", -1))
    except (TypeError, ValueError):
        return -1, response.text[:300], None
    return code, str(body.get("msg") or ""), body


def _error(response: httpx.Response, code: int, msg: str) -> FeishuError:
    retry_after = retry_after_seconds(response)
    reset = response.headers.get("x-ogw-ratelimit-reset")
    if retry_after is None and reset and reset.isdigit():
        retry_after = float(reset)
    error = vendor_refusal(
        "feishu",
        code,
        f"Feishu {response.status_code} code {code} from {response.request.url.path}: {msg}",
        status=response.status_code if response.status_code >= 400 else None,
        retry_after=retry_after,
        outcome_unknown=response.status_code in UNKNOWN_OUTCOME_STATUSES,
    )
    return FeishuError(
        code,
        error.error_class,
        error.reason,
        retry_after=error.retry_after,
        outcome_unknown=error.outcome_unknown,
    )


class FeishuApi(VendorApi):
    """Feishu's open API as finoa uses it: one instance per connector instance."""

    title = "Feishu"
    wait_out_once = MAX_BACKOFF_SECONDS
    json_type = "application/json; charset=utf-8"
    config: FeishuConfig

    async def request_token(self) -> httpx.Response:
        return await self.send(
            "POST",
            self.config.base_url + "/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": self.config.app_id, "app_secret": self.config.app_secret},
        )

    def read_token(self, response: httpx.Response) -> tuple[str, float]:
        code, msg, body = _answer(response)
        if code != 0:
            raise self.refused_credentials(_error(response, code, msg), "the app")
        return self.token_fields(body, "tenant_access_token", "expire")

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """One call with the tenant access token; the answer's `data`. A refused token is
        dropped and the call sent once more with a fresh one; a frequency refusal is waited
        out once. Raises FeishuError (a DeliveryError)."""

        def read(response: httpx.Response) -> Any:
            code, msg, answer = _answer(response)
            if code == 0 and response.is_success:
                return answer.get("data") or {}
            return Refusal(_error(response, code, msg), token_refused=code in TOKEN_CODES)

        return await self.authorized_json(
            method, self.config.base_url + path, read, body=body, params=params
        )

    # -- approval (审批) ----------------------------------------------------------------------

    async def create_instance(self, body: Mapping[str, Any]) -> str:
        data = await self.call(
            "POST",
            "/open-apis/approval/v4/instances",
            body=body,
            params={"user_id_type": "user_id"},
        )
        code = data.get("instance_code") if isinstance(data, dict) else None
        if not isinstance(code, str) or not code:
            raise DeliveryError(ErrorClass.PERMANENT, "Feishu's answer has no instance_code")
        return code

    async def get_instance(self, instance_code: str) -> dict[str, Any]:
        data = await self.call(
            "GET",
            f"/open-apis/approval/v4/instances/{instance_code}",
            params={"user_id_type": "user_id"},
        )
        if not isinstance(data, dict) or not data:
            raise DeliveryError(ErrorClass.PERMANENT, f"Feishu has no instance {instance_code}")
        return data

    async def list_instance_codes(self, start_ms: int, end_ms: int) -> list[str]:
        """Codes of the form's instances started in [start_ms, end_ms], every page."""
        found: list[str] = []
        token = ""
        while True:
            params: dict[str, Any] = {
                "approval_code": self.config.approval_code,
                "start_time": str(start_ms),
                "end_time": str(end_ms),
                "page_size": PAGE_SIZE,
            }
            if token:
                params["page_token"] = token
            data = await self.call("GET", "/open-apis/approval/v4/instances", params=params)
            found.extend(str(c) for c in data.get("instance_code_list") or [])
            token = str(data.get("page_token") or "")
            if not data.get("has_more") or not token:
                return found

    async def subscribe(self) -> None:
        """Subscribe the app to the form's `approval_instance` / `approval_task` events."""
        await self.call(
            "POST", f"/open-apis/approval/v4/approvals/{self.config.approval_code}/subscribe"
        )

    async def send_message(self, body: Mapping[str, Any]) -> str:
        """`POST /open-apis/im/v1/messages`: one message from the app's bot; its message_id."""
        data = await self.call(
            "POST", "/open-apis/im/v1/messages", body=body, params={"receive_id_type": "user_id"}
        )
        message_id = data.get("message_id") if isinstance(data, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise DeliveryError(ErrorClass.PERMANENT, "Feishu's answer has no message_id")
        return message_id

    async def sync_external_instance(self, body: Mapping[str, Any]) -> dict[str, Any]:
        data = await self.call("POST", "/open-apis/approval/v4/external_instances", body=body)
        return dict(data.get("data") or data) if isinstance(data, dict) else {}

    # -- contacts (通讯录) ---------------------------------------------------------------------

    async def user(self, user_id: str) -> dict[str, Any]:
        """`GET /open-apis/contact/v3/users/:user_id`: one user (user_id, name, departments)."""
        data = await self.call(
            "GET",
            f"/open-apis/contact/v3/users/{user_id}",
            params={"user_id_type": "user_id", "department_id_type": "department_id"},
        )
        return dict(data.get("user") or {})

    async def departments(self, parent: str = "0") -> list[dict[str, Any]]:
        """Every department under `parent` (0: the root), every page."""
        found: list[dict[str, Any]] = []
        token = ""
        while True:
            params: dict[str, Any] = {
                "department_id_type": "department_id",
                "fetch_child": "true",
                "page_size": 50,
            }
            if token:
                params["page_token"] = token
            data = await self.call(
                "GET", f"/open-apis/contact/v3/departments/{parent}/children", params=params
            )
            found.extend(data.get("items") or [])
            token = str(data.get("page_token") or "")
            if not data.get("has_more") or not token:
                return found

    async def department_users(self, department_id: str) -> list[dict[str, Any]]:
        """Every user directly in a department, every page."""
        found: list[dict[str, Any]] = []
        token = ""
        while True:
            params: dict[str, Any] = {
                "department_id": department_id,
                "department_id_type": "department_id",
                "user_id_type": "user_id",
                "page_size": 50,
            }
            if token:
                params["page_token"] = token
            data = await self.call(
                "GET", "/open-apis/contact/v3/users/find_by_department", params=params
            )
            found.extend(data.get("items") or [])
            token = str(data.get("page_token") or "")
            if not data.get("has_more") or not token:
                return found


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class FeishuConnector(VendorOAConnector):
    """The `feishu` connector of one instance."""

    manifest: ClassVar[ConnectorManifest] = MANIFEST
    inbound: ClassVar[type[FeishuInbound]] = FeishuInbound
    config_type = FeishuConfig
    api_type = FeishuApi
    calls_at_once = 1  # in turn, as Feishu's approval API takes them
    token_name = "tenant access token"
    api: FeishuApi | None

    async def _create_approval(
        self, api: FeishuApi, claim: ApprovalRequestPayload
    ) -> dict[str, Any]:
        body = create_instance_body(api.config, claim)
        try:
            code = await api.create_instance(body)
        except FeishuError as exc:
            if exc.code != UUID_CONFLICT_CODE:
                raise
            found = await self.instance_of_claim(api, claim["id"])
            if found is None:
                raise DeliveryError(
                    ErrorClass.PERMANENT,
                    f"Feishu says uuid {body['uuid']} is taken (60012) but lists no instance "
                    f"of claim {claim['id']} in the last {LOOKUP_WINDOW.days} days",
                ) from None
            return {"oa_approval_id": found, "status": "already_created"}
        return {"oa_approval_id": code}

    async def instance_of_claim(self, api: FeishuApi, claim_id: str) -> str | None:
        """The instance finoa created for a claim (its create `uuid`), from the last week."""
        wanted = create_uuid(claim_id)
        now = datetime.now(UTC)
        for code in await api.list_instance_codes(_ms(now - LOOKUP_WINDOW), _ms(now)):
            instance = await api.get_instance(code)
            if str(instance.get("uuid") or "").lower() == wanted:
                return code
        return None

    async def _push_todo(self, api: FeishuApi, todo: TodoPayload) -> dict[str, Any]:
        status = "PENDING" if todo["op"] == "create" else "TERMINATED"
        if status == "PENDING" and api.config.callback_url is None:
            raise DeliveryError(ErrorClass.CONFIG, "callback_url: required for todos (hub-led)")
        body = external_instance_body(
            api.config, todo, status=status, now_ms=_ms(datetime.now(UTC))
        )
        await api.sync_external_instance(body)
        return {
            "external_instance": todo["task_id"],
            "status": "created" if status == "PENDING" else "closed",
        }

    async def _notice(self, api: FeishuApi, notice: Mapping[str, Any]) -> dict[str, Any]:
        message_id = await api.send_message(notice_message_body(notice))
        return {"message_id": message_id, "status": "sent"}

    async def lookup_one(self, api: FeishuApi, message: OutboundMessage) -> DeliveryResult | None:
        """Did it already happen? An instance under the claim's create uuid; an external
        instance is an upsert by its id, so sending it again is harmless (None)."""
        if message.action != "approval.create":
            return None
        found = await self.instance_of_claim(api, str(message.payload["id"]))
        return DeliveryResult(response={"oa_approval_id": found}) if found else None

    async def approval_changes(self, since: datetime, until: datetime) -> OAChanges:
        """The form's instances started between `since` and `until` (Feishu lists by start
        time), as the commands their events carry: an instance an employee started is a
        claim; an approved, rejected, canceled or deleted one concludes its claim."""
        api: FeishuApi = self.configured()
        found = SweepFindings("feishu")
        for code in await api.list_instance_codes(_ms(since), _ms(until)):
            instance = await api.get_instance(code)
            claim_id = widget_value(instance, CLAIM_ID_WIDGET)
            if claim_id is None and not found.started(
                claim_from_instance, api.config, code, instance
            ):
                continue
            concluded = instance_result(instance)
            if concluded is not None:
                result, actor, comment = concluded
                found.concluded(code, result, actor_id=actor, comment=comment, claim_id=claim_id)
        return found.changes()


__all__ = ["ApprovalResult", "FeishuApi", "FeishuConnector", "FeishuError"]
