"""What every vendor simulator shares: injectable faults, SQLite storage, problem answers,
bearer keys and serving.

A simulator is a FastAPI app of its own, served in its own process (`finoa sim …`). Its
`/api/*` routes are the vendor's wire format; `/_sim/*` routes steer it in tests (faults,
stats). Faults are drawn once per `/api/*` request: latency, an error status, a hang (the
request never reaches the handler) or a drop (the handler runs, the answer is lost).
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.util
import random
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HANG_SECONDS = 60.0


def now_iso() -> str:
    """UTC now as ISO 8601 with milliseconds and a Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_response(
    data: Any,
    status: int = 200,
    *,
    media_type: str = "application/json",
    headers: dict[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> Response:
    """A JSON answer encoded with orjson."""
    return Response(
        orjson.dumps(data),
        status_code=status,
        media_type=media_type,
        headers=headers,
        background=background,
    )


class Problem(Exception):
    """Raised by a handler; answered as `application/problem+json`."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}

    def response(self) -> Response:
        body = {"status": self.status, "title": self.title, "detail": self.detail, **self.extra}
        return json_response(
            body, self.status, media_type="application/problem+json", headers=self.headers
        )


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response()


def install_problems(app: FastAPI) -> None:
    """Answer `Problem` exceptions as problem+json."""
    app.add_exception_handler(Problem, _problem_handler)


def bearer_guard(api_key: str) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency refusing requests without `Authorization: Bearer <api_key>`."""
    expected = f"Bearer {api_key}".encode()

    async def check(request: Request) -> None:
        got = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(got, expected):
            problem = Problem(401, "Unauthorized", "missing or wrong bearer api key")
            problem.headers["www-authenticate"] = "Bearer"
            raise problem

    return check


async def read_json(request: Request) -> Any:
    """The request body parsed as JSON, or a 400 problem."""
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "Bad request", f"body is not JSON: {exc}") from None


class FaultSpec(BaseModel):
    """The body of `POST /_sim/faults`."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(default=0, ge=0, le=600_000)
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    error_status: int = Field(default=503, ge=400, le=599)
    timeout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    count: int | None = Field(default=None, ge=1)
    seed: int | None = None


class FaultState:
    """The active faults and what they did; drawn once per `/api/*` request."""

    def __init__(self) -> None:
        self.spec: FaultSpec | None = None
        self.remaining: int | None = None
        self.rng = random.Random()
        self.counts = {"requests": 0, "errors": 0, "timeouts": 0, "drops": 0}

    def set(self, spec: FaultSpec) -> None:
        self.spec = spec
        self.remaining = spec.count
        self.rng = random.Random(spec.seed)

    def clear(self) -> None:
        self.spec = None
        self.remaining = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "active": self.spec.model_dump() if self.spec else None,
            "remaining": self.remaining,
            "injected": {k: v for k, v in self.counts.items() if k != "requests"},
        }

    def draw(self) -> tuple[float, str | None]:
        """Seconds of latency and the fault (`error`, `timeout`, `drop` or None) for a request."""
        self.counts["requests"] += 1
        spec = self.spec
        if spec is None:
            return 0.0, None
        if self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.clear()
        fault: str | None = None
        # Always draw all three so a seed gives the same sequence whatever the rates.
        e, t, d = self.rng.random(), self.rng.random(), self.rng.random()
        if e < spec.error_rate:
            fault = "error"
        elif t < spec.timeout_rate:
            fault = "timeout"
        elif d < spec.drop_rate:
            fault = "drop"
        if fault is not None:
            self.counts[fault + "s"] += 1
        return spec.latency_ms / 1000, fault


class FaultMiddleware:
    """Pure ASGI middleware applying FaultState to `/api/*` requests (or to the paths under
    `prefixes`, for a vendor whose interface lives elsewhere)."""

    def __init__(
        self,
        app: ASGIApp,
        state: FaultState,
        hang_seconds: float = HANG_SECONDS,
        prefixes: tuple[str, ...] = ("/api/",),
    ):
        self.app = app
        self.state = state
        self.hang_seconds = hang_seconds
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        spec = self.state.spec
        latency, fault = self.state.draw()
        if latency:
            await asyncio.sleep(latency)
        if fault == "error":
            status = spec.error_status if spec else 503
            problem = Problem(status, "Injected fault", f"simulated HTTP {status}")
            if status in (429, 503):
                problem.headers["retry-after"] = "1"
            await problem.response()(scope, receive, send)
        elif fault == "timeout":
            await self._hang_then_504(scope, receive, send)
        elif fault == "drop":

            async def swallow(message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            await self._hang_then_504(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _hang_then_504(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Never answer while the client waits; give up after hang_seconds."""

        async def until_disconnect() -> bool:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return True

        try:
            await asyncio.wait_for(until_disconnect(), self.hang_seconds)
        except TimeoutError:
            problem = Problem(504, "Injected fault", "simulated hang")
            await problem.response()(scope, receive, send)


def add_sim_routes(app: FastAPI, faults: FaultState) -> None:
    """`/_sim/faults` routes for a simulator app."""

    @app.post("/_sim/faults")
    async def set_faults(spec: FaultSpec) -> Response:
        faults.set(spec)
        return json_response(faults.snapshot())

    @app.get("/_sim/faults")
    async def get_faults() -> Response:
        return json_response(faults.snapshot())

    @app.delete("/_sim/faults")
    async def clear_faults() -> Response:
        faults.clear()
        return json_response(faults.snapshot())


def open_database(path: Path, schema: str) -> sqlite3.Connection:
    """A WAL-mode SQLite connection in autocommit mode (use `transaction` to write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(schema)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run an app with uvicorn: uvloop and httptools when available, quiet logs."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


CALLBACKS_IN_FLIGHT = 16


class CallbackPlumbing:
    """What the OA simulators that call the hub back share: a queue of stored callbacks
    (table `callbacks`, column `seq`, state `pending`/`retrying` until answered) drained by
    one sender task, background work, and the HTTP client they call out with.

    A simulator sets `conn` (its SQLite connection) and implements `_send_callbacks`;
    `reply_timeout` is how long a callback waits for the hub's answer."""

    conn: sqlite3.Connection
    reply_timeout: float = 10.0

    def __init__(self) -> None:
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self.tasks: set[asyncio.Task[None]] = set()
        self.sender: asyncio.Task[None] | None = None
        self.http: httpx.AsyncClient | None = None
        # callbacks in flight at once, as a vendor's push service bounds them: an unbounded
        # burst made the client's pool scan hundreds of waiting requests per answer, and the
        # simulator, not the hub, became what limited a loop
        self.sending = asyncio.Semaphore(CALLBACKS_IN_FLIGHT)

    async def _send_callbacks(self) -> None:
        raise NotImplementedError

    def client(self) -> httpx.AsyncClient:
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=self.reply_timeout)
        return self.http

    def later(self, work: Any) -> None:
        """Run `work` in the background; closing the simulator cancels it."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def resume(self) -> None:
        """Start the sender, and queue again what a previous run left unanswered."""
        self.sender = asyncio.ensure_future(self._send_callbacks())
        rows = self.conn.execute(
            "SELECT seq FROM callbacks WHERE state IN ('pending', 'retrying')"
        ).fetchall()
        for row in rows:
            self.queue.put_nowait(row["seq"])

    async def close(self) -> None:
        for task in [*self.tasks, *([self.sender] if self.sender else [])]:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.aclose()
        self.conn.close()
