"""trytond's JSON-RPC, spoken with httpx.

Requests are `POST {base_url}/{database}/rpc/` with `{"id", "method", "params"}`; an answer
carries `result` or `error`. Dates and decimals travel as tagged objects
(`{"__class__": "date", "year": …}`, `{"__class__": "Decimal", "decimal": "12.50"}`).

A session comes from `common.db.login` (`[user id, token, …]`) and is sent as
`Authorization: Session base64(login:user id:token)`. trytond answers 401 when the session
has expired or was ended: the client logs in again, once, and repeats the call. The user's
context (company, language) comes from `model.res.user.get_preferences` and goes with every
call.

Failures become `DeliveryError`s through the hub's one table: HTTP statuses as any peer's,
and Tryton's own error answers by their exception name (`UserError` and `UserWarning` are
permanent, a `ConcurrencyException` transient, a `LoginException` an auth failure).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import itertools
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import httpx
import orjson

from finoa.connectors.auth import delivery_error
from finoa.messaging.retry import DeliveryError, ErrorClass

ERROR_CLASSES: dict[str, ErrorClass] = {
    "UserError": ErrorClass.PERMANENT,
    "UserWarning": ErrorClass.PERMANENT,
    "AccessError": ErrorClass.PERMANENT,
    "ConcurrencyException": ErrorClass.TRANSIENT,
    "LoginException": ErrorClass.AUTH,
    "RateLimitException": ErrorClass.RATE_LIMITED,
}


def encode(value: Any) -> Any:
    """Python values -> trytond's JSON (dates and decimals tagged)."""
    if isinstance(value, dt.datetime):
        raise TypeError("datetimes are not sent to Tryton by finoa")
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    """trytond's JSON -> Python values."""
    if isinstance(value, dict):
        tag = value.get("__class__")
        if tag == "date":
            return dt.date(value["year"], value["month"], value["day"])
        if tag == "Decimal":
            return Decimal(value["decimal"])
        if tag == "datetime":
            return dt.datetime(
                value["year"],
                value["month"],
                value["day"],
                value.get("hour", 0),
                value.get("minute", 0),
                value.get("second", 0),
            )
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


class TrytonError(DeliveryError):
    """Tryton answered a call with an error of its own (`name`: its exception class)."""

    def __init__(self, name: str, message: str, method: str) -> None:
        error_class = ERROR_CLASSES.get(name, ErrorClass.TRANSIENT)
        super().__init__(error_class, f"Tryton {name} in {method}: {message}")
        self.name = name
        self.message = message


def _error_text(error: Any) -> tuple[str, str]:
    """(exception name, first message) of a JSON-RPC `error` member."""
    if isinstance(error, list) and error:
        name = str(error[0])
        args = error[1] if len(error) > 1 else []
        if isinstance(args, list) and args:
            # UserWarning's args are (name, message, description); UserError's (message, …)
            text = args[1] if name == "UserWarning" and len(args) > 1 else args[0]
            return name, str(text)
        if name in ERROR_CLASSES:
            return name, ""
        # an unexpected server exception: (text, traceback)
        return "ServerError", name.splitlines()[0][:300]
    return "ServerError", str(error)[:300]


class TrytonRPC:
    """One database of one trytond server, as one user; safe for concurrent callers."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        database: str,
        login: str,
        password: str,
        *,
        timeout_seconds: float = 30.0,
    ) -> None:
        self._http = http
        self.url = f"{base_url.rstrip('/')}/{database}/rpc/"
        self.login = login
        self._password = password
        self.timeout_seconds = timeout_seconds
        self._ids = itertools.count(1)
        self._session: str | None = None
        self.context: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self.logins = 0
        self.timings: dict[str, list[float]] = {}  # method -> [calls, seconds] (diagnostics)

    def __repr__(self) -> str:
        return f"TrytonRPC(url={self.url!r}, login={self.login!r}, password='***')"

    async def _post(self, method: str, params: Sequence[Any], session: str | None) -> Any:
        headers = {"Content-Type": "application/json"}
        if session is not None:
            headers["Authorization"] = f"Session {session}"
        body = {"id": next(self._ids), "method": method, "params": encode(list(params))}
        started = time.perf_counter()
        try:
            response = await self._http.post(
                self.url, content=orjson.dumps(body), headers=headers, timeout=self.timeout_seconds
            )
        finally:
            timing = self.timings.setdefault(method, [0, 0.0])
            timing[0] += 1
            timing[1] += time.perf_counter() - started
        if response.status_code == 401:
            raise _Unauthorized(method)
        if not response.is_success:
            raise DeliveryError.from_response(response)
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise DeliveryError(
                ErrorClass.TRANSIENT, f"Tryton answered {method} with no JSON: {exc}"
            ) from exc
        if "error" in answer and answer["error"] is not None:
            name, message = _error_text(answer["error"])
            raise TrytonError(name, message, method)
        return decode(answer.get("result"))

    async def _login(self, stale: str | None) -> str:
        async with self._lock:
            if self._session is not None and self._session != stale:
                return self._session  # another caller logged in meanwhile
            try:
                result = await self._post(
                    "common.db.login", [self.login, {"password": self._password}, "en"], None
                )
            except _Unauthorized:
                raise DeliveryError(
                    ErrorClass.AUTH, f"Tryton refused the login of {self.login!r}"
                ) from None
            user_id, token = result[0], result[1]
            session = base64.b64encode(f"{self.login}:{user_id}:{token}".encode()).decode()
            preferences = await self._post("model.res.user.get_preferences", [True, {}], session)
            self.context = {
                key: preferences[key]
                for key in ("company", "companies", "language")
                if key in preferences
            }
            self._session = session
            self.logins += 1
            return session

    async def call(
        self, method: str, *params: Any, context: Mapping[str, Any] | None = None
    ) -> Any:
        """Call `method` with `params` and the user's context (plus `context`); log in when
        there is no session, and once more when trytond says the session is gone."""
        try:
            session = self._session or await self._login(None)
            try:
                return await self._post(
                    method, [*params, {**self.context, **(context or {})}], session
                )
            except _Unauthorized:
                session = await self._login(session)
                try:
                    return await self._post(
                        method, [*params, {**self.context, **(context or {})}], session
                    )
                except _Unauthorized:
                    raise DeliveryError(
                        ErrorClass.AUTH, f"Tryton refused a fresh session for {method}"
                    ) from None
        except DeliveryError:
            raise
        except Exception as exc:
            raise delivery_error(exc) from exc

    async def logout(self) -> None:
        """End the session at the server (the next call logs in again)."""
        session = self._session
        if session is None:
            return
        self._session = None
        with contextlib.suppress(DeliveryError, _Unauthorized, httpx.HTTPError):
            await self._post("common.db.logout", [], session)

    @property
    def session(self) -> str | None:
        return self._session


class _Unauthorized(Exception):
    def __init__(self, method: str) -> None:
        super().__init__(f"HTTP 401 from Tryton for {method}")
