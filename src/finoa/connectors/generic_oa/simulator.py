"""OA simulator: todo lists and claim status over SQLite, plus simulated approvers.

Approvers decide each new todo and tell the hub with signed webhooks. A few senders each take
the decisions already queued, up to `decision_batch` (at most 100), and send them as one
`batch` webhook whose events carry the decisions' own webhook ids; the hub answers per event,
and only events that failed transiently are sent again, in a later batch. With
`decision_batch=1` every decision is its own `task.decided` webhook, as most real OAs send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask

from finoa.connectors.base import KEEPALIVE_EXPIRY_SECONDS
from finoa.connectors.simulation import (
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
MAX_REPORT_TASKS = 100
MAX_DECISION_BATCH = 100  # events per batch webhook, as the hub accepts
SENDERS = 4  # batching senders: each takes what is queued, so a few keep batches large
# One webhook per decision waits a round trip per decision, so more senders run at once, as
# an OA calling back for many approvers does.
SINGLE_EVENT_SENDERS = 32
CONNECTIONS_PER_CLIENT = 8  # httpcore's pool slows sharply past ~8 busy connections
MAX_ATTEMPTS = 5
BACKOFF_CAP_SECONDS = 2.0
RETRY_CLASSES = frozenset({ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED})
SKIPPED_REASON = "todo closed before it was decided"

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
CREATE TABLE IF NOT EXISTS reminders (task_id TEXT NOT NULL, reminded_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS departed_users (user_id TEXT PRIMARY KEY);
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
CREATE TABLE IF NOT EXISTS notices (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    notice_id TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT,
    subject_type TEXT,
    subject_id TEXT,
    at TEXT,
    received_at TEXT NOT NULL
);
"""


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value if isinstance(value, str) and value else None


def _optional_text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return value


@dataclass
class _Outgoing:
    """A pending decision on its way to the hub."""

    task_id: str
    webhook_id: str
    event: dict[str, Any]
    attempts: int


class _Outcome(NamedTuple):
    task_id: str
    state: str
    attempts: int
    status: int | None
    error: str | None


# Per event: final state ("sent" / "failed") or None to retry; HTTP status; error.
_Result = tuple[str | None, int | None, str | None]


def _event_results(response: httpx.Response, items: list[_Outgoing]) -> list[Any]:
    """The hub's result for each item of a batch, matched by event id (None if missing)."""
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        answer = None
    results = answer.get("results") if isinstance(answer, dict) else None
    by_id = {
        result.get("id"): result
        for result in (results if isinstance(results, list) else [])
        if isinstance(result, dict)
    }
    return [by_id.get(item.webhook_id) for item in items]


