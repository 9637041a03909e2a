"""The hub's client to Weaver e-cology (泛微 E9).

- **Auth** (E9 REST): `applytoken` with the app id and the `secret` encrypted by e-cology's
  RSA public key `spk`; every call then carries `appid`, `token` and `userid` (the acting
  user's id, encrypted with the spk). Tokens are cached and fetched again ahead of expiry
  (`connectors.auth.CachedToken`); e-cology's "token不存在或者超时" answer counts as a 401, so
  the token is dropped and the call sent once more with a fresh one. `register` is the
  one-time `regist` call that hands out the secret and spk.
- **Hub-led todos**: `todo.push` goes to the unified todo (统一待办)
  `POST /rest/ofs/ReceiveRequestInfoByJson` (open: isremark 0, close: 2), authenticated by
  the system code (`syscode`) e-cology has registered for the hub.
- **OA-led approvals**: `approval.create` starts the claim's expense request
  (`doCreateRequest`); its result comes back by the signed callback (`inbound`), and
  `approval_changes` (sweeps) pages through `getMyWorkflowRequestList`, the requests the
  hub's user made, keeping those whose `lastOperateTime` falls in the window.
- **Notices**: `notice.send` (the archive's 消息通知) goes to the message centre (消息中心)
  `POST /api/ec/dev/message/sendCustomMessageSingle` with the token headers, from the message
  source (消息来源) whose code is `message_code`, to the recipient's login id.
- **Workflow requests**: `create_request` (`doCreateRequest`), `request_status`
  (`getRequestStatus`) and `create_request_soap` (SOAP `WorkflowService.
  doCreateWorkflowRequest`, through zeep).
- **HRM master data**: `users()` and `departments()`, every page.

Errors are classed by the one table in `finoa.messaging.retry` for HTTP statuses and
exceptions, and by `WEAVER_CODES` for e-cology's own codes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx
import orjson

from finoa.connectors.auth import CachedToken, delivery_error, send_authorized
from finoa.connectors.base import (
    AccessToken,
    ApprovalRequestPayload,
    ConcludeApproval,
    ConnectorManifest,
    DeliveryResult,
    HealthReport,
    InboundCommand,
    InboundInvalid,
    OAChanges,
    OutboundMessage,
    SubmitClaim,
    TodoPayload,
)
from finoa.connectors.instances import MAPPINGS_KEY
from finoa.connectors.weaver import crypto
from finoa.connectors.weaver.inbound import WeaverInbound
from finoa.connectors.weaver.manifest import (
    DEFAULT_TOKEN_SECONDS,
    DEFAULT_TOLERANCE_SECONDS,
    MANIFEST,
)
from finoa.connectors.weaver.mapping import (
    CLAIM_ID_FIELD,
    CLAIM_MAPPING,
    REQUEST_RESULTS,
    WEAVER_TIME,
    approval_request_form,
    claim_from_request,
    create_request_form,
    notice_message_form,
    todo_record,
    workflow_request_info,
)
from finoa.mapping import MappingCatalog
from finoa.messaging.retry import DeliveryError, ErrorClass
from finoa.schemas import ClaimSubmission

TOKEN_ERRORS = ("token不存在或者超时", "token不存在", "token已过期")
# e-cology's codes of the workflow services (paService), the message centre and SOAP request
# ids, by class.
WEAVER_CODES: dict[str, ErrorClass] = {
    "PARAM_ERROR": ErrorClass.PERMANENT,
    "USER_EXCEPTION": ErrorClass.PERMANENT,
    "NO_PERMISSION": ErrorClass.CONFIG,
    "SYSTEM_INNER_ERROR": ErrorClass.TRANSIENT,
    "-1": ErrorClass.PERMANENT,  # creation failed (e.g. no such workflow)
    "-2": ErrorClass.CONFIG,  # the user may not create requests of this workflow
    "-3": ErrorClass.PERMANENT,  # the request's base information was refused
    "-4": ErrorClass.PERMANENT,  # the main table was refused
    "-5": ErrorClass.PERMANENT,  # the urgency could not be set
    "-6": ErrorClass.TRANSIENT,  # the operators could not be determined
    "-7": ErrorClass.TRANSIENT,  # the request could not move to the next node
    "-8": ErrorClass.TRANSIENT,  # the node's extra actions failed
}
TODO_PATH = "/rest/ofs/ReceiveRequestInfoByJson"
MESSAGE_PATH = "/api/ec/dev/message/sendCustomMessageSingle"
CONCURRENT_TODOS = 8
HRM_PAGE = 100
REQUEST_PAGE = 100
MAX_REQUEST_PAGES = 200


def weaver_code_error(code: str, detail: str) -> DeliveryError:
    """The DeliveryError for one of e-cology's own error codes (unknown ones: permanent)."""
    return DeliveryError(WEAVER_CODES.get(code, ErrorClass.PERMANENT), f"e-cology {code}: {detail}")


