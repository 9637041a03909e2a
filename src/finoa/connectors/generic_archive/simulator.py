"""A simulated external archive system: keeps pushed packages (SQLite), refuses incomplete
ones naming the file, checks each and answers its status.

By default the answer to a push carries the archive's status and 四性检测 result. With
`status_delay` it answers `received` at once and reports the outcome that many seconds later
by a signed callback to the hub (`callback_url`, Standard Webhooks with `webhook_secret`),
retried with backoff until the hub answers 2xx or 4xx. `/_sim/faults` injects faults (a
lost answer: the package is kept, the answer dropped); `/_sim/stats` counts packages, pushes
handled and callbacks."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from finoa.connectors.generic_archive.wire import (
    ARCHIVED,
    PUSH_PATH,
    RECEIVED,
    REJECTED,
    STATUS_EVENT,
)
from finoa.connectors.simulation import (
    FaultMiddleware,
    FaultState,
    Problem,
    add_sim_routes,
    bearer_guard,
    install_problems,
    json_response,
    read_json,
    serve,
)
from finoa.security.signatures import signed_headers

log = logging.getLogger(__name__)
CALLBACK_ATTEMPTS = 12

SCHEMA = """
CREATE TABLE IF NOT EXISTS packages (
    archive_no TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    answer TEXT NOT NULL,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
"""
MAX_FILES = 200


def _files(body: dict[str, Any]) -> list[tuple[dict[str, Any], bytes]]:
    """Each listed file with its decoded content; a Problem naming the first that is
    missing or does not match its hash or size."""
    files = body.get("files")
    if not isinstance(files, list) or not files or len(files) > MAX_FILES:
        raise Problem(
            422, "Package incomplete", f"files: a list of 1-{MAX_FILES} files is required"
        )
    out = []
    for entry in files:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise Problem(422, "Package incomplete", "files: each file needs a name")
        name = entry["name"]
        content = entry.get("content_base64")
        if not isinstance(content, str) or not content:
            raise Problem(422, "Package incomplete", f"{name}: the file's content is missing",
                          file=name)  # fmt: skip
        try:
            data = base64.b64decode(content, validate=True)
        except binascii.Error:
            raise Problem(422, "Package incomplete", f"{name}: content is not base64",
                          file=name) from None  # fmt: skip
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise Problem(422, "Hash mismatch", f"{name}: content does not match its sha256",
                          file=name)  # fmt: skip
        if len(data) != entry.get("size"):
            raise Problem(422, "Size mismatch", f"{name}: content is not {entry.get('size')} bytes",
                          file=name)  # fmt: skip
        out.append((entry, data))
    return out


def _check(files: list[tuple[dict[str, Any], bytes]]) -> dict[str, Any]:
    """The archive's own 四性检测 of a complete package."""
    names = [entry["name"] for entry, _ in files]
    items = [
        {"item": "authenticity", "outcome": "pass", "detail": "every file matches its SHA-256"},
        {"item": "integrity", "outcome": "pass" if len(set(names)) == len(names) else "fail",
         "detail": f"{len(files)} file(s), names unique"},
        {"item": "usability", "outcome": "pass", "detail": "every file readable"},
        {"item": "security", "outcome": "pass", "detail": "stored write-once"},
    ]  # fmt: skip
    return {"passed": all(i["outcome"] == "pass" for i in items), "items": items}


def create_archive_app(
    data_dir: Path,
    api_key: str,
    *,
    status_delay: float | None = None,
    callback_url: str | None = None,
    webhook_secret: str | None = None,
) -> FastAPI:
    if status_delay is not None and (not callback_url or not webhook_secret):
        raise ValueError("status_delay: needs callback_url and webhook_secret")
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data_dir / "archive.sqlite3", check_same_thread=False)
    conn.executescript(SCHEMA)
    counts = {"pushes": 0, "callbacks_sent": 0, "callbacks_answered": 0, "callbacks_failed": 0}
    later: set[asyncio.Task[None]] = set()
    faults = FaultState()
    http: list[httpx.AsyncClient] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        http.append(httpx.AsyncClient(timeout=10))
        try:
            yield
        finally:
            for task in later:
                task.cancel()
            await asyncio.gather(*later, return_exceptions=True)
            await http[0].aclose()

    app = FastAPI(title="finoa archive simulator", lifespan=lifespan)
    install_problems(app)
    app.add_middleware(FaultMiddleware, state=faults)
    add_sim_routes(app, faults)
    api = APIRouter(prefix="/api", dependencies=[Depends(bearer_guard(api_key))])

    async def report_later(archive_no: str, answer: dict[str, Any]) -> None:
        """After `status_delay`, keep the outcome and call the hub back until it answers."""
        assert status_delay is not None and callback_url and webhook_secret
        await asyncio.sleep(status_delay)
        with conn:
            conn.execute("UPDATE packages SET answer = ? WHERE archive_no = ?",
                         (orjson.dumps(answer).decode(), archive_no))  # fmt: skip
        event = {"type": STATUS_EVENT, "data": {
            "archive_no": archive_no, "package_id": answer["package_id"],
            "status": answer["status"], "check": answer["check"]}}  # fmt: skip
        body = orjson.dumps(event)
        message_id = f"msg_{uuid.uuid4().hex}"
        for attempt in range(CALLBACK_ATTEMPTS):
            counts["callbacks_sent"] += 1
            headers = signed_headers(webhook_secret, message_id, body)
            try:
                response = await http[0].post(callback_url, content=body, headers=headers)
                if response.status_code < 500:
                    key = "callbacks_answered" if response.is_success else "callbacks_failed"
                    counts[key] += 1
                    return
            except httpx.HTTPError as exc:
                log.warning("status callback for %s failed: %s", archive_no, exc)
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        counts["callbacks_failed"] += 1

    @api.post(PUSH_PATH.removeprefix("/api"))
    async def push(request: Request) -> Response:
        key = request.headers.get("idempotency-key")
        if not key:
            raise Problem(400, "Idempotency-Key required", "send the package id as Idempotency-Key")
        counts["pushes"] += 1
        seen = conn.execute(
            "SELECT answer FROM packages WHERE idempotency_key = ?", (key,)
        ).fetchone()
        if seen:
            return json_response(orjson.loads(seen[0]))
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("archive_no"), str):
            raise Problem(422, "Package incomplete", "archive_no is required")
        if not isinstance(body.get("metadata"), dict):
            raise Problem(422, "Package incomplete", "metadata is required")
        files = _files(body)
        check = _check(files)
        answer = {
            "archive_no": body["archive_no"],
            "package_id": key,
            "status": ARCHIVED if check["passed"] else REJECTED,
            "check": check,
            "received_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        first = answer if status_delay is None else {**answer, "status": RECEIVED, "check": None}
        try:
            with conn:
                conn.execute(
                    "INSERT INTO packages VALUES (?, ?, ?, ?, ?)",
                    (body["archive_no"], key, orjson.dumps(first).decode(), len(files),
                     sum(len(d) for _, d in files)),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            raise Problem(409, "Already archived", f"{body['archive_no']} was pushed under "
                          "another key") from None  # fmt: skip
        if status_delay is not None:
            task = asyncio.ensure_future(report_later(body["archive_no"], answer))
            later.add(task)
            task.add_done_callback(later.discard)
        return json_response(first, 201)

    @api.get("/packages/{archive_no}")
    async def status(archive_no: str) -> Response:
        row = conn.execute(
            "SELECT answer FROM packages WHERE archive_no = ?", (archive_no,)
        ).fetchone()
        if row is None:
            raise Problem(404, "Unknown package", f"no package {archive_no}")
        return json_response(orjson.loads(row[0]))

    @api.get("/ping")
    async def ping() -> Response:
        return json_response({"ok": True})

    app.include_router(api)

    @app.get("/_sim/stats")
    async def stats() -> Response:
        (count,) = conn.execute("SELECT COUNT(*) FROM packages").fetchone()
        return json_response({"packages": count, **counts})

    return app


def run_archive_simulator(
    host: str,
    port: int,
    data_dir: Path,
    api_key: str,
    *,
    status_delay: float | None = None,
    callback_url: str | None = None,
    webhook_secret: str | None = None,
) -> None:
    app = create_archive_app(
        data_dir,
        api_key,
        status_delay=status_delay,
        callback_url=callback_url,
        webhook_secret=webhook_secret,
    )
    serve(app, host, port)