def _event_outcome(result: Any) -> _Result:
    """2xx is sent; 429 and 5xx are retried; any other 4xx fails the decision for good."""
    status = result.get("status") if isinstance(result, dict) else None
    if not isinstance(status, int) or isinstance(status, bool):
        return None, None, "the hub's answer has no result for this event"
    if 200 <= status < 300:
        return "sent", status, None
    problem = result.get("problem")
    detail = (problem.get("detail") or problem.get("title")) if isinstance(problem, dict) else None
    error = str(detail or problem or f"HTTP {status}")[:300]
    return (None if status == 429 or status >= 500 else "failed"), status, error


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
        decision_batch: int = MAX_DECISION_BATCH,
    ) -> None:
        if not 0.0 <= reject_rate <= 1.0:
            raise ValueError("reject_rate must be within [0, 1]")
        if not 1 <= decision_batch <= MAX_DECISION_BATCH:
            raise ValueError(f"decision_batch must be within [1, {MAX_DECISION_BATCH}]")
        self.conn = open_database(Path(data_dir) / "oa.sqlite3", OA_SCHEMA)
        self.api_key = api_key
        self.hub_url = hub_url.rstrip("/") if hub_url else None
        self.webhook_secret = webhook_secret
        self.reject_rate = reject_rate
        self.auto_decide = auto_decide
        self.decision_batch = decision_batch
        self.rng = random.Random(seed)
        self.jitter = random.Random()
        self.faults = FaultState()
        self.duplicates = 0
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.senders: list[asyncio.Task[None]] = []
        self._clients: list[httpx.AsyncClient] = []
        self._next_client = 0

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
                        elif kind == "notice":
                            decide = None
                            self._apply_notice(item)
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
        if op == "remind":
            found = self.conn.execute(
                "SELECT state FROM todos WHERE task_id = ? AND created_at IS NOT NULL", (task_id,)
            ).fetchone()
            if found is None:
                raise ValueError(f"no todo {task_id} to remind of")
            self.conn.execute(
                "INSERT INTO reminders (task_id, reminded_at) VALUES (?, ?)", (task_id, now)
            )
            return None
        if op != "create":
            raise ValueError(f"op must be 'create', 'close' or 'remind', got {op!r}")
        assignee = _text(item, "assignee_id")
        if assignee is None:
            raise ValueError("assignee_id is required to create a todo")
        departed = self.conn.execute(
            "SELECT 1 FROM departed_users WHERE user_id = ?", (assignee,)
        ).fetchone()
        if departed:
            raise ValueError(f"user {assignee} has left the organisation; no todo for them")
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

    def task_reports(self, task_ids: list[str]) -> list[dict[str, Any]]:
        """Per task: pending, approved or rejected (with the decision's webhook id), or unknown."""
        marks = ", ".join("?" * len(task_ids))
        todos = {
            row["task_id"]: row
            for row in self.conn.execute(
                f"SELECT task_id, state FROM todos WHERE task_id IN ({marks})", task_ids
            )
        }
        decided = {
            row["task_id"]: row
            for row in self.conn.execute(
                f"SELECT * FROM decisions WHERE task_id IN ({marks})", task_ids
            )
        }
        reports: list[dict[str, Any]] = []
        for task_id in task_ids:
            decision = decided.get(task_id)
            if decision is not None:
                reports.append(
                    {
                        "task_id": task_id,
                        "state": "approved" if decision["decision"] == "approve" else "rejected",
                        "approver_id": decision["approver_id"],
                        "comment": decision["comment"],
                        "decided_at": decision["updated_at"],
                        "webhook_id": decision["webhook_id"],
                    }
                )
            elif task_id in todos:
                reports.append({"task_id": task_id, "state": "pending"})
            else:
                reports.append({"task_id": task_id, "state": "unknown"})
        return reports

    def record_decision(
        self, task_id: str, decision: str, comment: str | None, approver_id: str | None
    ) -> None:
        self.conn.execute(
            "INSERT INTO decisions (task_id, webhook_id, decision, approver_id, comment,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (task_id, f"decision-{task_id}", decision, approver_id, comment, now_iso()),
        )

    def _apply_notice(self, item: dict[str, Any]) -> None:
        """A message to a person (消息通知): recipient and title are required."""
        recipient, title = _text(item, "recipient_id"), _text(item, "title")
        if recipient is None or title is None:
            raise ValueError("recipient_id and title are required")
        self.conn.execute(
            "INSERT INTO notices (notice_id, recipient_id, title, body, subject_type,"
            " subject_id, at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _text(item, "notice_id") or "",
                recipient,
                title,
                _optional_text(item, "body"),
                _optional_text(item, "subject_type"),
                _optional_text(item, "subject_id"),
                _optional_text(item, "at"),
                now_iso(),
            ),
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

    @property
    def sender_count(self) -> int:
        return SENDERS if self.decision_batch > 1 else SINGLE_EVENT_SENDERS

    def client(self) -> httpx.AsyncClient:
        """A keep-alive client for the senders, manual decisions and claims; requests are
        spread over a few clients of CONNECTIONS_PER_CLIENT connections each."""
        if not self._clients:
            size = -(-(self.sender_count + 4) // CONNECTIONS_PER_CLIENT)
            limits = httpx.Limits(
                max_connections=CONNECTIONS_PER_CLIENT, keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS
            )
            self._clients = [
                httpx.AsyncClient(timeout=httpx.Timeout(10.0), limits=limits) for _ in range(size)
            ]
        self._next_client = (self._next_client + 1) % len(self._clients)
        return self._clients[self._next_client]

    async def enqueue_later(self, task_ids: list[str]) -> None:
        """Async so that Starlette runs it on the event loop, after the answer is sent."""
        self.enqueue(task_ids)

    def enqueue(self, task_ids: list[str]) -> None:
        if not task_ids:
            return
        if not self.senders:
            self.senders = [asyncio.create_task(self._sender()) for _ in range(self.sender_count)]
        for task_id in task_ids:
            self.queue.put_nowait(task_id)

    async def _sender(self) -> None:
        """Wait for one task, take what else is queued (up to decision_batch), send them."""
        while True:
            task_ids = [await self.queue.get()]
            while len(task_ids) < self.decision_batch and not self.queue.empty():
                task_ids.append(self.queue.get_nowait())
            try:
                await self.send_decisions(task_ids)
            except Exception:
                log.exception("decisions for %s could not be sent", task_ids)
            finally:
                for _ in task_ids:
                    self.queue.task_done()

    async def send_decision(self, task_id: str) -> sqlite3.Row | None:
        """Send one pending decision as a single event with capped retries; its final row."""
        await self._deliver(self._outgoing([task_id]), single=True)
        return self._decision(task_id)

    async def send_decisions(self, task_ids: list[str]) -> None:
        """Send pending decisions: one batch webhook, or a single event if decision_batch is 1."""
        outgoing = self._outgoing(task_ids)
        for start in range(0, len(outgoing), self.decision_batch):
            chunk = outgoing[start : start + self.decision_batch]
            await self._deliver(chunk, single=self.decision_batch == 1)

    def _outgoing(self, task_ids: list[str]) -> list[_Outgoing]:
        """The decisions among `task_ids` still to send; a todo closed before is `skipped`."""
        if self.hub_url is None or not task_ids:
            return []
        unique = list(dict.fromkeys(task_ids))
        rows = self.conn.execute(
            "SELECT d.*, t.state AS todo_state FROM decisions d LEFT JOIN todos t USING (task_id)"
            f" WHERE d.task_id IN ({', '.join('?' * len(unique))}) AND d.state = 'pending'",
            unique,
        ).fetchall()
        by_id = {row["task_id"]: row for row in rows}
        outgoing: list[_Outgoing] = []
        skipped: list[_Outcome] = []
        for task_id in unique:
            row = by_id.get(task_id)
            if row is None:
                continue
            if row["attempts"] == 0 and row["todo_state"] == "closed":
                skipped.append(_Outcome(task_id, "skipped", 0, None, SKIPPED_REASON))
                continue
            event = {
                "task_id": task_id,
                "decision": row["decision"],
                "approver_id": row["approver_id"],
                "comment": row["comment"],
            }
            outgoing.append(_Outgoing(task_id, row["webhook_id"], event, row["attempts"]))
        self._finish(skipped)
        return outgoing

    async def _deliver(self, outgoing: list[_Outgoing], *, single: bool) -> None:
        """POST the decisions (one event, or one batch) and retry what failed transiently.

        Each retry resends only the still-failing events; a batch's `webhook-id` is fresh
        whenever its set of events changes, and kept when the same body is sent again.
        """
        remaining = outgoing
        batch_id = ""  # a batch's webhook-id, kept while its events stay the same
        batch_of: list[str] = []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if not remaining:
                return
            if single:
                (item,) = remaining
                msg_id = item.webhook_id
                body = orjson.dumps({"type": "task.decided", "data": item.event})
            else:
                ids = [item.webhook_id for item in remaining]
                if ids != batch_of:
                    batch_id, batch_of = f"batch-{uuid.uuid4().hex}", ids
                msg_id = batch_id
                events = [
                    {"id": item.webhook_id, "type": "task.decided", "data": item.event}
                    for item in remaining
                ]
                body = orjson.dumps({"type": "batch", "data": {"events": events}})
            for item in remaining:
                item.attempts += 1
            results, retry_after = await self._post(msg_id, body, remaining, single=single)
            finished: list[_Outcome] = []
            retry: list[_Outgoing] = []
            for item, (state, status, error) in zip(remaining, results, strict=True):
                if state is None and attempt < MAX_ATTEMPTS:
                    retry.append(item)
                else:
                    finished.append(
                        _Outcome(item.task_id, state or "failed", item.attempts, status, error)
                    )
            self._finish(finished)
            remaining = retry
            if not remaining:
                return
            delay = min(BACKOFF_CAP_SECONDS, 0.05 * 2**attempt) * self.jitter.uniform(0.5, 1.0)
            if retry_after is not None:
                delay = min(BACKOFF_CAP_SECONDS, max(0.0, retry_after))
            await asyncio.sleep(delay)

    async def _post(
        self, msg_id: str, body: bytes, items: list[_Outgoing], *, single: bool
    ) -> tuple[list[_Result], float | None]:
        """One request; per item (final state or None to retry, http status, error)."""
        assert self.hub_url is not None
        try:
            response = await self.client().post(
                self.hub_url + WEBHOOK_PATH,
                content=body,
                headers=signed_headers(self.webhook_secret, msg_id, body),
            )
        except httpx.HTTPError as exc:
            state = None if classify_exception(exc) in RETRY_CLASSES else "failed"
            return [(state, None, f"{type(exc).__name__}: {exc}")] * len(items), None
        retry_after: float | None = None
        with contextlib.suppress(ValueError):
            retry_after = float(response.headers.get("retry-after", ""))
        status = response.status_code
        if not response.is_success:
            state = None if classify_status(status) in RETRY_CLASSES else "failed"
            return [(state, status, response.text[:300])] * len(items), retry_after
        if single:
            return [("sent", status, None)], retry_after
        return [_event_outcome(result) for result in _event_results(response, items)], retry_after

    def _finish(self, outcomes: list[_Outcome]) -> None:
        if not outcomes:
            return
        now = now_iso()
        with transaction(self.conn):
            self.conn.executemany(
                "UPDATE decisions SET state = ?, attempts = ?, http_status = ?, last_error = ?,"
                " updated_at = ? WHERE task_id = ?",
                [(o.state, o.attempts, o.status, o.error, now, o.task_id) for o in outcomes],
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
        self._clients = []
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
    decision_batch: int = MAX_DECISION_BATCH,
) -> FastAPI:
    """The OA simulator app; its state lives in `data_dir/oa.sqlite3`."""
    sim = OASimulator(
        data_dir, api_key, hub_url, webhook_secret, reject_rate, auto_decide, seed, decision_batch
    )

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

    @api.post("/notices:batch")
    async def notices_batch(request: Request) -> Response:
        return await batch(request, "notice")

    @api.post("/tasks:report")
    async def tasks_report(request: Request) -> Response:
        """What the OA knows of approval tasks, whether or not their webhooks got through:
        `{"task_ids": [...]}` (at most 100) -> one report per task, in order."""
        body = await read_json(request)
        task_ids = body.get("task_ids") if isinstance(body, dict) else None
        if (
            not isinstance(task_ids, list)
            or not 1 <= len(task_ids) <= MAX_REPORT_TASKS
            or not all(isinstance(t, str) and t for t in task_ids)
        ):
            raise Problem(
                422, "Bad request", f"task_ids: a list of 1-{MAX_REPORT_TASKS} task ids is required"
            )
        return json_response({"reports": sim.task_reports(task_ids)})

    @api.get("/ping")
    async def ping() -> Response:
        return json_response({"ok": True, "time": now_iso()})

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

    @app.get("/_sim/reminders")
    async def reminders() -> Response:
        rows = sim.conn.execute("SELECT * FROM reminders ORDER BY rowid").fetchall()
        return json_response([dict(row) for row in rows])

    @app.put("/_sim/users/{user_id}/departed")
    async def depart(user_id: str) -> Response:
        """The user leaves the OA's organisation: todos for them are refused from now on."""
        sim.conn.execute("INSERT OR IGNORE INTO departed_users VALUES (?)", (user_id,))
        return json_response({"user_id": user_id, "departed": True})

    @app.get("/_sim/notices")
    async def notices(recipient_id: str | None = None) -> Response:
        rows = sim.conn.execute(
            "SELECT * FROM notices WHERE (? IS NULL OR recipient_id = ?) ORDER BY seq",
            (recipient_id, recipient_id),
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
    decision_batch: int = MAX_DECISION_BATCH,
) -> None:
    """Serve the OA simulator until interrupted."""
    app = create_oa_app(
        Path(data_dir),
        api_key,
        hub_url,
        webhook_secret,
        reject_rate,
        auto_decide,
        seed,
        decision_batch,
    )
    serve(app, host, port)
