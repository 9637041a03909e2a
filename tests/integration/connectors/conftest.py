"""Fixtures: the simulators as real uvicorn subprocesses, and a webhook receiver in a thread."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from support.threaded import serve_in_thread

import finoa
from finoa.security.signatures import SignatureError, new_secret, verify

API_KEY = "test-api-key"
SRC_DIR = str(Path(finoa.__file__).resolve().parents[1])
RUNNER = (
    "import importlib, json, sys; "
    "getattr(importlib.import_module(sys.argv[1]), sys.argv[2])(**json.loads(sys.argv[3]))"
)
ERP_MODULE = "finoa.connectors.generic_erp.simulator"
OA_MODULE = "finoa.connectors.generic_oa.simulator"
T = TypeVar("T")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class SimServer:
    """A simulator running in its own process."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_ready(url: str, process: subprocess.Popen[bytes], deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/_sim/stats", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


def _spawn(module: str, func: str, kwargs: dict[str, Any], data_dir: Path) -> SimServer:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [SRC_DIR, os.environ.get("PYTHONPATH")])),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"{func}.log"
    for _ in range(3):  # a free port can be taken between probe and bind: retry
        port = free_port()
        args = {**kwargs, "host": "127.0.0.1", "port": port, "data_dir": str(data_dir)}
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", RUNNER, module, func, json.dumps(args)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = SimServer(f"http://127.0.0.1:{port}", data_dir, process, log_path)
        if _wait_ready(server.url, process, deadline_s=20):
            return server
        server.stop()
    raise RuntimeError(f"{func} did not start:\n{log_path.read_text(errors='replace')}")


@pytest.fixture
def start_erp(tmp_path: Path) -> Iterator[Callable[..., SimServer]]:
    """Start an ERP simulator; `start_erp(data_dir=...)` reuses a data dir (a restart)."""
    servers: list[SimServer] = []

    def start(data_dir: Path | None = None) -> SimServer:
        server = _spawn(
            ERP_MODULE,
            "run_erp_simulator",
            {"api_key": API_KEY},
            data_dir or tmp_path / f"erp{len(servers)}",
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def erp(start_erp: Callable[..., SimServer]) -> SimServer:
    return start_erp()


@pytest.fixture
def start_oa(tmp_path: Path) -> Iterator[Callable[..., SimServer]]:
    """Start an OA simulator with keyword arguments for run_oa_simulator."""
    servers: list[SimServer] = []

    def start(**kwargs: Any) -> SimServer:
        args = {
            "api_key": API_KEY,
            "hub_url": None,
            "webhook_secret": "whsec_unused",
            "reject_rate": 0.0,
            "auto_decide": True,
            **kwargs,
        }
        server = _spawn(OA_MODULE, "run_oa_simulator", args, tmp_path / f"oa{len(servers)}")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified_id: str | None
    verify_error: str | None

    def json(self) -> Any:
        return json.loads(self.body)

    def is_batch(self) -> bool:
        return bool(self.json().get("type") == "batch")

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """(event id, task.decided data) of each decision: a batch's events, or this one."""
        body = self.json()
        if body.get("type") == "batch":
            return [(event["id"], event["data"]) for event in body["data"]["events"]]
        assert body["type"] == "task.decided", body
        return [(str(self.verified_id), body["data"])]


DECISION_FIELDS = {"task_id", "decision", "approver_id", "comment"}


def batch_problem(body: dict[str, Any]) -> str | None:
    """What is wrong with a batch body, as the hub checks it; None if it is well formed."""
    data = body.get("data")
    if set(body) != {"type", "data"} or not isinstance(data, dict) or set(data) != {"events"}:
        return "a batch is exactly {type, data: {events}}"
    events = data["events"]
    if not isinstance(events, list) or not 1 <= len(events) <= 100:
        return "a batch has 1 to 100 events"
    ids = [event.get("id") if isinstance(event, dict) else None for event in events]
    if not all(isinstance(i, str) and 1 <= len(i) <= 128 for i in ids) or len(set(ids)) < len(ids):
        return "event ids are unique strings of 1 to 128 characters"
    for event in events:
        data = event.get("data")
        if set(event) != {"id", "type", "data"} or event["type"] != "task.decided":
            return "each event is {id, type: task.decided, data}"
        if not isinstance(data, dict) or set(data) != DECISION_FIELDS:
            return f"an event's data has exactly {sorted(DECISION_FIELDS)}"
    return None


@dataclass
class WebhookReceiver:
    """A stand-in hub endpoint: records webhooks, verifies them, answers scripted statuses.

    `script` holds the statuses of whole requests, in order (200 once it runs out). A batch
    answered 200 gets one result per event: `event_script[event id]` holds that event's
    statuses for its successive deliveries (200 once it runs out), so tests do not depend on
    how decisions happen to be grouped into batches.
    """

    secret: str
    url: str = ""
    received: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    event_script: dict[str, list[int]] = field(default_factory=dict)
    answer: dict[str, Any] = field(default_factory=lambda: {"accepted": True})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/api/v1/webhooks/generic-oa")
        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            headers = dict(request.headers.items())
            try:
                verified, error = verify(self.secret, headers, body), None
            except SignatureError as exc:
                verified, error = None, str(exc)
            parsed = json.loads(body)
            with self.lock:
                self.received.append(Received(headers, body, verified, error))
                status = self.script.pop(0) if self.script else 200
                if status != 200 or parsed.get("type") != "batch":
                    return JSONResponse(self.answer, status_code=status)
                problem = batch_problem(parsed)
                if problem is not None:
                    return JSONResponse({"title": "Bad batch", "detail": problem}, 422)
                results = [self._result(event) for event in parsed["data"]["events"]]
            return JSONResponse({"results": results})

        return app

    def _result(self, event: dict[str, Any]) -> dict[str, Any]:
        statuses = self.event_script.get(event["id"])
        status = statuses.pop(0) if statuses else 200
        if status < 300:
            result = {"task_id": event["data"]["task_id"], "duplicate": False}
            return {"id": event["id"], "status": status, "result": result}
        detail = f"scripted {status} for {event['id']}"
        problem = {"title": "Scripted", "status": status, "detail": detail, "field": None}
        return {"id": event["id"], "status": status, "problem": problem}

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """Every decision event received so far, in order, resends included."""
        return [event for hook in self.snapshot() for event in hook.events()]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A real HTTP server (uvicorn in a thread) playing the hub's webhook endpoint."""
    hook = WebhookReceiver(secret=new_secret())
    with serve_in_thread(hook.app(), "webhook receiver") as url:
        hook.url = url
        yield hook


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def _eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 15.0
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s; last value: {value}")
        await asyncio.sleep(0.02)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    """`await eventually(probe, done)`: poll until done(value), failing after a deadline."""
    return _eventually
