"""Limits on what callers may send: the body size, enforced before the body is read into
memory, and failed sign-in attempts at the token endpoint; and the no-store headers of that
endpoint's answers."""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Who failed: ("client", client id) or ("address", remote address).
AttemptKey = tuple[str, str]


class FailedAttempts:
    """Failed client-credential attempts, counted per client id and per remote address.

    `max_failures` failures of one key within `window_seconds` lock it for `lockout_seconds`:
    while locked, even the right secret is refused. The counters live in this process's
    memory (each hub process counts on its own, and a restart forgets them); at most
    `max_keys` keys are tracked, the least recently failed forgotten first.
    """

    def __init__(
        self,
        *,
        max_failures: int = 10,
        window_seconds: float = 300,
        lockout_seconds: float = 300,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.lockout_seconds = lockout_seconds
        self.max_keys = max_keys
        self.clock = clock
        self._failures: OrderedDict[AttemptKey, deque[float]] = OrderedDict()
        self._locked: dict[AttemptKey, float] = {}

    def retry_after(self, keys: Iterable[AttemptKey]) -> int | None:
        """Whole seconds until every lock on `keys` has ended; None when none is locked."""
        now = self.clock()
        waits = []
        for key in keys:
            until = self._locked.get(key)
            if until is None:
                continue
            if until <= now:
                del self._locked[key]
            else:
                waits.append(until - now)
        return math.ceil(max(waits)) if waits else None

    def failed(self, keys: Iterable[AttemptKey]) -> list[AttemptKey]:
        """Count a failure against each key; the keys that this failure locked."""
        now = self.clock()
        locked = []
        for key in keys:
            times = self._failures.pop(key, None) or deque()
            times.append(now)
            while times and times[0] <= now - self.window_seconds:
                times.popleft()
            if len(times) >= self.max_failures:
                self._locked[key] = now + self.lockout_seconds
                locked.append(key)
            else:
                self._failures[key] = times
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)
        if len(self._locked) > self.max_keys:
            self._locked = {k: until for k, until in self._locked.items() if until > now}
        return locked

    def succeeded(self, key: AttemptKey) -> None:
        """A correct secret: forget the key's earlier failures."""
        self._failures.pop(key, None)


class NoStore:
    """Mark every answer under `path` as not to be cached (tokens must not be kept)."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Cache-Control"] = "no-store"
                headers["Pragma"] = "no-cache"
            await send(message)

        await self.app(scope, receive, send_no_store)


class BodySizeLimit:
    """Refuse bodies larger than `max_bytes` with 413 problem+json; paths matching `uploads`
    (file uploads) may send up to `upload_max_bytes`."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        uploads: re.Pattern[str] | None = None,
        upload_max_bytes: int = 0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = uploads
        self.upload_max_bytes = upload_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.uploads is not None and self.uploads.fullmatch(scope["path"]):
            limited = BodySizeLimit(self.app, max(self.max_bytes, self.upload_max_bytes))
            await limited(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
                await self.app(scope, receive, send)  # the server enforces the length
                return
        # No declared length (chunked): buffer up to the limit before the app sees anything,
        # so an oversized body is refused here rather than failing inside body parsing.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        buffered: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([buffered], receive), send)

    async def _refuse(self, send: Send) -> None:
        body: dict[str, Any] = {
            "type": "https://finoa.dev/problems/body-too-large",
            "title": "Request body too large",
            "status": 413,
            "detail": f"body: larger than the {self.max_bytes}-byte limit",
            "field": "body",
        }
        payload = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A receive callable that hands out `messages`, then defers to `then`."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
