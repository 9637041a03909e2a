"""OA simulator: todo lists and claim status over SQLite, plus simulated approvers.

Approvers decide each new todo and send a signed `task.decided` webhook to the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask

from finoa.connectors.generic_rest.erp_simulator import (
    FaultMiddleware,
    FaultState,
    Problem,
    add_sim_routes,
    bearer_guard,
    install_problems,
    json_response,
    now_iso,
    open_database,
    read_json,
    serve,
    transaction,
)
from finoa.messaging.retry import ErrorClass, classify_exception, classify_status
from finoa.security.signatures import signed_headers

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/api/v1/webhooks/generic-oa"
APPROVE_COMMENT = "同意"
REJECT_COMMENT = "预算不足 / over budget"
MAX_BATCH_ITEMS = 1000
SENDERS = 32
# httpcore's pool slows sharply past ~8 busy connections, so the senders share 4 clients of 8.
SENDER_CLIENTS = 4
MAX_ATTEMPTS = 5
BACKOFF_CAP_SECONDS = 2.0
RETRY_CLASSES = frozenset({ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED})

OA_SCHEMA = """
CREATE TABLE IF NOT EXISTS item_keys (
    idempotency_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS todos (
    task_id TEXT PRIMARY KEY,
    claim_id TEXT,
    external_id TEXT,
    assignee_id TEXT,
    title TEXT,
    amount_fen INTEGER,
    currency TEXT,
    role TEXT,
    state TEXT NOT NULL,
    created_at TEXT,
    closed_at TEXT
);
CREATE INDEX IF NOT EXISTS todos_assignee ON todos (assignee_id, state);
CREATE TABLE IF NOT EXISTS status_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    claim_id TEXT,
    external_id TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    voucher_no TEXT,
    erp_voucher_no TEXT,
    at TEXT,
    idempotency_key TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS status_external ON status_history (external_id, seq);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL UNIQUE,
    webhook_id TEXT NOT NULL,
    decision TEXT NOT NULL,
    approver_id TEXT,
    comment TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    last_error TEXT,
    updated_at TEXT
);
CREATE INDEX IF NOT EXISTS decisions_state ON decisions (state);
"""


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value if isinstance(value, str) and value else None


def _optional_text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return value


class OASimulator:
    """State and behaviour behind the OA simulator app."""

    def __init__(
        self,
        data_dir: Path,
        api_key: str,
        hub_url: str | None,
        webhook_secret: str,
        reject_rate: float,
        auto_decide: bool,
        seed: int | None,
    ) -> None:
        if not 0.0 <= reject_rate <= 1.0:
            raise ValueError("reject_rate must be within [0, 1]")
        self.conn = open_database(Path(data_dir) / "oa.sqlite3", OA_SCHEMA)
        self.api_key = api_key
        self.hub_url = hub_url.rstrip("/") if hub_url else None
        self.webhook_secret = webhook_secret
        self.reject_rate = reject_rate
        self.auto_decide = auto_decide
        self.rng = random.Random(seed)
        self.jitter = random.Random()
        self.faults = FaultState()
        self.duplicates = 0
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.senders: list[asyncio.Task[None]] = []
        self._clients: list[httpx.AsyncClient] = []

    # -- items ---------------------------------------------------------------------------

    def apply_batch(self, kind: str, items: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
        """Apply a batch in one transaction; item results, and tasks that now need deciding."""
        results: list[dict[str, Any]] = []
        to_decide: list[str] = []
        with transaction(self.conn):
            for item in items:
                key = _text(item, "idempotency_key") if isinstance(item, dict) else None
                if key is None or not isinstance(item, dict):
                    results.append(
                        {"idempotency_key": key, "status": "error", "error": "no idempotency_key"}
                    )
                    continue
                seen = self.conn.execute(
                    "SELECT 1 FROM item_keys WHERE idempotency_key = ?", (key,)
                ).fetchone()
                if seen:
                    self.duplicates += 1
                    results.append({"idempotency_key": key, "status": "duplicate"})
                    continue
                try:
                    with self._savepoint():
                        if kind == "todo":
                            decide = self._apply_todo(item)
                        else:
                            decide = None
                            self._apply_status(item, key)
                        self.conn.execute(
                            "INSERT INTO item_keys VALUES (?, ?, ?)", (key, kind, now_iso())
                        )
                except ValueError as exc:
                    results.append({"idempotency_key": key, "status": "error", "error": str(exc)})
                    continue
                if decide:
                    to_decide.append(decide)
                results.append({"idempotency_key": key, "status": "ok"})
        return results, to_decide

    @contextlib.contextmanager
    def _savepoint(self) -> Iterator[None]:
        self.conn.execute("SAVEPOINT item")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO item")
            self.conn.execute("RELEASE item")
            raise
        self.conn.execute("RELEASE item")

    def _apply_todo(self, item: dict[str, Any]) -> str | None:
        op, task_id = item.get("op"), _text(item, "task_id")
        if task_id is None:
            raise ValueError("task_id is required")
        now = now_iso()
        if op == "close":
            self.conn.execute(
                "INSERT INTO todos (task_id, claim_id, external_id, state, closed_at)"
                " VALUES (?, ?, ?, 'closed', ?) ON CONFLICT (task_id) DO UPDATE"
                " SET state = 'closed', closed_at = excluded.closed_at WHERE state != 'closed'",
                (task_id, _text(item, "claim_id"), _text(item, "external_id"), now),
            )
            return None
        if op != "create":
            raise ValueError(f"op must be 'create' or 'close', got {op!r}")
        assignee = _text(item, "assignee_id")
        if assignee is None:
            raise ValueError("assignee_id is required to create a todo")
        amount = item.get("amount_fen")
        if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
            raise ValueError("amount_fen must be an integer")
        existing = self.conn.execute(
            "SELECT state, created_at FROM todos WHERE task_id = ?", (task_id,)
        ).fetchone()
        if existing is not None and existing["created_at"] is not None:
            return None  # the same task pushed again under another key: nothing changes
        values = (
            _text(item, "claim_id"),
            _text(item, "external_id"),
            assignee,
            _optional_text(item, "title"),
            amount,
            _optional_text(item, "currency"),
            _optional_text(item, "role"),
            now,
        )
        if existing is not None:  # closed before it was created (out-of-order delivery)
            self.conn.execute(
                "UPDATE todos SET claim_id = COALESCE(claim_id, ?), external_id ="
                " COALESCE(external_id, ?), assignee_id = ?, title = ?, amount_fen = ?,"
                " currency = ?, role = ?, created_at = ? WHERE task_id = ?",
                (*values, task_id),
            )
            return None
        self.conn.execute(
            "INSERT INTO todos (task_id, claim_id, external_id, assignee_id, title, amount_fen,"
            " currency, role, created_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')",
            (task_id, *values),
        )
        if not (self.auto_decide and self.hub_url):
            return None
        reject = self.rng.random() < self.reject_rate
        self.record_decision(
            task_id,
            "reject" if reject else "approve",
            REJECT_COMMENT if reject else APPROVE_COMMENT,
            assignee,
        )
        return task_id

    def record_decision(
        self, task_id: str, decision: str, comment: str | None, approver_id: str | None
    ) -> None:
        self.conn.execute(
            "INSERT INTO decisions (task_id, webhook_id, decision, approver_id, comment,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (task_id, f"decision-{task_id}", decision, approver_id, comment, now_iso()),
        )

    def _apply_status(self, item: dict[str, Any], key: str) -> None:
        status = _text(item, "status")
        if status is None:
            raise ValueError("status is required")
        claim_id, external_id = _text(item, "claim_id"), _text(item, "external_id")
        if claim_id is None and external_id is None:
            raise ValueError("claim_id or external_id is required")
        self.conn.execute(
            "INSERT INTO status_history (claim_id, external_id, status, reason, voucher_no,"
            " erp_voucher_no, at, idempotency_key, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                claim_id,
                external_id,
                status,
                _optional_text(item, "reason"),
                _optional_text(item, "voucher_no"),
                _optional_text(item, "erp_voucher_no"),
                _optional_text(item, "at"),
                key,
                now_iso(),
            ),
        )

    # -- approvers -----------------------------------------------------------------------

    def client(self, index: int = 0) -> httpx.AsyncClient:
        """One of SENDER_CLIENTS keep-alive clients, each with SENDERS / SENDER_CLIENTS slots."""
        if not self._clients:
            size = SENDERS // SENDER_CLIENTS
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            self._clients = [
                httpx.AsyncClient(timeout=httpx.Timeout(10.0), limits=limits)
                for _ in range(SENDER_CLIENTS)
            ]
        return self._clients[index % SENDER_CLIENTS]

    async def enqueue_later(self, task_ids: list[str]) -> None:
        """Async so that Starlette runs it on the event loop, after the answer is sent."""
        self.enqueue(task_ids)

    def enqueue(self, task_ids: list[str]) -> None:
        if not task_ids:
            return
        if not self.senders:
            self.senders = [asyncio.create_task(self._sender(i)) for i in range(SENDERS)]
        for task_id in task_ids:
            self.queue.put_nowait(task_id)

    async def _sender(self, index: int) -> None:
        client = self.client(index)
        while True:
            task_id = await self.queue.get()
            try:
                await self.send_decision(task_id, client)
            except Exception:
                log.exception("decision for %s could not be sent", task_id)
            finally:
                self.queue.task_done()

    async def send_decision(
        self, task_id: str, client: httpx.AsyncClient | None = None
    ) -> sqlite3.Row | None:
        """Send one pending decision with capped retries; return its final row."""
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT d.*, t.state AS todo_state FROM decisions d"
            " LEFT JOIN todos t USING (task_id) WHERE d.task_id = ?",
            (task_id,),
        ).fetchone()
        if row is None or row["state"] != "pending" or self.hub_url is None:
            return row
        if row["attempts"] == 0 and row["todo_state"] == "closed":
            self._finish(task_id, "skipped", 0, None, "todo closed before it was decided")
            return self._decision(task_id)
        body = orjson.dumps(
            {
                "type": "task.decided",
                "data": {
                    "task_id": task_id,
                    "decision": row["decision"],
                    "approver_id": row["approver_id"],
                    "comment": row["comment"],
                },
            }
        )
        client = client or self.client()
        attempts = row["attempts"]
        status: int | None = None
        error: str | None = None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            attempts += 1
            retry_after: float | None = None
            try:
                response = await client.post(
                    self.hub_url + WEBHOOK_PATH,
                    content=body,
                    headers=signed_headers(self.webhook_secret, row["webhook_id"], body),
                )
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
                retry = classify_exception(exc) in RETRY_CLASSES
            else:
                status = response.status_code
                if response.is_success:
                    self._finish(task_id, "sent", attempts, status, None)
                    return self._decision(task_id)
                error = response.text[:300]
                retry = classify_status(status) in RETRY_CLASSES
                with contextlib.suppress(ValueError):
                    retry_after = float(response.headers.get("retry-after", ""))
            if not retry or attempt == MAX_ATTEMPTS:
                break
            delay = min(BACKOFF_CAP_SECONDS, 0.05 * 2**attempt) * self.jitter.uniform(0.5, 1.0)
            if retry_after is not None:
                delay = min(BACKOFF_CAP_SECONDS, max(0.0, retry_after))
            await asyncio.sleep(delay)
        self._finish(task_id, "failed", attempts, status, error)
        return self._decision(task_id)

    def _finish(
        self, task_id: str, state: str, attempts: int, status: int | None, error: str | None
    ) -> None:
        self.conn.execute(
            "UPDATE decisions SET state = ?, attempts = ?, http_status = ?, last_error = ?,"
            " updated_at = ? WHERE task_id = ?",
            (state, attempts, status, error, now_iso(), task_id),
        )

    def _decision(self, task_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM decisions WHERE task_id = ?", (task_id,)
        ).fetchone()
        return row

    async def submit_claim(self, claim: dict[str, Any]) -> dict[str, Any]:
        """Send a signed `claim.submitted` webhook; the hub's answer."""
        if self.hub_url is None:
            raise Problem(409, "No hub", "this OA simulator was started without hub_url")
        external_id = _text(claim, "external_id")
        if external_id is None:
            raise Problem(422, "Claim rejected", "external_id is required")
        webhook_id = f"claim-{external_id}-{claim.get('version') or 1}"
        body = orjson.dumps({"type": "claim.submitted", "data": claim})
        try:
            response = await self.client().post(
                self.hub_url + WEBHOOK_PATH,
                content=body,
                headers=signed_headers(self.webhook_secret, webhook_id, body),
            )
        except httpx.HTTPError as exc:
            raise Problem(502, "Hub unreachable", f"{type(exc).__name__}: {exc}") from None
        try:
            answer: Any = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            answer = response.text
        return {"webhook_id": webhook_id, "status_code": response.status_code, "body": answer}

    # -- lifecycle and stats ---------------------------------------------------------------

    def resume_pending(self) -> None:
        rows = self.conn.execute(
            "SELECT task_id FROM decisions WHERE state = 'pending' ORDER BY seq"
        ).fetchall()
        self.enqueue([row["task_id"] for row in rows])

    async def close(self) -> None:
        for task in self.senders:
            task.cancel()
        await asyncio.gather(*self.senders, return_exceptions=True)
        self.senders = []
        for client in self._clients:
            await client.aclose()
        self.conn.close()

    def stats(self) -> dict[str, Any]:
        def count(sql: str) -> int:
            return int(self.conn.execute(sql).fetchone()[0])

        states = dict(
            self.conn.execute("SELECT state, COUNT(*) FROM decisions GROUP BY state").fetchall()
        )
        return {
            "todos_created": count("SELECT COUNT(*) FROM todos WHERE created_at IS NOT NULL"),
            "todos_closed": count("SELECT COUNT(*) FROM todos WHERE state = 'closed'"),
            "status_updates": count("SELECT COUNT(*) FROM status_history"),
            "duplicates": self.duplicates,
            "decisions_sent": states.get("sent", 0),
            "decisions_failed": states.get("failed", 0),
            "decisions_pending": states.get("pending", 0),
            "decisions_skipped": states.get("skipped", 0),
            "requests": self.faults.counts["requests"],
            "faults": self.faults.snapshot(),
        }


