"""What the clients of the vendor OAs (DingTalk, Feishu, WeCom) share; each vendor's own
wire (paths, answer shapes, error codes, form widgets) stays in its folder.

- `VendorApi`: an app's access token, cached and fetched again 5 minutes before it expires
  (`CachedToken`), every call paced at the app's quota (`Pacer`), and one way to make an
  authorized call: the vendor's answer is read by the vendor (`Refusal` when it is not a
  success), a refused token is dropped and the call sent once more with a fresh one, and
  every refusal is classed by the vendor's codes in the one table of `finoa.messaging.retry`
  and told to the pacer (a refusal for frequency slows it down); `authorized_json` sends a
  body as JSON.
- `VendorOAConnector`: the connector around it: a config checked once, one handler per
  action, a mapping that does not fit answered CONFIG before anything is sent, the
  posted-lookup per message, health by fetching a token; `SweepFindings`, what a sweep of
  the vendor's approvals found (the commands their callbacks carry, a line per approval the
  claim mapping refuses).
- The mapping side: a claim submission from a vendor's approval (`claim_by_mapping`, every
  refused field named by its path), and the mapped body a vendor's form builder starts from
  (`mapped_create`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson

from finoa.connectors.auth import CachedToken, delivery_error
from finoa.connectors.base import (
    AccessToken,
    ApprovalResult,
    ConcludeApproval,
    ConnectorManifest,
    DeliveryResult,
    HealthReport,
    InboundCommand,
    InboundInvalid,
    OAChanges,
    OutboundMessage,
    SubmitClaim,
)
from finoa.connectors.instances import MAPPINGS_KEY
from finoa.connectors.pacing import (
    CALLS_AT_ONCE,
    REFUSAL_PAUSE,
    Pacer,
    app_pacer,
    each_call,
    rate_limit_setting,
)
from finoa.mapping import MappingCatalog, apply_mapping, code_tables
from finoa.messaging.retry import DeliveryError, ErrorClass, classify_vendor_code
from finoa.schemas import ClaimSubmission

REFRESH_MARGIN_SECONDS = 300.0  # a token is fetched again this long before it expires
CLAIM_MAPPING = "expense_claim"  # a vendor's approval -> a claim submission
CREATE_MAPPING = "expense_claim_create"  # a claim -> the vendor's approval (OA-led)
# What a token endpoint's refusal stays as: the vendor is busy or limiting, not refusing.
PASSING_REFUSALS = frozenset({ErrorClass.RATE_LIMITED, ErrorClass.TRANSIENT})


class WireMappingError(ValueError):
    """A canonical payload a vendor's mapping or form cannot express; names every field."""


def vendor_refusal(
    vendor: str,
    code: object,
    reason: str,
    *,
    status: int | None = None,
    retry_after: float | None = None,
    outcome_unknown: bool = False,
) -> DeliveryError:
    """The DeliveryError of a vendor's error code (`status`: the HTTP status, when it is an
    error too), classed by the one table; a refusal for frequency without a Retry-After is
    retried after `REFUSAL_PAUSE`."""
    error_class = classify_vendor_code(vendor, str(code), status)
    if retry_after is None and error_class is ErrorClass.RATE_LIMITED:
        retry_after = REFUSAL_PAUSE
    return DeliveryError(
        error_class, reason, retry_after=retry_after, outcome_unknown=outcome_unknown
    )


@dataclass(frozen=True)
class Refusal:
    """A vendor's answer that is not a success, as its reader classed it. `token_refused`:
    the access token was refused (fetch a fresh one and send once more)."""

    error: DeliveryError
    token_refused: bool = False


