"""Auth providers for connector instances: a static bearer key, or cached access tokens.

`CachedToken` keeps one token per instance and fetches a new one ahead of expiry (by
`refresh_margin_seconds`); callers arriving while a fetch runs wait for that same fetch. When
the peer answers 401, `send_authorized` tells the provider, which drops the rejected token,
and sends the request once more with a fresh one; a second 401 is an AUTH error (as every
401 is, by the status table).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx
import orjson

from finoa.connectors.base import AccessToken, AuthProvider
from finoa.messaging.retry import DeliveryError, ErrorClass

Clock = Callable[[], float]
TokenFetch = Callable[[], Awaitable[AccessToken]]


@dataclass(frozen=True)
class StaticBearer:
    """`Authorization: Bearer <key>` on every request; a 401 cannot be cured by refreshing."""

    key: str = field(repr=False)

    async def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}

    async def rejected(self, headers: Mapping[str, str]) -> bool:
        return False


class CachedToken:
    """An access token fetched by `fetch`, cached until `refresh_margin_seconds` before it
    expires (on `clock`), fetched once for all concurrent callers."""

    def __init__(
        self,
        fetch: TokenFetch,
        *,
        clock: Clock = time.monotonic,
        refresh_margin_seconds: float = 60.0,
        header: str = "authorization",
        scheme: str = "Bearer",
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = refresh_margin_seconds
        self._header = header
        self._scheme = scheme
        self._token: AccessToken | None = None
        self._inflight: asyncio.Future[AccessToken] | None = None
        self.fetches = 0  # how many times a token was asked for (diagnostics)

    def __repr__(self) -> str:
        state = "none" if self._token is None else f"expires_at={self._token.expires_at}"
        return f"CachedToken({state})"

    async def token(self) -> AccessToken:
        """The cached token while it is fresh, else the result of one shared fetch."""
        token = self._token
        if token is not None and self._clock() < token.expires_at - self._margin:
            return token
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh())
        # shield: a caller that gives up does not cancel the fetch the others wait for
        return await asyncio.shield(self._inflight)

    async def _refresh(self) -> AccessToken:
        try:
            self.fetches += 1
            token = await self._fetch()
            self._token = token
            return token
        finally:
            self._inflight = None

    def _value(self, token: AccessToken) -> str:
        return f"{self._scheme} {token.value}" if self._scheme else token.value

    async def headers(self) -> dict[str, str]:
        return {self._header: self._value(await self.token())}

    async def rejected(self, headers: Mapping[str, str]) -> bool:
        token = self._token
        if token is not None and headers.get(self._header) == self._value(token):
            self._token = None  # the next caller fetches; later 401s on it refresh once
        return True


def client_credentials(
    http: httpx.AsyncClient,
    token_url: str,
    client_id: str,
    client_secret: str,
    *,
    clock: Clock = time.monotonic,
    timeout_seconds: float = 5.0,
) -> TokenFetch:
    """A token fetch for OAuth 2.0 client credentials (RFC 6749 §4.4): POST the id and
    secret as a form, read `access_token` and `expires_in` (seconds) from the answer."""

    async def fetch() -> AccessToken:
        started = clock()
        try:
            response = await http.post(
                token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": client_secret,
                },
                timeout=timeout_seconds,
            )
        except Exception as exc:
            raise DeliveryError.from_exception(exc) from exc
        if response.status_code in (400, 401, 403):
            raise DeliveryError(
                ErrorClass.AUTH,
                f"the token endpoint refused the client: HTTP {response.status_code}",
            )
        if not response.is_success:
            raise DeliveryError.from_response(response)
        try:
            body = orjson.loads(response.content)
            value, lifetime = body["access_token"], float(body.get("expires_in", 3600))
            if not isinstance(value, str) or not value:
                raise TypeError("access_token is not a non-empty string")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DeliveryError(
                ErrorClass.PERMANENT, f"malformed answer from the token endpoint: {exc}"
            ) from exc
        return AccessToken(value, started + lifetime)

    return fetch


async def send_authorized(
    auth: AuthProvider, send: Callable[[dict[str, str]], Awaitable[httpx.Response]]
) -> httpx.Response:
    """`send(headers)` with the provider's credentials; on 401 refresh and send once more.
    The answer is returned as it is: a second 401 stays a 401, which `delivery_error` (like
    every status table) classes as AUTH. A failing token fetch raises its DeliveryError."""
    headers = await auth.headers()
    response = await send(headers)
    if response.status_code != 401 or not await auth.rejected(headers):
        return response
    return await send(await auth.headers())


def delivery_error(exc: BaseException) -> DeliveryError:
    """The DeliveryError for anything raised while sending: itself when it is one (a token
    fetch that failed), else classed by the one table in `finoa.messaging.retry`."""
    return exc if isinstance(exc, DeliveryError) else DeliveryError.from_exception(exc)