def create_oa_app(
    data_dir: Path,
    api_key: str,
    hub_url: str | None,
    webhook_secret: str,
    reject_rate: float = 0.0,
    auto_decide: bool = True,
    seed: int | None = None,
) -> FastAPI:
    """The OA simulator app; its state lives in `data_dir/oa.sqlite3`."""
    sim = OASimulator(data_dir, api_key, hub_url, webhook_secret, reject_rate, auto_decide, seed)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sim.resume_pending()
        yield
        await sim.close()

    app = FastAPI(title="finoa OA simulator", lifespan=lifespan)
    app.state.sim = sim
    install_problems(app)
    app.add_middleware(FaultMiddleware, state=sim.faults)
    api = APIRouter(prefix="/api", dependencies=[Depends(bearer_guard(api_key))])

    async def batch(request: Request, kind: str) -> Response:
        body = await read_json(request)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise Problem(400, "Bad request", 'the body must be {"items": [...]}')
        if len(items) > MAX_BATCH_ITEMS:
            raise Problem(413, "Batch too large", f"at most {MAX_BATCH_ITEMS} items per batch")
        results, to_decide = sim.apply_batch(kind, items)
        # Approvers act after the answer has gone out.
        background = BackgroundTask(sim.enqueue_later, to_decide) if to_decide else None
        return json_response({"results": results}, background=background)

    @api.post("/todos:batch")
    async def todos_batch(request: Request) -> Response:
        return await batch(request, "todo")

    @api.post("/status:batch")
    async def status_batch(request: Request) -> Response:
        return await batch(request, "status")

    app.include_router(api)
    add_sim_routes(app, sim.faults)

    @app.get("/_sim/stats")
    async def stats() -> Response:
        return json_response(sim.stats())

    @app.post("/_sim/claims")
    async def submit_claim(request: Request) -> Response:
        claim = await read_json(request)
        if not isinstance(claim, dict):
            raise Problem(422, "Claim rejected", "the claim must be a JSON object")
        return json_response(await sim.submit_claim(claim))

    @app.get("/_sim/claims/{external_id}")
    async def claim_history(external_id: str) -> Response:
        rows = sim.conn.execute(
            "SELECT seq, claim_id, external_id, status, reason, voucher_no, erp_voucher_no, at,"
            " received_at FROM status_history WHERE external_id = ? ORDER BY seq",
            (external_id,),
        ).fetchall()
        return json_response([dict(row) for row in rows])

    @app.get("/_sim/todos")
    async def todos(assignee_id: str | None = None, state: str | None = None) -> Response:
        rows = sim.conn.execute(
            "SELECT * FROM todos WHERE (? IS NULL OR assignee_id = ?) AND (? IS NULL OR state = ?)"
            " ORDER BY rowid",
            (assignee_id, assignee_id, state, state),
        ).fetchall()
        return json_response([dict(row) for row in rows])

    @app.get("/_sim/decisions")
    async def decisions() -> Response:
        rows = sim.conn.execute("SELECT * FROM decisions ORDER BY seq").fetchall()
        return json_response([dict(row) for row in rows])

    @app.post("/_sim/todos/{task_id}/decide")
    async def decide(task_id: str, request: Request) -> Response:
        """Decide a todo by hand (for auto_decide=False) and send the webhook now."""
        body = await read_json(request)
        decision = body.get("decision") if isinstance(body, dict) else None
        comment = body.get("comment") if isinstance(body, dict) else None
        if decision not in ("approve", "reject"):
            raise Problem(422, "Bad decision", "decision must be 'approve' or 'reject'")
        if comment is not None and not isinstance(comment, str):
            raise Problem(422, "Bad decision", "comment must be a string")
        if sim.hub_url is None:
            raise Problem(409, "No hub", "this OA simulator was started without hub_url")
        todo = sim.conn.execute("SELECT * FROM todos WHERE task_id = ?", (task_id,)).fetchone()
        if todo is None or todo["state"] != "open":
            raise Problem(409, "Not open", f"task {task_id} is not an open todo")
        try:
            with transaction(sim.conn):
                sim.record_decision(task_id, decision, comment, todo["assignee_id"])
        except sqlite3.IntegrityError:
            raise Problem(409, "Already decided", f"task {task_id} is already decided") from None
        row = await sim.send_decision(task_id)
        return json_response(dict(row) if row is not None else None)

    return app


def run_oa_simulator(
    host: str,
    port: int,
    data_dir: Path | str,
    api_key: str,
    hub_url: str | None,
    webhook_secret: str,
    reject_rate: float = 0.0,
    auto_decide: bool = True,
    seed: int | None = None,
) -> None:
    """Serve the OA simulator until interrupted."""
    app = create_oa_app(
        Path(data_dir), api_key, hub_url, webhook_secret, reject_rate, auto_decide, seed
    )
    serve(app, host, port)
