"""The hub's clients to Yonyou: `yonyou-u8` (U8 OpenAPI) and `yonyou-nc` (NC / NCC).

**U8** (`YonyouU8Connector`):
- Auth: `GET /system/token` with `from_account`, `app_key` and `app_secret` gives a token
  with its lifetime; it is cached and fetched again ahead of expiry (`CachedToken`). An
  answer with errcode 20002 (token unknown or expired) drops it, and the call is sent once
  more with a fresh one.
- `voucher.post`: `POST /api/voucher/add` with `tradeid` = the message's idempotency key and
  `sync=1`. U8 answers a repeated tradeid with the first voucher, so a retry never makes a
  second one. The key also rides in the voucher's `reserve2` (maker "CDM").
- Posted-lookup: `GET /api/voucher/batch_get?reserve2=<key>`: the vouchers carrying the key.
- Errors: HTTP statuses and exceptions by the table in `finoa.messaging.retry`, U8's
  `errcode` by `U8_CODES`.

**NC** (`YonyouNCConnector`):
- `voucher.post`: the `ufinterface` voucher XML posted to `/service/XChangeServlet?account=
  …&groupcode=…` in the configured encoding; the result XML's `resultcode` 1 and `content`
  (the voucher number) are a posting. NC's exchange keeps no idempotency: every import is a
  new voucher, so the dispatcher's posted-lookup before any resend is what keeps it single.
- Posted-lookup: a `proc="query"` exchange naming the external number kept in the voucher's
  `reserve2`.
- Errors: `resultcode` by `NC_CODES`; anything unknown is permanent, with NC's description.

**Codes** (both): the `yonyou-u8/voucher` / `yonyou-nc/voucher` mapping
(`mapping/defaults/yonyou-*/voucher.yaml`, overridable under `mappings:`) maps finoa's
accounts and department, person and project codes onto the account set's before the body is
built; a voucher whose account it does not list is refused in finoa, naming the account and
the mapping, and nothing is sent. The ERP checks the mapped codes against its base data.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import orjson
from lxml import etree

from finoa.connectors.auth import CachedToken, delivery_error
from finoa.connectors.base import (
    AccessToken,
    ConnectorManifest,
    DeliveryResult,
    HealthReport,
    OutboundMessage,
)
from finoa.connectors.basedata import deliver_checked
from finoa.connectors.voucher_codes import VoucherCodes, connector_codes, without_mappings
from finoa.connectors.yonyou import manifest as codes
from finoa.connectors.yonyou.manifest import NC_MANIFEST, U8_MANIFEST
from finoa.connectors.yonyou.mapping import (
    NCEnvelope,
    NCResult,
    nc_voucher_xml,
    parse_nc_result,
    u8_voucher,
)
from finoa.messaging.retry import DeliveryError, ErrorClass

ACTION = "voucher.post"
NC_PATH = "/service/XChangeServlet"


@dataclass(frozen=True)
class YonyouConfig:
    """A checked config: the fields of the connector's schema, defaults filled in."""

    base_url: str
    timeout_seconds: float
    enter: str
    fields: Mapping[str, str] = field(repr=False)

    @classmethod
    def parse(cls, config: Mapping[str, Any], schema: Mapping[str, Any]) -> YonyouConfig:
        """Check `config` against `schema`; ValueError naming the bad field."""
        properties = schema["properties"]
        unknown = sorted(set(config) - set(properties))
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        base_url = config.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url: required, an http(s) URL")
        timeout = config.get("timeout_seconds", 5)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError("timeout_seconds: must be a positive number")
        values: dict[str, str] = {}
        for name, spec in properties.items():
            if name in ("base_url", "timeout_seconds"):
                continue
            value = config.get(name, spec.get("default"))
            if value is None and name not in schema["required"]:
                continue
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name}: required, a non-empty string")
            if "enum" in spec and value not in spec["enum"]:
                raise ValueError(f"{name}: one of {', '.join(spec['enum'])}, not {value!r}")
            values[name] = value
        return cls(base_url.rstrip("/"), float(timeout), values["enter"], values)