class VendorApi:
    """A vendor OA's API as finoa uses it: one per connector instance."""

    title: ClassVar[str]  # the vendor's name in messages: "DingTalk"
    token_header: ClassVar[str] = "authorization"  # where `CachedToken` puts the token
    token_scheme: ClassVar[str] = "Bearer"
    json_type: ClassVar[str] = "application/json"  # the content-type of a JSON body
    wait_out_once: ClassVar[float] = 0.0  # > 0: a refusal for frequency is waited out once

    def __init__(
        self,
        config: Any,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self.pacer = self.pacer_of(config)
        self.auth = CachedToken(
            self._fetch_token,
            clock=clock,
            refresh_margin_seconds=REFRESH_MARGIN_SECONDS,
            header=self.token_header,
            scheme=self.token_scheme,
        )
        self.backoffs = 0  # how often a frequency refusal was waited out (diagnostics)

    # -- the vendor's side ------------------------------------------------------------------
    @classmethod
    def app_of(cls, config: Any) -> tuple[str, ...] | None:
        """The app whose quota the instance's calls share with its callback handler's (one
        pacer per app in the process: `app_pacer`); None: a pacer of the client's own."""
        return None

    @classmethod
    def pacer_of(cls, config: Any) -> Pacer:
        app = cls.app_of(config)
        rate = config.rate_limit_per_second
        return Pacer(rate) if app is None else app_pacer(rate, *app)

    async def request_token(self) -> httpx.Response:
        """Ask the token endpoint for a token (with `send`)."""
        raise NotImplementedError

    def read_token(self, response: httpx.Response) -> tuple[str, float]:
        """The token and its lifetime in seconds from the token endpoint's answer; raises
        DeliveryError (`refused_credentials`, `token_fields`)."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------
    async def send(self, method: str, url: str, **request: Any) -> httpx.Response:
        """One request in the app's next slot; a failure to get an answer is a
        DeliveryError classed by the one table."""
        await self.pacer.slot()
        try:
            return await self._http.request(
                method, url, timeout=self.config.timeout_seconds, **request
            )
        except Exception as exc:
            raise delivery_error(exc) from exc

    async def _fetch_token(self) -> AccessToken:
        started = self._clock()
        response = await self.request_token()
        try:
            value, lifetime = self.read_token(response)
        except DeliveryError as exc:
            raise self.pacer.heard(exc) from None
        self.pacer.answered()
        return AccessToken(value, started + lifetime)

    def refused_credentials(
        self, error: DeliveryError, what: str, error_class: ErrorClass = ErrorClass.AUTH
    ) -> DeliveryError:
        """A token endpoint's refusal: as it is while the vendor is busy or limiting, else
        the app's credentials are refused (`error_class`, AUTH unless told)."""
        if error.error_class in PASSING_REFUSALS:
            return error
        return DeliveryError(error_class, f"{self.title} refused {what}: {error.reason}")

    def token_fields(self, body: Any, value_key: str, lifetime_key: str) -> tuple[str, float]:
        """`body[value_key]` (a non-empty string) and `body[lifetime_key]` (seconds) of the
        token endpoint's answer (`body` as read, or its bytes)."""
        try:
            if isinstance(body, bytes):
                body = orjson.loads(body)
            value, lifetime = body[value_key], float(body[lifetime_key])
            if not isinstance(value, str) or not value:
                raise TypeError(f"{value_key} is not a non-empty string")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DeliveryError(
                ErrorClass.PERMANENT, f"malformed answer from {self.title}'s token endpoint: {exc}"
            ) from exc
        return value, lifetime

    async def authorized(
        self,
        method: str,
        url: str,
        read: Callable[[httpx.Response], Any],
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        token_param: str | None = None,
    ) -> Any:
        """A call with the app's token (in its header, or in the query parameter
        `token_param`); what `read` makes of the answer. `read` answers a
        `Refusal` for an answer that is not a success (or raises DeliveryError): a refused
        token is dropped and the call sent once more with a fresh one; a refusal for
        frequency is waited out once where the vendor says when (`wait_out_once`); any other
        refusal is raised. Every refusal is told to the pacer."""
        refreshed = waited = False
        while True:
            credentials = await self.auth.headers()
            query = dict(params or {})
            sent_headers = dict(headers or {})
            if token_param is not None:
                query[token_param] = credentials[self.token_header]
            else:
                sent_headers.update(credentials)
            response = await self.send(
                method, url, params=query or None, content=content, headers=sent_headers
            )
            try:
                answer = read(response)
            except DeliveryError as exc:
                raise self.pacer.heard(exc) from None
            if not isinstance(answer, Refusal):
                self.pacer.answered()
                return answer
            if answer.token_refused and not refreshed:
                refreshed = True
                await self.auth.rejected(credentials)
                continue
            error = answer.error
            if error.error_class is ErrorClass.RATE_LIMITED and self.wait_out_once and not waited:
                waited = True  # the pacer holds the next call back until the vendor's reset
                self.backoffs += 1
                self.pacer.refused(min(error.retry_after or 1.0, self.wait_out_once))
                continue
            raise self.pacer.heard(error)

    async def authorized_json(
        self,
        method: str,
        url: str,
        read: Callable[[httpx.Response], Any],
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        token_param: str | None = None,
    ) -> Any:
        """`authorized`, with `body` (when there is one) sent as JSON (`json_type`)."""
        content = orjson.dumps(body) if body is not None else None
        return await self.authorized(
            method,
            url,
            read,
            params=params,
            content=content,
            headers={"content-type": self.json_type} if content is not None else None,
            token_param=token_param,
        )


Handler = Callable[[Any, Any], Awaitable[dict[str, Any]]]


class VendorOAConnector:
    """A vendor OA's connector of one instance: `api` is None while its config is wrong
    (every call then answers CONFIG with the reason)."""

    manifest: ClassVar[ConnectorManifest]
    config_type: ClassVar[Any]  # the vendor's config class, with `parse(config)`
    api_type: ClassVar[type[VendorApi]]
    uses_mappings: ClassVar[bool] = True  # it receives the `mappings:` overrides
    calls_at_once: ClassVar[int] = CALLS_AT_ONCE  # a chunk's messages sent at once
    token_name: ClassVar[str] = "token"  # what `health` says was issued

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        self._config_error = ""
        self.api: Any = None
        try:
            self.api = self.api_type(self.config_type.parse(config), http)
        except ValueError as exc:
            self._config_error = f"{self.manifest.name} config: {exc}"

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        cls.config_type.parse(config)

    @property
    def auth(self) -> CachedToken | None:
        return self.api.auth if self.api is not None else None

    def handlers(self) -> dict[str, Handler]:
        """What each action does: `handler(api, payload)` -> the response to keep."""
        return {
            "approval.create": self._create_approval,
            "todo.push": self._push_todo,
            "status.writeback": self.acknowledge,
            "notice.send": self._notice,
        }

    async def _create_approval(self, api: Any, claim: Any) -> dict[str, Any]:
        """OA-led: the claim's approval in the vendor's approval app."""
        raise NotImplementedError

    async def _push_todo(self, api: Any, todo: Any) -> dict[str, Any]:
        """Hub-led: open or close the task's todo for its approver."""
        raise NotImplementedError

    async def _notice(self, api: Any, notice: Any) -> dict[str, Any]:
        """A notice to one person from the app."""
        raise NotImplementedError

    def configured(self) -> Any:
        """The api; DeliveryError CONFIG while the config is wrong."""
        if self.api is None:
            raise DeliveryError(ErrorClass.CONFIG, self._config_error)
        return self.api

    def _unconfigured(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        error = DeliveryError(ErrorClass.CONFIG, self._config_error)
        return [DeliveryResult(error=error) for _ in messages]

    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """Each message on its own call (the vendors have no batch calls), `calls_at_once`
        at a time (paced at the app's quota; a chunk holds no two messages of one
        document); one result each."""
        if self.api is None:
            return self._unconfigured(messages)
        api = self.api
        return await each_call(messages, lambda m: self._one(api, m), self.calls_at_once)

    async def _one(self, api: Any, message: OutboundMessage) -> DeliveryResult:
        handlers = self.handlers()
        handler = handlers.get(message.action)
        if handler is None:
            name = self.manifest.name
            reason = f"{name} has no action {message.action!r}; it knows {list(handlers)}"
            return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, reason))
        try:
            return DeliveryResult(response=await handler(api, message.payload))
        except WireMappingError as exc:
            return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, f"mapping: {exc}"))
        except Exception as exc:
            return DeliveryResult(error=delivery_error(exc))

    async def acknowledge(self, api: Any, payload: Mapping[str, Any]) -> dict[str, Any]:
        """An action the vendor shows by itself (a status write-back): no call."""
        return {"status": "acknowledged"}

    async def lookup_one(self, api: Any, message: OutboundMessage) -> DeliveryResult | None:
        """Did this message already happen at the vendor? None: certainly not (send it)."""
        return None

    async def lookup(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult | None]:
        """The posted-lookup, message by message (`lookup_one`)."""
        if self.api is None:
            return list(self._unconfigured(messages))
        results: list[DeliveryResult | None] = []
        for message in messages:
            try:
                results.append(await self.lookup_one(self.api, message))
            except Exception as exc:
                results.append(DeliveryResult(error=delivery_error(exc)))
        return results

    async def health(self) -> HealthReport:
        """An access token for the app, fetched now."""
        if self.api is None:
            return HealthReport(False, self._config_error)
        started = time.perf_counter()
        try:
            await self.api._fetch_token()
        except DeliveryError as exc:
            return HealthReport(False, exc.reason)
        latency = round((time.perf_counter() - started) * 1000, 1)
        title = self.api_type.title
        return HealthReport(True, f"{title} issued a {self.token_name} in {latency} ms", latency)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""


