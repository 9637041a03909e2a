"""A real Tryton for tests: a site made by `finoa erp tryton init`, its trytond process, a
JSON-RPC client for looking inside it, and a proxy that injects faults in front of it."""

from __future__ import annotations

import asyncio
import base64
import http.server
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import orjson

from finoa.config import Settings
from finoa.connectors.tryton.rpc import decode, encode
from finoa.connectors.tryton.setup import TrytonSite
from finoa.runtime import build_dispatcher, new_http_client
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from support.processes import Secrets, Server, free_port, start


def init_site(directory: Path, port: int) -> TrytonSite:
    """`finoa erp tryton init` as a user runs it (a real process)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "finoa",
            "erp",
            "tryton",
            "init",
            "--dir",
            str(directory),
            "--year",
            "2026",
            "--year",
            "2027",
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return TrytonSite.load(directory)


@dataclass
class TrytonProcess:
    """The trytond server of a site; `kill()` ends it at once, `start()` brings it back."""

    site: TrytonSite
    log_dir: Path
    server: Server | None = None

    def start(self) -> None:
        self.server = start(
            "trytond",
            ["erp", "tryton", "serve", "--dir", str(self.site.directory)],
            {},
            "/",
            self.site.port,
            self.log_dir,
        )

    def kill(self) -> None:
        assert self.server is not None
        self.server.process.kill()
        self.server.process.wait(timeout=10)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class TrytonAdmin:
    """Synchronous JSON-RPC as the site's finoa user: for tests to look inside Tryton."""

    def __init__(self, site: TrytonSite) -> None:
        self.url = f"{site.base_url}/{site.database}/rpc/"
        self.site = site
        self.session: str | None = None
        self.context: dict[str, Any] = {}

    def _post(self, method: str, params: list[Any], session: str | None) -> Any:
        headers = {"Content-Type": "application/json"}
        if session:
            headers["Authorization"] = f"Session {session}"
        body = {"id": 1, "method": method, "params": encode(params)}
        response = httpx.post(self.url, content=orjson.dumps(body), headers=headers, timeout=30)
        response.raise_for_status()
        answer = orjson.loads(response.content)
        assert answer.get("error") is None, answer["error"]
        return decode(answer["result"])

    def call(self, method: str, *params: Any) -> Any:
        if self.session is None:
            user_id, token, *_ = self._post(
                "common.db.login", [self.site.login, {"password": self.site.password}, "en"], None
            )
            raw = f"{self.site.login}:{user_id}:{token}".encode()
            self.session = base64.b64encode(raw).decode()
            self.context = self._post("model.res.user.get_preferences", [True, {}], self.session)
            self.context = {k: self.context[k] for k in ("company", "companies", "language")}
        return self._post(method, [*params, self.context], self.session)

    def moves(self, references: list[str] | None = None) -> list[dict[str, Any]]:
        """finoa's moves (description `finoa:…`), or those carrying `references`."""
        domain = (
            [("description", "in", references)]
            if references is not None
            else [("description", "like", "finoa:%")]
        )
        return list(
            self.call(
                "model.account.move.search_read",
                domain,
                0,
                None,
                [("id", "ASC")],
                ["number", "state", "description", "origin", "period.name", "date"],
            )
        )

    def lines(self, move_id: int) -> list[dict[str, Any]]:
        return list(
            self.call(
                "model.account.move.line.search_read",
                [("move", "=", move_id)],
                0,
                None,
                [("id", "ASC")],
                ["account.code", "debit", "credit", "party.code", "description"],
            )
        )

    def reopen_period(self, period_id: int) -> None:
        """Reopen a closed period and its journal-periods (Tryton's period reopen leaves the
        journal-periods its close closed as they are, and they refuse new lines)."""
        self.call("model.account.period.reopen", [period_id])
        rows = self.call(
            "model.account.journal.period.search_read",
            [("period", "=", period_id), ("state", "=", "closed")],
            0,
            None,
            None,
            ["id"],
        )
        if rows:
            self.call("model.account.journal.period.reopen", [int(r["id"]) for r in rows])

    def period_id(self, name: str) -> int:
        (row,) = self.call(
            "model.account.period.search_read", [("name", "=", name)], 0, 1, None, ["id"]
        )
        return int(row["id"])