class _YonyouConnector:
    """What both clients share: the parsed config (a bad one kept as a CONFIG error), the
    caller's HTTP client, and one voucher per call."""

    manifest: ClassVar[ConnectorManifest]
    uses_mappings: ClassVar[bool] = True  # it receives the `mappings:` overrides

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        self._http = http
        self._config_error = ""
        self.codes: VoucherCodes | None = None
        try:
            self.config: YonyouConfig | None = YonyouConfig.parse(
                without_mappings(config), self.manifest.config_schema
            )
            self.codes = connector_codes(self.manifest.name, config)
        except ValueError as exc:
            self.config = None
            self._config_error = f"{self.manifest.name} config: {exc}"

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        """Raise ValueError (`field: reason`) for a config this connector cannot work with."""
        YonyouConfig.parse(without_mappings(config), cls.manifest.config_schema)
        connector_codes(cls.manifest.name, config)

    def ledger(self, config: YonyouConfig) -> str:
        """The account set vouchers go to, as refusals name it."""
        raise NotImplementedError

    def _checked(self) -> YonyouConfig:
        if self.config is None:
            raise DeliveryError(ErrorClass.CONFIG, self._config_error)
        return self.config

    async def _each(
        self,
        messages: Sequence[OutboundMessage],
        one: Callable[[YonyouConfig, OutboundMessage], Awaitable[DeliveryResult | None]],
    ) -> list[DeliveryResult | None]:
        results: list[DeliveryResult | None] = []
        for message in messages:
            try:
                config = self._checked()
                if message.action != ACTION:
                    reason = f"{self.manifest.name} has no action {message.action!r}"
                    raise DeliveryError(ErrorClass.CONFIG, reason)
                results.append(await one(config, message))
            except Exception as exc:
                results.append(DeliveryResult(error=delivery_error(exc)))
        return results

    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """Map each voucher onto the account set's codes (an unmapped account is refused,
        naming it) and post it; one result per message, in order."""

        async def send(mapped: list[OutboundMessage]) -> list[DeliveryResult]:
            results = await self._each(mapped, self._post)
            return [r if r is not None else DeliveryResult() for r in results]

        erp = self.ledger(self.config) if self.config is not None else self.manifest.name
        return await deliver_checked(messages, None, erp, send, self.codes)

    async def lookup(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult | None]:
        """The voucher each message already made, found by the external number it carries."""
        return await self._each(messages, self._find)

    async def _post(self, config: YonyouConfig, message: OutboundMessage) -> DeliveryResult:
        raise NotImplementedError

    async def _find(self, config: YonyouConfig, message: OutboundMessage) -> DeliveryResult | None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""


def _found(key: str, numbers: list[str], posted: Callable[[str], DeliveryResult]) -> Any:
    """None for no voucher, the posting for one, a permanent error for several."""
    if not numbers:
        return None
    if len(numbers) > 1:
        reason = f"{key} is in the ledger {len(numbers)} times ({', '.join(numbers)})"
        return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
    return posted(numbers[0])


def _posted(number: str, **extra: Any) -> DeliveryResult:
    return DeliveryResult(response={"erp_voucher_no": number, "erp_id": number, **extra})


# -- U8 OpenAPI ----------------------------------------------------------------------------------


def u8_error(body: Mapping[str, Any]) -> DeliveryError:
    """The DeliveryError for a U8 answer whose errcode is not 0 (unknown codes: permanent)."""
    code = str(body.get("errcode"))
    error_class = codes.U8_CODES.get(code, ErrorClass.PERMANENT)
    return DeliveryError(error_class, f"U8 errcode {code}: {body.get('errmsg', '')}")


def _u8_json(response: httpx.Response) -> dict[str, Any]:
    if not response.is_success:
        raise DeliveryError.from_response(response)
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        reason = f"malformed answer from {response.request.url.path}: {exc}"
        raise DeliveryError(ErrorClass.PERMANENT, reason) from exc
    if not isinstance(body, dict):
        reason = f"malformed answer from {response.request.url.path}: not an object"
        raise DeliveryError(ErrorClass.PERMANENT, reason)
    return body