def mapping_problem(what: str, exc: InboundInvalid) -> str:
    """A sweep's line for an approval the claim mapping refuses: its first field."""
    first = exc.errors[0]
    path = ".".join(str(p) for p in first["loc"])
    return f"{what}: {path}: {first['msg']}"


@dataclass
class SweepFindings:
    """What a sweep of a vendor's approvals (`approval_changes`) found: the commands their
    callbacks carry, under the message ids the callbacks' commands have (`<vendor>-start:<id>`,
    `<vendor>-result:<id>`), and a line per approval the claim mapping refuses."""

    vendor: str
    commands: list[InboundCommand] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def started(
        self,
        claim_of: Callable[[Any, str, Any], ClaimSubmission],
        config: Any,
        approval_id: str,
        approval: Any,
    ) -> bool:
        """An approval an employee started at the vendor: its claim, `claim_of(config,
        approval_id, approval)`; False, with a problem line, when the mapping refuses it."""
        try:
            claim = claim_of(config, approval_id, approval)
        except InboundInvalid as exc:
            self.problems.append(mapping_problem(f"instance {approval_id}", exc))
            return False
        self.commands.append(
            SubmitClaim(f"{self.vendor}-start:{approval_id}", claim, oa_approval_id=approval_id)
        )
        return True

    def concluded(self, approval_id: str, result: ApprovalResult, **details: Any) -> None:
        """An approval that ended: its claim's conclusion (`details`: actor_id, comment,
        claim_id)."""
        self.commands.append(
            ConcludeApproval(f"{self.vendor}-result:{approval_id}", approval_id, result, **details)
        )

    def changes(self) -> OAChanges:
        return OAChanges(tuple(self.commands), tuple(self.problems))