@dataclass
class FaultProxy:
    """An HTTP proxy in front of trytond. For each model call (`model.*` and `wizard.*` other
    than reads) it may answer 503 without passing it on (`error_rate`: an error before the
    work), or pass it on and then close the connection without answering (`drop_rate`: the
    work is done, the answer lost). Seeded, so a run is repeatable."""

    target: str
    error_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 7
    # Called after a model call was passed on (with its method and its number among them);
    # when it returns True the answer is dropped, as when the server dies after the work.
    after_forward: Callable[[str, int], bool] | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: {"errors": 0, "drops": 0, "calls": 0, "writes": 0}
    )
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextmanager
    def running(self) -> Iterator[FaultProxy]:
        rng = random.Random(self.seed)
        lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                method = str(orjson.loads(body).get("method", "")) if body else ""
                writes = method.startswith(("model.", "wizard.")) and not method.endswith(
                    ("search_read", ".read", "search_count", "get_preferences")
                )
                with lock:
                    roll = rng.random() if writes else 1.0
                    proxy.counts["calls"] += 1
                    number = proxy.counts["writes"] = proxy.counts["writes"] + int(writes)
                if roll < proxy.error_rate:
                    with lock:
                        proxy.counts["errors"] += 1
                    self._answer(503, b"injected fault before the work")
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("content-type", "authorization")
                }
                try:
                    response = httpx.post(
                        proxy.target + self.path, content=body, headers=headers, timeout=60
                    )
                except httpx.HTTPError:
                    self._answer(502, b"trytond unreachable")
                    return
                hook = proxy.after_forward
                dropped = bool(writes and hook is not None and hook(method, number))
                if dropped or roll < proxy.error_rate + proxy.drop_rate:
                    with lock:
                        proxy.counts["drops"] += 1
                    self.close_connection = True  # the work is done; the answer never comes
                    return
                self._answer(response.status_code, response.content, response.headers)

            def _answer(self, status: int, content: bytes, headers: Any = None) -> None:
                self.send_response(status)
                kind = (headers or {}).get("content-type", "text/plain")
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


def tryton_hub(
    settings: Settings,
    sims: tuple[Server, Server],
    secrets: Secrets,
    trytond: TrytonProcess,
    *,
    base_url: str | None = None,
    timeout_seconds: float = 10.0,
) -> Hub:
    """A hub whose vouchers go to the real Tryton (through `base_url`, e.g. a fault proxy)."""
    oa, _ = sims
    site = trytond.site
    connectors: dict[str, Any] = {
        "hq-oa": {
            "connector": "generic-oa",
            "config": {
                "base_url": oa.url,
                "api_key": secrets.oa_api_key,
                "webhook_secret": secrets.oa_webhook_secret,
            },
        },
        "erp-tryton": {
            "connector": "tryton",
            "config": {
                **site.connector_config(),
                "base_url": base_url or site.base_url,
                "timeout_seconds": timeout_seconds,
            },
        },
    }
    hub = Hub.create(
        replace(
            settings,
            oa_base_url=oa.url,
            oa_api_key=secrets.oa_api_key,
            retry_base_seconds=0.05,
            retry_cap_seconds=0.5,
            extra={**settings.extra, "connectors": connectors},
        )
    )
    load_masterdata(hub.db)
    return hub


def deliver(hub: Hub, max_seconds: float = 30.0) -> None:
    """Run the hub's dispatcher until nothing more is due."""

    async def run() -> None:
        http = new_http_client(hub.settings)
        try:
            await build_dispatcher(hub, http).run_until_idle(max_seconds)
        finally:
            await http.aclose()

    asyncio.run(run())


def ping(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False