@dataclass(frozen=True)
class WeaverConfig:
    """A checked instance config (see `manifest.CONFIG_SCHEMA`)."""

    base_url: str
    appid: str
    secret: str = field(repr=False)
    spk: str
    user_id: str
    syscode: str
    callback_secret: str = field(repr=False)
    hub_url: str = "http://127.0.0.1:8700"
    message_code: str | None = None
    workflow_id: str = "6"
    detail_table: str = "formtable_main_214_dt1"
    token_seconds: int = DEFAULT_TOKEN_SECONDS
    timeout_seconds: float = 5.0
    callback_tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    company_timezone: str = "Asia/Shanghai"
    sweep_employees: bool = True
    catalog: MappingCatalog = field(default_factory=MappingCatalog, repr=False, compare=False)

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> WeaverConfig:
        """Raise ValueError `field: reason` for a config the connector cannot work with."""
        properties = MANIFEST.config_schema["properties"]
        try:
            catalog = MappingCatalog(config.get(MAPPINGS_KEY), Path.cwd())
            catalog.get("weaver", CLAIM_MAPPING)
        except ValueError as exc:
            raise ValueError(f"{MAPPINGS_KEY}: {exc}") from None
        config = {k: v for k, v in config.items() if k != MAPPINGS_KEY}
        for name in sorted(config):
            if name not in properties:
                raise ValueError(f"{name}: is not a known field")
        for name in MANIFEST.config_schema["required"]:
            value = config.get(name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}: is required (a non-empty string)")
        if not str(config["base_url"]).startswith(("http://", "https://")):
            raise ValueError("base_url: must start with http:// or https://")
        try:
            crypto.load_public_key(str(config["spk"]))
        except ValueError as exc:
            raise ValueError(f"spk: {exc}") from None
        values = dict(config)
        for name, kind in (
            ("token_seconds", int),
            ("callback_tolerance_seconds", int),
            ("timeout_seconds", float),
        ):
            if name in values:
                value = values[name]
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ValueError(f"{name}: must be a positive number")
                values[name] = kind(value)
        code = values.get("message_code")
        if code is not None and (not isinstance(code, str) or not code.isdigit()):
            raise ValueError('message_code: the message source\'s code, a number (e.g. "526")')
        if not isinstance(values.get("sweep_employees", True), bool):
            raise ValueError("sweep_employees: true or false")
        values["base_url"] = str(values["base_url"]).rstrip("/")
        return cls(**values, catalog=catalog)


async def register(
    http: httpx.AsyncClient, base_url: str, appid: str, cpk: str | None = None
) -> tuple[str, str]:
    """The one-time `regist`: e-cology's `secret` and `spk` for `appid`; `cpk` is the
    client's public key (a fresh one when not given). Raises DeliveryError."""
    cpk = cpk or crypto.public_key_text(crypto.new_private_key())
    response = await http.post(
        base_url.rstrip("/") + "/api/ec/dev/auth/regist", headers={"appid": appid, "cpk": cpk}
    )
    body = _json(response, "regist")
    if body.get("status") is not True:
        raise DeliveryError(ErrorClass.AUTH, f"regist refused: {body.get('msg')}")
    secret = body.get("secret") or body.get("secrit")
    if not isinstance(secret, str) or not isinstance(body.get("spk"), str):
        raise DeliveryError(ErrorClass.PERMANENT, "regist answered no secret or spk")
    return secret, str(body["spk"])


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    if not response.is_success:
        raise DeliveryError.from_response(response)
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise DeliveryError(ErrorClass.PERMANENT, f"{what}: the answer is not JSON") from exc
    if not isinstance(body, dict):
        raise DeliveryError(ErrorClass.PERMANENT, f"{what}: the answer is not a JSON object")
    return body