# -- mapping ---------------------------------------------------------------------------------


def claim_by_mapping(
    catalog: MappingCatalog, vendor: str, document: Mapping[str, Any], root: str
) -> ClaimSubmission:
    """A claim submission from a vendor's approval (`document`), by `<vendor>/expense_claim`;
    InboundInvalid naming every field the mapping or the claim's rules refuse (paths of the
    claim under `root`)."""
    loaded = catalog.get(vendor, CLAIM_MAPPING)
    result = apply_mapping(
        loaded.spec,
        document,
        code_tables=code_tables(loaded, unchecked=True),
        target=ClaimSubmission,
    )
    if not result.ok:
        raise InboundInvalid(
            [
                {
                    "type": "mapping",
                    "loc": (root, *_loc(e.path)),
                    "msg": e.message,
                    "input": e.source,
                }
                for e in result.errors
            ]
        )
    return ClaimSubmission.model_validate(result.value)


def _loc(path: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for piece in path.replace("]", "").split("."):
        name, *indexes = piece.split("[")
        if name:
            parts.append(name)
        parts.extend(int(i) for i in indexes)
    return tuple(parts)


def mapped_create(catalog: MappingCatalog, vendor: str, claim: Mapping[str, Any]) -> Any:
    """A claim through `<vendor>/expense_claim_create`: what the vendor's form builder makes
    its body of. WireMappingError naming every field the mapping refuses."""
    loaded = catalog.get(vendor, CREATE_MAPPING)
    result = apply_mapping(loaded.spec, claim, code_tables=code_tables(loaded, unchecked=True))
    if not result.ok:
        raise WireMappingError("; ".join(str(error) for error in result.errors))
    return result.value


# -- config ----------------------------------------------------------------------------------


class ConfigCheck:
    """Checks of a vendor instance's config shared by the vendors (ValueError `field:
    reason`): unknown fields, required strings, URLs, numbers and the mapping overrides."""

    def __init__(self, vendor: str, config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
        self.vendor = vendor
        self.config = config
        unknown = sorted(set(config) - set(schema["properties"]) - {MAPPINGS_KEY})
        if unknown:
            raise ValueError(f"{unknown[0]}: is not a {vendor} config field")
        for name in schema["required"]:
            value = config.get(name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name}: required, a non-empty string")

    def url(self, name: str, default: str | None = None) -> str:
        """An http(s) URL, without its trailing slash."""
        url = self.config.get(name, default)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"{name}: an http(s) URL")
        return url.rstrip("/")

    def optional_url(self, name: str) -> str | None:
        """An http(s) URL when given, as it is given."""
        value = self.config.get(name)
        if value is not None and (
            not isinstance(value, str) or not value.startswith(("http://", "https://"))
        ):
            raise ValueError(f"{name}: an http(s) URL")
        return value

    def whole_number_or_none(self, name: str) -> int | None:
        value = self.config.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{name}: a whole number")
        return value

    def timeout(self) -> float:
        timeout = self.config.get("timeout_seconds", 5)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError("timeout_seconds: must be a positive number")
        return float(timeout)

    def rate(self, default: float) -> float:
        return rate_limit_setting(self.config, default)

    def tolerance(self, default: int) -> int:
        tolerance = self.config.get("callback_tolerance_seconds", default)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 1:
            raise ValueError("callback_tolerance_seconds: must be a positive whole number")
        return tolerance

    def catalog(self) -> MappingCatalog:
        """The mapping catalog with the instance's overrides; both claim mappings checked."""
        try:
            catalog = MappingCatalog(self.config.get(MAPPINGS_KEY), Path.cwd())
            for name in (CLAIM_MAPPING, CREATE_MAPPING):
                catalog.get(self.vendor, name)
        except ValueError as exc:
            raise ValueError(f"mappings: {exc}") from None
        return catalog
