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
- Codes and base data: the `kingdee/voucher` mapping (`mapping/defaults/kingdee/voucher.yaml`,
  overridable under `mappings:`, with the instance's `base_data.accounts` and
  `dimension_codes` on top) maps finoa's accounts and dimension codes onto the account set's;
  a voucher whose account it does not list is refused, naming it. The mapped voucher is
  then checked against the account set's base data, read by `ExecuteBillQuery` by FNumber
  (`BD_Account` detail accounts, `BD_VOUCHERGROUP`, and the dimension forms, enabled codes
  only) and cached for a minute: an unknown account, voucher word or dimension code is
  refused in finoa naming the code, and nothing is sent to K/3 Cloud.
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
from finoa.connectors.basedata import (
    BaseDataCache,
    ERPAccount,
    ERPBaseData,
    chart_kind,
    deliver_checked,
)
from finoa.connectors.kingdee.manifest import MANIFEST, KingdeeConfig
from finoa.connectors.kingdee.mapping import (
    EXPLANATION_FIELD,
    BaseData,
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
from finoa.connectors.voucher_codes import VoucherCodes, connector_codes, without_mappings
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
    uses_mappings: ClassVar[bool] = True  # it receives the `mappings:` overrides

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        self._http = http
        self._config: KingdeeConfig | None = None
        self._config_error = ""
        self._session: str | None = None  # app-secret scheme: the cookie K/3 Cloud last set
        self.logins = 0  # sign-ins made (diagnostics)
        self.codes: VoucherCodes | None = None
        self._model_base = BaseData()  # the model's tables once the codes are mapped
        self._words: frozenset[str] | None = None  # BD_VOUCHERGROUP codes, with the base data
        try:
            self._config = KingdeeConfig.parse(without_mappings(config))
            self.codes = _codes(config, self._config.base_data)
            self._model_base = _mapped_base(self._config.base_data, self.codes)
        except ValueError as exc:
            self._config = None
            self._config_error = f"kingdee config: {exc}"
        self.cache = BaseDataCache(self._read_base)
        self._login = CachedToken(
            self._validate_user, refresh_margin_seconds=30.0, header=SESSION_COOKIE, scheme=""
        )

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        """Raise ValueError (`field: reason`) for a config this connector cannot work with."""
        _codes(config, KingdeeConfig.parse(without_mappings(config)).base_data)

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
        """Map each voucher onto the account set's codes and check it against its base data,
        then save, submit and audit each (each on its own, up to `parallel` at a time); one
        result per message, in order."""
        if self._config is None:
            return [_config_error(self._config_error) for _ in messages]
        erp = f"K/3 Cloud account set {self._config.acct_id}"

        async def send(checked: list[OutboundMessage]) -> list[DeliveryResult]:
            return await self._each(self._post, checked)

        return await deliver_checked(messages, self.cache, erp, send, self.codes)

    async def base_data(self) -> ERPBaseData:
        """The account set's accounts and dimension codes as K/3 Cloud has them (cached)."""
        return await self.cache.get()

    async def _query(self, form: str, keys: str) -> list[list[Any]]:
        """Every row of a base-data form (`ExecuteBillQuery`, page by page)."""
        rows: list[list[Any]] = []
        while True:
            query = {"FormId": form, "FieldKeys": keys, "StartRow": len(rows), "Limit": QUERY_LIMIT}
            answer = await self._call(EXECUTE_BILL_QUERY, {"data": query})
            status = response_status(answer)
            if status is not None:
                raise status.error(f"the ExecuteBillQuery of {form}")
            if not isinstance(answer, list) or not all(isinstance(r, list) for r in answer):
                reason = f"malformed ExecuteBillQuery answer for {form}: {answer!r:.200}"
                raise DeliveryError(ErrorClass.TRANSIENT, reason)
            rows.extend(answer)
            if len(answer) < QUERY_LIMIT:
                return rows

    async def _read_base(self) -> ERPBaseData:
        config = self._require()
        accounts = await self._query("BD_Account", "FNumber,FName,FForbidStatus")
        codes = {str(row[0]) for row in accounts if row and row[0]}
        erp_accounts = {}
        for number, name, forbidden in (row[:3] for row in accounts if len(row) >= 3):
            code = str(number or "")
            if not code:
                continue
            parent = any(other.startswith(code + ".") for other in codes)
            erp_accounts[code] = ERPAccount(
                code=code,
                name=str(name or ""),
                kind=chart_kind(code),
                postable=not parent and forbidden != "B",  # detail accounts, not forbidden
            )
        dimensions: dict[str, frozenset[str]] = {}
        for dimension, form in config.base_data.dimension_forms.items():
            rows = await self._query(form, "FNumber,FForbidStatus")
            dimensions[dimension] = frozenset(
                str(row[0]) for row in rows if len(row) >= 2 and row[0] and row[1] != "B"
            )
        words = await self._query("BD_VOUCHERGROUP", "FNumber")
        self._words = frozenset(str(row[0]) for row in words if row and row[0])
        return ERPBaseData(accounts=erp_accounts, periods=None, dimensions=dimensions)

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
            model = voucher_model(message.payload, message.idempotency_key, self._model_base)
        except MappingError as exc:
            return _config_error(f"kingdee config base_data.{exc}")
        word = model["FVOUCHERGROUPID"]["FNumber"]
        if self._words is not None and word not in self._words:
            reason = (
                f"refused before posting to K/3 Cloud account set {self._config.acct_id}: "
                f"word: voucher word {word} ({message.payload['word']}) does not exist in the ERP"
            )
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
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


def _codes(config: Mapping[str, Any], base: BaseData) -> VoucherCodes:
    """The `kingdee/voucher` code tables with the instance's base_data tables on top."""
    codes = connector_codes("kingdee", config)
    return codes.with_accounts(base.accounts).with_dimensions(base.dimension_codes)


def _mapped_base(base: BaseData, codes: VoucherCodes) -> BaseData:
    """The tables `voucher_model` uses for a voucher already in the account set's codes: no
    more code mapping, and each account's dimensions named by its mapped code."""
    dimensions = {codes.accounts.get(k, k): v for k, v in base.account_dimensions.items()}
    return base.model_copy(
        update={"accounts": {}, "dimension_codes": {}, "account_dimensions": dimensions}
    )


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