def is_token_error(body: Any) -> bool:
    """e-cology's answer to an unknown or expired token (HTTP 200, `status` false)."""
    return (
        isinstance(body, dict)
        and body.get("status") is False
        and any(text in str(body.get("msg", "")) for text in TOKEN_ERRORS)
    )


class WeaverAuth:
    """The E9 headers: `appid`, a cached `token`, and `userid` encrypted with the spk."""

    def __init__(
        self, config: WeaverConfig, http: httpx.AsyncClient, clock: Callable[[], float]
    ) -> None:
        self._config = config
        self._http = http
        self._clock = clock
        self.tokens = CachedToken(self._apply, clock=clock, header="token", scheme="")

    def __repr__(self) -> str:
        return f"WeaverAuth(appid={self._config.appid!r}, {self.tokens!r})"

    async def _apply(self) -> AccessToken:
        config = self._config
        started = self._clock()
        headers = {
            "appid": config.appid,
            "secret": crypto.encrypt(config.spk, config.secret),
            "time": str(config.token_seconds),
        }
        try:
            response = await self._http.post(
                config.base_url + "/api/ec/dev/auth/applytoken",
                headers=headers,
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            raise DeliveryError.from_exception(exc) from exc
        body = _json(response, "applytoken")
        token = body.get("token")
        if body.get("status") is not True or not isinstance(token, str) or not token:
            raise DeliveryError(ErrorClass.AUTH, f"applytoken refused: {body.get('msg')}")
        return AccessToken(token, started + config.token_seconds)

    async def headers(self) -> dict[str, str]:
        return await self.headers_as(self._config.user_id)

    async def headers_as(self, user_id: str) -> dict[str, str]:
        """The headers of a call acting as `user_id` (E9 REST names the acting user on every
        call; the token is the app's)."""
        return {
            "appid": self._config.appid,
            "userid": crypto.encrypt(self._config.spk, user_id),
            **await self.tokens.headers(),
        }

    def acting_as(self, user_id: str) -> _ActingAs:
        return _ActingAs(self, user_id)

    async def rejected(self, headers: Mapping[str, str]) -> bool:
        return await self.tokens.rejected(headers)


@dataclass(frozen=True)
class _ActingAs:
    """The app's auth, calls acting as another user."""

    auth: WeaverAuth
    user_id: str

    async def headers(self) -> dict[str, str]:
        return await self.auth.headers_as(self.user_id)

    async def rejected(self, headers: Mapping[str, str]) -> bool:
        return await self.auth.rejected(headers)


class WeaverConnector:
    """Hub-led todos to the unified todo; workflow requests, status and HRM by E9 REST/SOAP."""

    manifest: ClassVar[ConnectorManifest] = MANIFEST
    inbound: ClassVar[type[WeaverInbound]] = WeaverInbound
    uses_mappings: ClassVar[bool] = True  # an employee's request becomes a claim by a mapping

    def __init__(
        self,
        config: dict[str, Any],
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._config_error = ""
        self._soap: Any = None
        self._soap_http: httpx.AsyncClient | None = None
        try:
            self.config: WeaverConfig | None = WeaverConfig.parse(config)
        except ValueError as exc:
            self.config = None
            self._config_error = f"weaver config: {exc}"
        self.auth = WeaverAuth(self.config, http, clock) if self.config else None

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        WeaverConfig.parse(config)

    def _checked(self) -> tuple[WeaverConfig, WeaverAuth]:
        if self.config is None or self.auth is None:
            raise DeliveryError(ErrorClass.CONFIG, self._config_error)
        return self.config, self.auth

    # -- outbound: the outbox ----------------------------------------------------------------
    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """`todo.push` to the unified todo, one record per message; `approval.create` a new
        expense request (OA-led); `notice.send` a message from the message centre;
        `status.writeback` has no e-cology counterpart (the todos
        or the request carry the approval's state) and is acknowledged without a call."""
        try:
            config, _ = self._checked()
        except DeliveryError as exc:
            return [DeliveryResult(error=exc) for _ in messages]
        gate = asyncio.Semaphore(CONCURRENT_TODOS)

        async def one(message: OutboundMessage) -> DeliveryResult:
            if message.action == "status.writeback":
                return DeliveryResult(
                    response={"status": "not_sent", "reason": "hub-led: todos carry the state"}
                )
            if message.action == "approval.create":
                return await self._create_approval(config, message)
            if message.action == "notice.send":
                return await self._send_notice(config, message)
            if message.action != "todo.push":
                reason = f"weaver has no action {message.action!r}"
                return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, reason))
            async with gate:
                return await self._push_todo(config, message)

        return list(await asyncio.gather(*(one(m) for m in messages)))

    async def _create_approval(
        self, config: WeaverConfig, message: OutboundMessage
    ) -> DeliveryResult:
        claim: ApprovalRequestPayload = message.payload  # type: ignore[assignment]
        form = approval_request_form(claim, config.workflow_id, config.detail_table)
        try:
            request_id = await self._create(form)
        except Exception as exc:
            return DeliveryResult(error=delivery_error(exc))
        return DeliveryResult(response={"oa_approval_id": str(request_id)})

    async def _send_notice(self, config: WeaverConfig, message: OutboundMessage) -> DeliveryResult:
        """A notice as a message of the hub's message source. e-cology answers `status`
        true once the message is queued for its receivers; a refusal (an unknown or departed
        receiver, an unknown message source) is one of its codes, classed by WEAVER_CODES."""
        if config.message_code is None:
            reason = (
                "weaver config: message_code: required for notices (the code of the message "
                "source (消息来源) set up for the hub in e-cology's message centre)"
            )
            return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, reason))
        form = notice_message_form(message.payload, config.message_code)
        try:
            body = await self._call("POST", MESSAGE_PATH, data=form)
        except Exception as exc:
            return DeliveryResult(error=delivery_error(exc))
        if body.get("status") is not True:
            reason = f"e-cology answered no status for notice {form['targetId']}: {body}"
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason[:500]))
        return DeliveryResult(response={"status": "sent", "target_id": form["targetId"]})

    async def _push_todo(self, config: WeaverConfig, message: OutboundMessage) -> DeliveryResult:
        payload: TodoPayload = message.payload  # type: ignore[assignment]
        record = todo_record(
            payload,
            sys_code=config.syscode,
            creator=config.user_id,
            hub_url=config.hub_url,
            sequence=message.id,
            at=datetime.now(UTC),
            timezone=config.company_timezone,
        )
        try:
            response = await self._http.post(
                config.base_url + TODO_PATH,
                content=orjson.dumps(record),
                headers={"content-type": "application/json"},
                timeout=config.timeout_seconds,
            )
            body = _json(response, "ReceiveRequestInfoByJson")
        except Exception as exc:
            return DeliveryResult(error=delivery_error(exc))
        if str(body.get("operResult")) != "1":
            reason = f"e-cology refused todo {payload['task_id']}: {body.get('message')}"
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
        return DeliveryResult(response={"status": "ok", **body})

    async def lookup(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult | None]:
        """Unified todos are replay-safe (e-cology keeps the record with the highest
        `receivets`), so each is simply sent again. `doCreateRequest` is not (e-cology makes
        a new request every time), so before an `approval.create` is sent again the hub's
        own requests are searched for one carrying the claim's id (`finoadh`)."""
        results: list[DeliveryResult | None] = []
        for message in messages:
            if message.action != "approval.create":
                results.append(None)
                continue
            try:
                request_id = await self.request_of_claim(message.payload)
            except Exception as exc:
                results.append(DeliveryResult(error=delivery_error(exc)))
                continue
            found = {"oa_approval_id": request_id} if request_id else None
            results.append(DeliveryResult(response=found) if found else None)
        return results

    async def request_of_claim(self, claim: Mapping[str, Any]) -> str | None:
        """The id of the expense request the hub made for `claim`, or None: the requests of
        the expense workflow with the claim's title, whose `finoadh` is the claim's id."""
        config, _ = self._checked()
        for row in await self.my_requests():
            workflow = row.get("workflowBaseInfo") or {}
            if str(workflow.get("workflowId")) != config.workflow_id:
                continue
            if row.get("requestName") != claim.get("title"):
                continue
            request_id = str(row.get("requestId") or "")
            fields = await self.request_fields(int(request_id))
            if fields.get(CLAIM_ID_FIELD) == claim.get("id"):
                return request_id
        return None

    async def health(self) -> HealthReport:
        """Fetch a token with the configured app id, secret and spk."""
        started = time.monotonic()
        try:
            _, auth = self._checked()
            await auth.tokens.token()
        except DeliveryError as exc:
            return HealthReport(False, exc.reason)
        return HealthReport(True, "applytoken ok", (time.monotonic() - started) * 1000)

    async def aclose(self) -> None:
        if self._soap_http is not None:
            await self._soap_http.aclose()

    # -- E9 REST -------------------------------------------------------------------------
    async def _call(
        self, method: str, path: str, *, as_user: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """An E9 REST call with the token headers (acting as the hub's user, or `as_user`);
        an expired token is fetched again once."""
        config, app_auth = self._checked()
        auth: Any = app_auth if as_user is None else app_auth.acting_as(as_user)

        async def send(headers: dict[str, str]) -> httpx.Response:
            response = await self._http.request(
                method,
                config.base_url + path,
                headers=headers,
                timeout=config.timeout_seconds,
                **options,
            )
            if response.is_success and is_token_error(_maybe_json(response)):
                return httpx.Response(401, request=response.request, content=response.content)
            return response

        try:
            response = await send_authorized(auth, send)
        except Exception as exc:
            raise delivery_error(exc) from exc
        body = _json(response, path)
        if body.get("status") is False:
            code = body.get("code")
            if isinstance(code, str) and code in WEAVER_CODES:  # the service refused the call
                raise weaver_code_error(code, str(body.get("msg")))
            # the auth layer refused (its codes are numbers): appid, userid
            raise DeliveryError(ErrorClass.AUTH, f"e-cology refused {path}: {body.get('msg')}")
        return body

    async def create_request(self, claim: ClaimSubmission, total_fen: int) -> int:
        """`doCreateRequest`: a new expense request in e-cology; its request id. e-cology
        has no idempotency key here: each call creates a request."""
        config, _ = self._checked()
        return await self._create(
            create_request_form(claim, total_fen, config.workflow_id, config.detail_table)
        )

    async def _create(self, form: Mapping[str, Any]) -> int:
        data = {
            key: value if isinstance(value, str) else orjson.dumps(value).decode()
            for key, value in form.items()
        }
        body = await self._call("POST", "/api/workflow/paService/doCreateRequest", data=data)
        return int(_pa_data(body, "doCreateRequest")["requestid"])

    async def my_requests(self, as_user: str | None = None) -> list[dict[str, Any]]:
        """`getMyWorkflowRequestList`: the requests the acting user made (the hub's user, or
        `as_user`), every page."""
        rows: list[dict[str, Any]] = []
        for page in range(1, MAX_REQUEST_PAGES + 1):
            body = await self._call(
                "POST",
                "/api/workflow/paService/getMyWorkflowRequestList",
                as_user=as_user,
                data={"pageNo": str(page), "pageSize": str(REQUEST_PAGE)},
            )
            if str(body.get("code")) != "SUCCESS":
                detail = (body.get("errMsg") or {}).get("msg") or "getMyWorkflowRequestList"
                raise weaver_code_error(str(body.get("code")), str(detail))
            chunk = body.get("data")
            if not isinstance(chunk, list):
                raise DeliveryError(ErrorClass.PERMANENT, "getMyWorkflowRequestList: no data")
            rows.extend(r for r in chunk if isinstance(r, dict))
            if len(chunk) < REQUEST_PAGE:
                break
        return rows

    async def approval_changes(self, since: datetime, until: datetime) -> OAChanges:
        """What the expense workflow's requests did between `since` and `until`, as the
        commands their callbacks carry (the same event ids, so a change already applied comes
        back as a duplicate): the hub's own requests that ended, and (`sweep_employees`) each
        employed user's own requests, listed acting as that user: one started in the window
        that finoa did not make becomes its claim, one that ended concludes it."""
        config, _ = self._checked()
        zone = ZoneInfo(config.company_timezone)
        window = _Window(since, until, zone)
        commands: list[InboundCommand] = []
        problems: list[str] = []
        listed: list[tuple[str | None, dict[str, Any]]] = [
            (None, row) for row in await self.my_requests()
        ]
        if config.sweep_employees:
            for user in await self.users():
                if str(user.get("status")) in EMPLOYED_STATUSES and str(user.get("id")) != str(
                    config.user_id
                ):
                    mine = await self.my_requests(as_user=str(user.get("id")))
                    listed += [(str(user.get("id")), row) for row in mine]
        seen: set[str] = set()
        for employee, row in listed:
            request_id = str(row.get("requestId") or "")
            workflow = row.get("workflowBaseInfo") or {}
            if str(workflow.get("workflowId")) != config.workflow_id or request_id in seen:
                continue
            seen.add(request_id)
            try:
                created, operated = window.at(row, "createTime"), window.at(row, "lastOperateTime")
            except ValueError as exc:
                problems.append(f"request {request_id}: {exc}")
                continue
            fields: dict[str, Any] | None = None
            if employee is not None and window.holds(created):
                request = await self.workflow_request(int(request_id))
                fields = main_fields(request)
                if not fields.get(CLAIM_ID_FIELD):  # an employee's own: finoa made none of it
                    try:
                        claim = claim_from_request(
                            config.catalog, {**request, "requestId": request_id}
                        )
                    except InboundInvalid as exc:
                        problems.append(f"request {request_id}: {exc.summary()}")
                        continue
                    commands.append(
                        SubmitClaim(
                            f"weaver-request-{request_id}-create", claim, oa_approval_id=request_id
                        )
                    )
            ended = str(row.get("lastOperateType") or "")
            if ended not in REQUEST_RESULTS and str(row.get("currentNodeType")) == "3":
                ended = "archive"
            if ended not in REQUEST_RESULTS or not window.holds(operated):
                continue  # still running, or ended outside the window
            if fields is None:
                fields = await self.request_fields(int(request_id))
            commands.append(
                ConcludeApproval(
                    f"weaver-request-{request_id}-{ended}",
                    request_id,
                    REQUEST_RESULTS[ended],
                    actor_id=str(row.get("lastOperatorName") or "") or None,
                    comment=str(row.get("remark") or "") or None,
                    claim_id=str(fields.get(CLAIM_ID_FIELD) or "") or None,
                )
            )
        return OAChanges(tuple(commands), tuple(problems))

    async def workflow_request(self, request_id: int) -> dict[str, Any]:
        """`getWorkflowRequest`: the request as e-cology answers it (its `data`): name,
        workflow, creator, main table and detail tables."""
        body = await self._call(
            "GET", "/api/workflow/paService/getWorkflowRequest", params={"requestId": request_id}
        )
        return _pa_data(body, "getWorkflowRequest")

    async def request_fields(self, request_id: int) -> dict[str, Any]:
        """`getWorkflowRequest`: the request's main-table fields by name."""
        return main_fields(await self.workflow_request(request_id))

    async def request_status(self, request_id: int) -> dict[str, Any]:
        """`getRequestStatus`: the request's current node (name and type; 3 is archived)."""
        body = await self._call(
            "GET", "/api/workflow/paService/getRequestStatus", params={"requestId": request_id}
        )
        return _pa_data(body, "getRequestStatus")

    async def _pages(self, path: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            params = orjson.dumps({"curpage": page, "pagesize": HRM_PAGE}).decode()
            body = await self._call("POST", path, data={"params": params})
            if str(body.get("code")) != "1":
                raise weaver_code_error(str(body.get("code")), str(body.get("msg")))
            data = body.get("data") or {}
            chunk = data.get("dataList") or []
            rows.extend(chunk)
            if not chunk or len(rows) >= int(data.get("totalSize", 0)):
                return rows
            page += 1

    async def users(self) -> list[dict[str, Any]]:
        """Every HRM user (id, loginid, workcode, lastname, departmentid, status)."""
        return await self._pages("/api/hrm/resful/getHrmUserInfoWithPage")

    async def departments(self) -> list[dict[str, Any]]:
        """Every HRM department (id, departmentcode, departmentname, supdepid)."""
        return await self._pages("/api/hrm/resful/getHrmdepartmentWithPage")

    # -- SOAP WorkflowService --------------------------------------------------------------
    async def _workflow_service(self) -> Any:
        if self._soap is None:
            import zeep
            from zeep.transports import AsyncTransport

            config, _ = self._checked()
            self._soap_http = httpx.AsyncClient(timeout=config.timeout_seconds)
            wsdl_http = httpx.Client(timeout=config.timeout_seconds)
            transport = AsyncTransport(client=self._soap_http, wsdl_client=wsdl_http)
            wsdl = config.base_url + "/services/WorkflowService?wsdl"
            try:
                self._soap = await asyncio.to_thread(zeep.AsyncClient, wsdl, transport=transport)
            except Exception as exc:
                raise delivery_error(exc) from exc
            finally:
                wsdl_http.close()
        return self._soap

    async def create_request_soap(self, claim: ClaimSubmission, total_fen: int) -> int:
        """`WorkflowService.doCreateWorkflowRequest(in0, in1)`: the new request id; a
        negative id is e-cology's error code, classed by `WEAVER_CODES`."""
        config, _ = self._checked()
        client = await self._workflow_service()
        info = workflow_request_info(claim, total_fen, config.workflow_id, config.user_id)
        try:
            answer = await client.service.doCreateWorkflowRequest(in0=info, in1=config.user_id)
        except Exception as exc:
            raise delivery_error(exc) from exc
        text = str(answer or "").strip()
        if not text.lstrip("-").isdigit() or int(text) <= 0:
            raise weaver_code_error(text or "-1", "doCreateWorkflowRequest failed")
        return int(text)


EMPLOYED_STATUSES = frozenset({"0", "1", "2", "3"})  # HRM: 试用, 正式, 临时, 试用延期


def main_fields(request: Mapping[str, Any]) -> dict[str, Any]:
    """A request's (`getWorkflowRequest`'s data) main-table fields by name."""
    records = (request.get("workflowMainTableInfo") or {}).get("requestRecords") or [{}]
    fields = records[0].get("workflowRequestTableFields") or []
    return {str(f.get("fieldName")): f.get("fieldValue") for f in fields if isinstance(f, dict)}


@dataclass(frozen=True)
class _Window:
    """A sweep's window, for e-cology's `yyyy-MM-dd HH:mm:ss` times in company time."""

    since: datetime
    until: datetime
    zone: ZoneInfo

    def at(self, row: Mapping[str, Any], name: str) -> datetime:
        try:
            return datetime.strptime(str(row.get(name)), WEAVER_TIME).replace(tzinfo=self.zone)
        except ValueError:
            raise ValueError(f"{name}: not yyyy-MM-dd HH:mm:ss") from None

    def holds(self, moment: datetime) -> bool:
        return self.since <= moment <= self.until


def _maybe_json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _pa_data(body: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The `data` of a paService answer whose `code` is SUCCESS; else its class's error."""
    code = str(body.get("code"))
    if code != "SUCCESS":
        detail = (body.get("errMsg") or {}).get("msg") or body.get("msg") or what
        raise weaver_code_error(code, str(detail))
    data = body.get("data")
    if not isinstance(data, dict):
        raise DeliveryError(ErrorClass.PERMANENT, f"{what}: the answer has no data")
    return data