class YonyouU8Connector(_YonyouConnector):
    """Vouchers into U8 through its OpenAPI, under a tradeid each."""

    manifest: ClassVar[ConnectorManifest] = U8_MANIFEST

    def ledger(self, config: YonyouConfig) -> str:
        return f"U8 account set {config.fields['to_account']}"

    def __init__(
        self,
        config: dict[str, Any],
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin_seconds: float = 60.0,
    ) -> None:
        super().__init__(config, http)
        self._clock = clock
        self.tokens = CachedToken(
            self._fetch_token,
            clock=clock,
            refresh_margin_seconds=refresh_margin_seconds,
            header="token",
            scheme="",
        )

    def __repr__(self) -> str:
        app_key = self.config.fields["app_key"] if self.config else None
        return f"YonyouU8Connector(app_key={app_key!r}, {self.tokens!r})"

    async def _fetch_token(self) -> AccessToken:
        config = self._checked()
        started = self._clock()
        try:
            response = await self._http.get(
                config.base_url + "/system/token",
                params={
                    "from_account": config.fields["from_account"],
                    "app_key": config.fields["app_key"],
                    "app_secret": config.fields["app_secret"],
                },
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            raise DeliveryError.from_exception(exc) from exc
        body = _u8_json(response)
        if str(body.get("errcode")) != codes.U8_OK:
            raise u8_error(body)
        token = body.get("token")
        value = token.get("id") if isinstance(token, dict) else None
        lifetime = token.get("expiresIn", 7200) if isinstance(token, dict) else None
        if not isinstance(value, str) or not value or not isinstance(lifetime, int | float):
            raise DeliveryError(ErrorClass.PERMANENT, "malformed token answer from U8")
        return AccessToken(value, started + float(lifetime))

    async def _call(
        self, method: str, path: str, params: dict[str, str], content: bytes | None = None
    ) -> dict[str, Any]:
        """One OpenAPI call with the account and token parameters; an expired token is
        replaced and the call sent once more. Returns the answer when errcode is 0."""
        config = self._checked()
        for attempt in (1, 2):
            token = (await self.tokens.token()).value
            response = await self._http.request(
                method,
                config.base_url + path,
                params={
                    "from_account": config.fields["from_account"],
                    "to_account": config.fields["to_account"],
                    "app_key": config.fields["app_key"],
                    "token": token,
                    **params,
                },
                content=content,
                headers={"content-type": "application/json"} if content is not None else {},
                timeout=config.timeout_seconds,
            )
            body = _u8_json(response)
            code = str(body.get("errcode"))
            if code == codes.U8_OK:
                return body
            if code == codes.U8_TOKEN_INVALID and attempt == 1:
                await self.tokens.rejected({"token": token})
                continue
            raise u8_error(body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, config: YonyouConfig, message: OutboundMessage) -> DeliveryResult:
        key = message.idempotency_key
        body = u8_voucher(message.payload, key, config.enter)
        answer = await self._call(
            "POST", "/api/voucher/add", {"tradeid": key, "sync": "1"}, orjson.dumps(body)
        )
        return self._posting(key, answer)

    def _posting(self, key: str, answer: Mapping[str, Any]) -> DeliveryResult:
        number = answer.get("id")
        if not isinstance(number, str) or not number:
            reason = f"U8 answered {key} without a voucher id: {orjson.dumps(answer)[:300]!r}"
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
        return _posted(number, tradeid=answer.get("tradeid"))

    async def _find(self, config: YonyouConfig, message: OutboundMessage) -> DeliveryResult | None:
        key = message.idempotency_key
        answer = await self._call("GET", "/api/voucher/batch_get", {"reserve2": key})
        vouchers = answer.get("voucher")
        if not isinstance(vouchers, list) or not all(isinstance(v, dict) for v in vouchers):
            reason = "malformed voucher/batch_get answer: voucher is not a list"
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
        numbers = [str(v.get("id")) for v in vouchers]
        result: DeliveryResult | None = _found(key, numbers, lambda n: _posted(n, tradeid=key))
        return result

    async def health(self) -> HealthReport:
        """A fresh token with the configured app: reachable and authorised, or why not."""
        if self.config is None:
            return HealthReport(False, self._config_error)
        started = time.perf_counter()
        try:
            await self._fetch_token()
        except DeliveryError as exc:
            return HealthReport(False, f"{self.config.base_url}: {exc.reason}")
        latency = round((time.perf_counter() - started) * 1000, 1)
        return HealthReport(True, f"{self.config.base_url} gave a token in {latency} ms", latency)


# -- NC / NCC -------------------------------------------------------------------------------------


def nc_error(result: NCResult) -> DeliveryError:
    """The DeliveryError for an NC result that is not a success (unknown codes: permanent)."""
    error_class = codes.NC_CODES.get(result.resultcode, ErrorClass.PERMANENT)
    return DeliveryError(error_class, f"NC resultcode {result.resultcode}: {result.description}")


class YonyouNCConnector(_YonyouConnector):
    """Vouchers into NC / NCC through the exchange platform's `ufinterface` XML."""

    manifest: ClassVar[ConnectorManifest] = NC_MANIFEST

    def ledger(self, config: YonyouConfig) -> str:
        return f"NC account {config.fields['account']}"

    def _envelope(self, config: YonyouConfig) -> NCEnvelope:
        f = config.fields
        return NCEnvelope(f["sender"], f["receiver"], f["company"], config.enter, f["encoding"])

    async def _exchange(self, config: YonyouConfig, document: bytes) -> list[NCResult]:
        encoding = config.fields["encoding"]
        response = await self._http.post(
            config.base_url + NC_PATH,
            params={"account": config.fields["account"], "groupcode": config.fields["groupcode"]},
            content=document,
            headers={"content-type": f"text/xml; charset={encoding}"},
            timeout=config.timeout_seconds,
        )
        if not response.is_success:
            raise DeliveryError.from_response(response)
        try:
            return parse_nc_result(response.content)
        except ValueError as exc:
            reason = f"malformed result XML from NC: {exc}"
            raise DeliveryError(ErrorClass.PERMANENT, reason) from exc

    async def _post(self, config: YonyouConfig, message: OutboundMessage) -> DeliveryResult:
        key = message.idempotency_key
        document = nc_voucher_xml(message.payload, key, self._envelope(config))
        (result, *_) = await self._exchange(config, document)
        if not result.successful:
            return DeliveryResult(error=nc_error(result))
        if not result.content:
            reason = f"NC imported {key} but answered no voucher number"
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
        return _posted(result.content, bdocid=result.bdocid)

    def query_xml(self, config: YonyouConfig, reference: str) -> bytes:
        """The `proc="query"` exchange asking for the vouchers that carry `reference`."""
        envelope = self._envelope(config)
        root = etree.Element(
            "ufinterface",
            roottag="voucher",
            billtype="gl",
            proc="query",
            sender=envelope.sender,
            receiver=envelope.receiver,
        )
        query = etree.SubElement(root, "voucher_query")
        etree.SubElement(query, "reserve2").text = reference
        return etree.tostring(root, xml_declaration=True, encoding=envelope.encoding)

    async def _find(self, config: YonyouConfig, message: OutboundMessage) -> DeliveryResult | None:
        key = message.idempotency_key
        results = await self._exchange(config, self.query_xml(config, key))
        failed = [r for r in results if not r.successful]
        if failed:
            return DeliveryResult(error=nc_error(failed[0]))
        numbers = [r.content for r in results if r.content]
        result: DeliveryResult | None = _found(key, numbers, lambda n: _posted(n, bdocid=key))
        return result

    async def health(self) -> HealthReport:
        """A query exchange with the configured account and sender."""
        if self.config is None:
            return HealthReport(False, self._config_error)
        config = self.config
        started = time.perf_counter()
        try:
            results = await self._exchange(config, self.query_xml(config, "finoa-health"))
        except Exception as exc:
            return HealthReport(False, f"{config.base_url}: {delivery_error(exc).reason}")
        latency = round((time.perf_counter() - started) * 1000, 1)
        refused = [r for r in results if not r.successful]
        if refused:
            return HealthReport(False, f"{config.base_url}: {nc_error(refused[0]).reason}", latency)
        return HealthReport(True, f"{config.base_url} answered in {latency} ms", latency)
