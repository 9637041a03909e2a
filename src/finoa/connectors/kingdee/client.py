"""The hub's client to Kingdee K/3 Cloud: vouchers through Save -> Submit -> Audit, exactly once
although K/3 Cloud keeps no idempotency keys.

- Sign-in: the app-secret scheme (signed headers on every request, as Kingdee's SDK sends
  them) or `ValidateUser` (a session cookie, kept in a `CachedToken` and fetched again ahead of
  its end). A lost session (MsgCode 1) is answered by signing in again and sending once more:
  K/3 Cloud ran nothing for a request it had no session for.
- Create: the voucher's model never carries the internal id `FVOUCHERID`; K/3 Cloud would
  overwrite the voucher it names. It carries the hub's reference instead (see `mapping`).
- The posted-lookup finds a voucher by that reference with `ExecuteBillQuery`. The dispatcher
  asks it before any Save that follows an unknown outcome and before any replay; a voucher
  found audited is recorded, one found saved or submitted is taken on from where it stopped.
- Refusals come as `Result.ResponseStatus` with `IsSuccess` false: `MsgCode` picks the error
  class (`protocol.MSG_CODE_CLASSES`), `Errors[].FieldName`/`Message` make the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import httpx
import orjson

from finoa.connectors.auth import CachedToken, delivery_error
from finoa.connectors.base import (
    AccessToken,
    ConnectorManifest,
    DeliveryResult,
    HealthReport,
    OutboundMessage,
)
from finoa.connectors.kingdee.manifest import MANIFEST, KingdeeConfig
from finoa.connectors.kingdee.mapping import (
    EXPLANATION_FIELD,
    MappingError,
    reference_in,
    save_data,
    voucher_model,
)
from finoa.connectors.kingdee.protocol import (
    AUDIT,
    AUDITED,
    EXECUTE_BILL_QUERY,
    LOGIN_SUCCESS,
    SAVE,
    SESSION_COOKIE,
    SUBMIT,
    SUBMITTED,
    VALIDATE_USER,
    VOUCHER_FORM,
    response_status,
    service_url,
)
from finoa.messaging.retry import DeliveryError, ErrorClass

ACTION = "voucher.post"
QUERY_LIMIT = 2000
_R = TypeVar("_R")


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _config_error(reason: str) -> DeliveryResult:
    return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, reason))


class KingdeeConnector:
    """Posts canonical vouchers into one K/3 Cloud account set: each voucher through its own
    Save -> Submit -> Audit, up to `parallel` of them at a time. A batch from the dispatcher
    fails as a whole only when every voucher in it failed."""

    manifest: ClassVar[ConnectorManifest] = MANIFEST

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        self._http = http
        self._config: KingdeeConfig | None = None
        self._config_error = ""
        self._session: str | None = None  # app-secret scheme: the cookie K/3 Cloud last set
        self.logins = 0  # sign-ins made (diagnostics)
        try:
            self._config = KingdeeConfig.parse(config)
        except ValueError as exc:
            self._config_error = f"kingdee config: {exc}"
        self._login = CachedToken(
            self._validate_user, refresh_margin_seconds=30.0, header=SESSION_COOKIE, scheme=""
        )

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        """Raise ValueError (`field: reason`) for a config this connector cannot work with."""
        KingdeeConfig.parse(dict(config))

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""

    # -- the wire ------------------------------------------------------------------------------
    async def _validate_user(self) -> AccessToken:
        """`ValidateUser`: a session for the configured user, or an AUTH error saying why not."""
        config = self._require()
        started = time.monotonic()
        self.logins += 1
        body = {
            "acctID": config.acct_id,
            "username": config.user_name,
            "password": config.password,
            "lcid": config.lcid,
        }
        try:
            response = await self._http.post(
                service_url(config.server_url, VALIDATE_USER),
                content=orjson.dumps(body),
                headers={"content-type": "application/json", "cookie": "Theme=standard"},
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            raise delivery_error(exc) from exc
        if not response.is_success:
            raise DeliveryError.from_response(response)
        answer = _json(response)
        session = response.cookies.get(SESSION_COOKIE) or (
            answer.get("KDSVCSessionId") if isinstance(answer, dict) else None
        )
        if not isinstance(answer, dict) or answer.get("LoginResultType") != LOGIN_SUCCESS:
            message = answer.get("Message") if isinstance(answer, dict) else answer
            raise DeliveryError(
                ErrorClass.AUTH,
                f"K/3 Cloud refused the sign-in of {config.user_name} to account set "
                f"{config.acct_id}: {message}",
            )
        if not isinstance(session, str) or not session:
            raise DeliveryError(ErrorClass.PERMANENT, "ValidateUser answered without a session")
        return AccessToken(session, started + config.session_seconds)

    def _require(self) -> KingdeeConfig:
        if self._config is None:
            raise DeliveryError(ErrorClass.CONFIG, self._config_error)
        return self._config

    async def _credentials(self, path: str) -> dict[str, str]:
        config = self._require()
        if config.auth == "password":
            session: str | None = (await self._login.token()).value
            headers: dict[str, str] = {}
        else:
            session = self._session
            headers = config.credentials().headers(path, time.time())
        if session:
            return {**headers, SESSION_COOKIE: session, "cookie": f"{SESSION_COOKIE}={session}"}
        return {**headers, "cookie": "Theme=standard"}

    async def _session_lost(self, sent: Mapping[str, str]) -> None:
        if self._require().auth == "password":
            await self._login.rejected({SESSION_COOKIE: sent.get(SESSION_COOKIE, "")})
        else:
            self._session = None

    async def _call(self, service: str, body: Any) -> Any:
        """POST one service and return its JSON answer; a lost session signs in again and
        sends once more. Raises DeliveryError when the answer never came or is not JSON."""
        config = self._require()
        url = service_url(config.server_url, service)
        path = httpx.URL(url).path
        for attempt in (1, 2):
            headers = await self._credentials(path)
            try:
                response = await self._http.post(
                    url,
                    content=orjson.dumps(body),
                    headers={"content-type": "application/json", **headers},
                    timeout=config.timeout_seconds,
                )
            except Exception as exc:
                raise delivery_error(exc) from exc
            if not response.is_success:
                raise DeliveryError.from_response(response)
            session = response.cookies.get(SESSION_COOKIE)
            if session and config.auth == "app_secret":
                self._session = session
            answer = _json(response)
            status = response_status(answer)
            if status is not None and status.session_lost and attempt == 1:
                await self._session_lost(headers)
                continue
            return answer
        return answer

    async def _operate(self, service: str, step: str, voucher_id: int) -> None:
        """Submit or Audit one voucher by its internal id; raise DeliveryError if refused."""
        answer = await self._call(
            service, {"formid": VOUCHER_FORM, "data": {"Ids": str(voucher_id)}}
        )
        status = response_status(answer)
        if status is None:
            raise DeliveryError(
                ErrorClass.TRANSIENT, f"malformed answer to {step}: {answer!r:.200}"
            )
        if not status.is_success:
            raise status.error(step)

    # -- the contract --------------------------------------------------------------------------
    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """Save, submit and audit each voucher (each on its own, up to `parallel` at a time);
        one result per message, in order."""
        return await self._each(self._post, messages)

    async def _each(
        self,
        step: Callable[[OutboundMessage], Awaitable[_R]],
        messages: Sequence[OutboundMessage],
    ) -> list[_R]:
        limit = asyncio.Semaphore(self._config.parallel if self._config else 1)

        async def one(message: OutboundMessage) -> _R:
            async with limit:
                return await step(message)

        return list(await asyncio.gather(*(one(m) for m in messages)))

    async def _post(self, message: OutboundMessage) -> DeliveryResult:
        if self._config is None:
            return _config_error(self._config_error)
        if message.action != ACTION:
            return _config_error(f"kingdee has no action {message.action!r}; it knows {ACTION!r}")
        if "voucher_id" not in message.payload:
            return _config_error(f"{message.idempotency_key}: not a canonical voucher payload")
        try:
            model = voucher_model(message.payload, message.idempotency_key, self._config.base_data)
        except MappingError as exc:
            return _config_error(f"kingdee config base_data.{exc}")
        try:
            answer = await self._call(SAVE, {"formid": VOUCHER_FORM, "data": save_data(model)})
        except DeliveryError as exc:
            return DeliveryResult(error=exc)
        status = response_status(answer)
        entity = status.entities[0] if status is not None and status.entities else {}
        if status is not None and not status.is_success:
            return DeliveryResult(error=status.error(f"the Save of {message.idempotency_key}"))
        voucher_id, number = entity.get("Id"), entity.get("Number")
        if not isinstance(voucher_id, int) or not isinstance(number, str) or not number:
            reason = f"the Save of {message.idempotency_key} answered without an id and number"
            # it may have saved: a replay looks it up first
            error = DeliveryError(ErrorClass.PERMANENT, reason, outcome_unknown=True)
            return DeliveryResult(error=error)
        return await self._complete(message, voucher_id, number, state="A")

    async def _complete(
        self, message: OutboundMessage, voucher_id: int, number: str, *, state: str
    ) -> DeliveryResult:
        """Take a saved voucher on to audited from `state` (FDocumentStatus)."""
        try:
            if state not in (SUBMITTED, AUDITED):
                await self._operate(SUBMIT, f"the Submit of {number}", voucher_id)
                state = SUBMITTED
            if state == SUBMITTED:
                await self._operate(AUDIT, f"the Audit of {number}", voucher_id)
        except DeliveryError as exc:
            reason = (
                f"{message.idempotency_key} is saved in K/3 Cloud as {number} "
                f"(FVOUCHERID {voucher_id}) but not audited yet: {exc.reason}"
            )
            # the voucher exists: whatever happens next starts with the posted-lookup
            error = DeliveryError(
                exc.error_class, reason, retry_after=exc.retry_after, outcome_unknown=True
            )
            return DeliveryResult(error=error)
        return DeliveryResult(response={"erp_voucher_no": number, "erp_id": str(voucher_id)})

    async def lookup(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult | None]:
        """Find each voucher by the hub's reference; finish one found saved or submitted."""
        return await self._each(self._find, messages)

    def _reference_query(self, key: str) -> tuple[str, str]:
        """(the field that holds a reference, the FilterString finding `key` in it)."""
        field = self._require().base_data.reference_field
        if field == EXPLANATION_FIELD:
            return field, f"{field} like {_quoted('%#' + key)}"
        return field, f"{field} = {_quoted(key)}"

    async def _find(self, message: OutboundMessage) -> DeliveryResult | None:
        if self._config is None:
            return _config_error(self._config_error)
        key = message.idempotency_key
        field, where = self._reference_query(key)
        query = {
            "FormId": VOUCHER_FORM,
            "FieldKeys": f"FVOUCHERID,FBillNo,FDocumentStatus,{field}",
            "FilterString": where,
            "OrderString": "FVOUCHERID ASC",
            "TopRowCount": 0,
            "StartRow": 0,
            "Limit": QUERY_LIMIT,
        }
        try:
            answer = await self._call(EXECUTE_BILL_QUERY, {"data": query})
        except DeliveryError as exc:
            return DeliveryResult(error=exc)
        status = response_status(answer)
        if status is not None:
            return DeliveryResult(error=status.error(f"the ExecuteBillQuery for {key}"))
        if not isinstance(answer, list) or not all(
            isinstance(row, list) and len(row) == 4 for row in answer
        ):
            reason = f"malformed ExecuteBillQuery answer for {key}: {answer!r:.200}"
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
        found: dict[int, tuple[str, str]] = {}
        for voucher_id, number, state, held in answer:
            exact = reference_in(held) if field == EXPLANATION_FIELD else held
            if exact == key and isinstance(voucher_id, int):
                found.setdefault(voucher_id, (str(number), str(state)))
        if not found:
            return None
        if len(found) > 1:
            numbers = ", ".join(number for number, _ in found.values())
            reason = f"{key} is in K/3 Cloud {len(found)} times ({numbers})"
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
        ((voucher_id, (number, state)),) = found.items()
        return await self._complete(message, voucher_id, number, state=state)

    async def health(self) -> HealthReport:
        """Sign in and find the configured account book."""
        if self._config is None:
            return HealthReport(False, self._config_error)
        config = self._config
        book = config.base_data.account_book
        query = {
            "FormId": "BD_AccountBook",
            "FieldKeys": "FNumber,FName",
            "FilterString": f"FNumber = {_quoted(book)}",
        }
        started = time.perf_counter()
        try:
            answer = await self._call(EXECUTE_BILL_QUERY, {"data": query})
        except DeliveryError as exc:
            return HealthReport(False, f"{config.server_url} unreachable: {exc.reason}")
        latency = round((time.perf_counter() - started) * 1000, 1)
        status = response_status(answer)
        if status is not None:
            return HealthReport(False, status.error("ExecuteBillQuery").reason, latency)
        if not isinstance(answer, list) or not answer:
            return HealthReport(False, f"account book {book} is not in K/3 Cloud", latency)
        return HealthReport(True, f"{config.server_url} answered in {latency} ms", latency)


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        # whatever answered may have done the work: a replay looks it up first
        raise DeliveryError(
            ErrorClass.PERMANENT,
            f"malformed answer from {response.request.url.path}: {exc}",
            outcome_unknown=True,
        ) from exc
