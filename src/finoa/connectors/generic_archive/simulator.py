"""A simulated external archive system: keeps pushed packages (SQLite), refuses incomplete
ones naming the file, checks each and answers its status."""

from __future__ import annotations

import base64
import binascii
import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from finoa.connectors.generic_archive.wire import PUSH_PATH
from finoa.connectors.simulation import (
    Problem,
    bearer_guard,
    install_problems,
    json_response,
    read_json,
    serve,
)

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


def create_archive_app(data_dir: Path, api_key: str) -> FastAPI:
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data_dir / "archive.sqlite3", check_same_thread=False)
    conn.executescript(SCHEMA)
    app = FastAPI(title="finoa archive simulator")
    install_problems(app)
    api = APIRouter(prefix="/api", dependencies=[Depends(bearer_guard(api_key))])

    @api.post(PUSH_PATH.removeprefix("/api"))
    async def push(request: Request) -> Response:
        key = request.headers.get("idempotency-key")
        if not key:
            raise Problem(400, "Idempotency-Key required", "send the package id as Idempotency-Key")
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
        names = [entry["name"] for entry, _ in files]
        items = [
            {"item": "authenticity", "outcome": "pass", "detail": "every file matches its SHA-256"},
            {"item": "integrity", "outcome": "pass" if len(set(names)) == len(names) else "fail",
             "detail": f"{len(files)} file(s), names unique"},
            {"item": "usability", "outcome": "pass", "detail": "every file readable"},
            {"item": "security", "outcome": "pass", "detail": "stored write-once"},
        ]  # fmt: skip
        answer = {
            "archive_no": body["archive_no"],
            "status": "archived",
            "check": {"passed": all(i["outcome"] == "pass" for i in items), "items": items},
            "received_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        try:
            with conn:
                conn.execute(
                    "INSERT INTO packages VALUES (?, ?, ?, ?, ?)",
                    (body["archive_no"], key, orjson.dumps(answer).decode(), len(files),
                     sum(len(d) for _, d in files)),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            raise Problem(409, "Already archived", f"{body['archive_no']} was pushed under "
                          "another key") from None  # fmt: skip
        return json_response(answer, 201)

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
        return json_response({"packages": count})

    return app


def run_archive_simulator(host: str, port: int, data_dir: Path, api_key: str) -> None:
    serve(create_archive_app(data_dir, api_key), host, port)
