"""The outbox dispatcher: delivers queued messages, exactly once in effect, in order per
document.

It claims due rows in batches (PostgreSQL: FOR UPDATE SKIP LOCKED, so several workers can share
the table) under a short lease that names its owner and carries a version, renews the lease
while the delivery runs (a heartbeat), hands the rows to connectors grouped by action, and
settles the results in one transaction — but only rows whose lease it still holds, so a late
settler changes nothing. A row is done (and the follow-up use case runs, e.g. "voucher
posted"), retried later with capped exponential backoff + jitter for as long as real outages
last, or dead-lettered with its reason when the failure is permanent (and its dead-letter
follow-up runs, e.g. "push refused").

Before a row is sent again after an attempt whose outcome is unknown (a timeout, a connection
dropped after sending, a 5xx, a lease that ran out while a worker crashed), the connector's
posted-lookup is asked whether it already happened; exactly-once never rests on the peer
keeping idempotency keys. A circuit breaker per destination stops sending to a peer that is
down, so an outage costs a few probes instead of a storm; a peer that answers "too many
requests" is up, and its refusals never open the breaker (the messages wait out its
Retry-After instead).

A restarted process takes back its own rows still in flight at once (its worker id is
stable); a crashed worker's rows come back when their short lease runs out. It is woken right
after any commit that queued messages; it never polls on a fixed interval on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Select, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from finoa.connectors.base import Connector, DeliveryResult, OutboundMessage
from finoa.messaging.circuit import CircuitBreaker, CircuitState
from finoa.messaging.retry import RETRYABLE, DeliveryError, ErrorClass, RetryPolicy
from finoa.messaging.together import CallTogether
from finoa.store.errors import LocksOutOfOrder, is_retryable_conflict
from finoa.store.prepared import Prepared
from finoa.store.tables import outbox
from finoa.store.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

# What to do inside the settling transaction when a message of (destination, action) succeeds.
SuccessHandler = Callable[[UnitOfWork, str, dict[str, Any]], None]
DeadHandler = Callable[[UnitOfWork, str, DeliveryError], None]
"""A dead letter's follow-up: (unit of work, aggregate id, the error that settled it)."""

SETTLE_CONFLICTS = 5  # settlements again of a follow-up that keeps hitting deadlocks
WINDOW_BATCHES = 4  # a claim looks at windows of this many batches of rows not yet done
LAST_ID = 2**62  # the end of the last window
SAFETY_POLL_SECONDS = 2.0  # picks up rows queued by other processes; not on the hot path


def _blocked() -> Any:
    """An earlier message for the same document is not done: the row must wait for it."""
    earlier = aliased(outbox)
    return exists().where(
        and_(
            earlier.c.ordering_key == outbox.c.ordering_key,
            earlier.c.id < outbox.c.id,
            earlier.c.status != "done",
        )
    )


def _by_id(row: ClaimedRow) -> int:
    return row.id


def _lane_filter(destination: str, known: Sequence[str], *, strays: bool) -> Any:
    """The rows of one lane: its destination's, and with `strays` also those of destinations
    no connector serves (they are dead-lettered naming the destination)."""
    mine = outbox.c.destination == destination
    if not strays:
        return mine
    # plain comparisons rather than NOT IN: prepared statements take no expanding lists
    return or_(mine, and_(*(outbox.c.destination != name for name in known)))


CLAIMED_COLUMNS = (
    outbox.c.id,
    outbox.c.destination,
    outbox.c.action,
    outbox.c.aggregate_id,
    outbox.c.idempotency_key,
    outbox.c.payload,
    outbox.c.attempts,
    outbox.c.status,
    outbox.c.lease_version,
    outbox.c.needs_lookup,
    outbox.c.failing_since,
)


def _window_query(destination: str | None, window: int) -> Select[Any]:
    """The id of the `window`-th row not yet done after `:after` (of `destination`, else of
    any): the end of the next window of rows `_due_query` looks at. No row: the rest fits."""
    query = select(outbox.c.id).where(outbox.c.status != "done", outbox.c.id > bindparam("after"))
    if destination is not None:
        query = query.where(outbox.c.destination == destination)  # ix_outbox_lane
    return query.order_by(outbox.c.id).limit(1).offset(window - 1)


def _due_query(lane: Any = None) -> Select[Any]:
    """Up to `:room` rows with ids in (`:after`, `:upto`] due now (`:now`) whose earlier
    messages for the same document are all done; of one lane when `lane` (a `_lane_filter`)
    is given.

    The id window keeps the work bounded by the window, however long the backlog: without
    it, the database checks the order of every due row of the table before it can return the
    first few (a month-end backlog is tens of thousands of rows per claim)."""
    blocked = _blocked()
    now = bindparam("now", type_=Float)
    due = or_(
        and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= now),
        and_(outbox.c.status == "inflight", outbox.c.lease_until < now),
    )
    window = and_(outbox.c.id > bindparam("after"), outbox.c.id <= bindparam("upto"))
    return (
        select(*CLAIMED_COLUMNS)
        .where(window, due, ~blocked, *([] if lane is None else [lane]))
        .order_by(outbox.c.id)
        .limit(bindparam("room"))
    )


def _lease_query(lane: Any = None) -> Any:
    """PostgreSQL: `_due_query`'s rows locked (`SKIP LOCKED`) and leased in one statement,
    `RETURNING` them as leased. A row whose lease ran out was in flight in a worker that
    stopped: its attempt may have reached the peer, so it needs the posted-lookup."""
    due = _due_query(lane).with_only_columns(outbox.c.id).with_for_update(skip_locked=True)
    return (
        update(outbox)
        .where(outbox.c.id.in_(due.correlate(None).scalar_subquery()))
        .values(
            status="inflight",
            lease_until=bindparam("lease_until"),
            lease_owner=bindparam("owner"),
            lease_version=outbox.c.lease_version + 1,
            needs_lookup=or_(outbox.c.needs_lookup, outbox.c.status == "inflight"),
        )
        .returning(*CLAIMED_COLUMNS)
    )


def _next_due_query(lane: Any = None) -> Select[Any]:
    """When the next pending row (of one lane) that is not held behind an earlier one falls
    due."""
    return select(func.min(outbox.c.next_attempt_at)).where(
        outbox.c.status == "pending", ~_blocked(), *([] if lane is None else [lane])
    )


LEASE = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row_id"))
    .values(
        status="inflight",
        lease_until=bindparam("lease_until"),
        lease_owner=bindparam("owner"),
        lease_version=bindparam("version"),
        needs_lookup=bindparam("needs_lookup"),
    )
)
# One statement renews a batch: the rows in flight under this run's own lease owner (unique
# per dispatcher run) within the batch's id range. Other rows of this run in that range are
# renewed with them, which they would be anyway; no other worker's row is touched.
RENEW = Prepared(
    update(outbox)
    .where(
        outbox.c.id >= bindparam("first_id"),
        outbox.c.id <= bindparam("last_id"),
        outbox.c.status == "inflight",
        outbox.c.lease_owner == bindparam("owner"),
    )
    .values(lease_until=bindparam("lease_until"))
)
MARK_DONE = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row_id"))
    .values(
        status="done",
        attempts=bindparam("attempts"),
        done_epoch=bindparam("done_epoch"),
        response=bindparam("response"),
        last_error=None,
        error_class=None,
        lease_until=None,
        lease_owner=None,
        needs_lookup=False,
        failing_since=None,
    )
)


COURTESY_ACTIONS = frozenset({"notice.send"})
"""Messages an OA may have no channel for (archive notices): a destination whose connector
does not list the action settles them as not sent, with the reason, instead of a dead
letter. Every other action a connector cannot take is a configuration error."""


@dataclass(frozen=True)
class ClaimedRow:
    id: int
    destination: str
    action: str
    aggregate_id: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int
    status: str = "pending"
    lease_version: int = 0
    needs_lookup: bool = False
    failing_since: float | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed row's delivery."""

    row: ClaimedRow
    result: DeliveryResult
    attempted: bool = True  # False: held back (open circuit), so not counted as an attempt
    found_by_lookup: bool = False  # the peer already had it: nothing was sent again


class SettleTogether(CallTogether[Outcome, None]):
    """Settles the outcomes of chunks that come back while a settlement is being written
    together in the next one: one transaction (one commit) for all of them instead of one
    each. A peer that takes one message per call (DingTalk, WeCom) returns many small
    chunks at once; settling each on its own made the commits, not the peer, the limit."""

    def __init__(self, settle: Callable[[Sequence[Outcome]], Awaitable[None]]) -> None:
        async def settled(outcomes: list[Outcome]) -> list[None]:
            await settle(outcomes)
            return [None] * len(outcomes)

        super().__init__(settled)

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        """Return once `outcomes` are settled; raises what their settlement raised."""
        await self.run(outcomes)


class Dispatcher:
    def __init__(
        self,
        db: Database,
        connectors: dict[str, Connector],
        *,
        policy: RetryPolicy | None = None,
        handlers: dict[tuple[str, str], SuccessHandler] | None = None,
        dead_handlers: dict[tuple[str, str], DeadHandler] | None = None,
        batch_size: int = 500,
        concurrency: int = 16,
        pipeline: int = 2,
        lease_seconds: float = 15.0,
        worker_id: str = "finoa",
        breaker: Callable[[], CircuitBreaker] = CircuitBreaker,
    ) -> None:
        self.db = db
        self.connectors = connectors
        self.policy = policy or RetryPolicy()
        self.handlers = handlers or {}
        self.dead_handlers = dead_handlers or {}
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.pipeline = max(1, pipeline)  # claimed batches being delivered at once
        self.lease_seconds = lease_seconds
        self.worker_id = worker_id
        self.owner = f"{worker_id}/{uuid.uuid4().hex[:12]}"  # this run of this worker
        self.breakers = {destination: breaker() for destination in connectors}
        # One lane per destination (`run`): its own claimed batches and its own chunks with
        # the peer, so that one peer's backlog never holds back another's rows. The first lane
        # also takes the rows of destinations no connector serves. `None` is every
        # destination at once (`run_once`, `run_until_idle`).
        known = sorted(connectors)
        self._lanes: dict[str | None, Any] = {None: None}
        self._lanes.update(
            (d, _lane_filter(d, known, strays=index == 0)) for index, d in enumerate(known)
        )
        self._strays = known[0] if known else None
        self._due: dict[str | None, Prepared] = {}  # SQLite (one writer): select, then lease
        self._lease: dict[str | None, Prepared] = {}  # PostgreSQL: both in one statement
        self._windows: dict[str | None, Prepared] = {}
        self._next_due: dict[str | None, Prepared] = {}
        for name, lane in self._lanes.items():
            self._due[name] = Prepared(_due_query(lane))
            self._lease[name] = Prepared(_lease_query(lane))
            self._windows[name] = Prepared(_window_query(name, WINDOW_BATCHES * batch_size))
            self._next_due[name] = Prepared(_next_due_query(lane))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str | None, asyncio.Event] = {}
        # per event loop: the chunks with each destination at once (`concurrency`, across
        # the batches in flight) and the settlements
        self._sending: (
            tuple[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore], SettleTogether] | None
        ) = None
        self._stopping = False
        self._reclaimed = False
        self._reclaiming: asyncio.Lock | None = None
        self.delivered = 0
        self.dead_lettered = 0
        self.found_by_lookup = 0
        self.late_settlements = 0
        self.reclaimed = 0

    # -- waking -------------------------------------------------------------------------------
    def wake(self, destinations: Collection[str] | None = None) -> None:
        """Safe from any thread: there is work in the outbox, for `destinations` (None: for
        any). Only the lanes of those destinations look for it."""
        loop, events = self._loop, dict(self._events)
        if loop is None or not events or loop.is_closed():
            return
        chosen = [
            event
            for lane, event in events.items()
            if destinations is None
            or lane is None
            or lane in destinations
            or (lane == self._strays and any(d not in self._lanes for d in destinations))
        ]
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for event in chosen:
            if running is loop:
                event.set()
            else:
                loop.call_soon_threadsafe(event.set)

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    def figures(self) -> dict[str, Any]:
        """Counters of this process's dispatcher and its circuit breakers."""
        return {
            "delivered": self.delivered,
            "dead_lettered": self.dead_lettered,
            "found_by_lookup": self.found_by_lookup,
            "late_settlements": self.late_settlements,
            "reclaimed_at_start": self.reclaimed,
            "circuits": {name: b.snapshot() for name, b in self.breakers.items()},
        }

    # -- running ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver until stopped.

        Each destination is a lane of its own, claiming its own batches: a peer that takes
        one batch at a time (Tryton) is fed from its own rows, however many rows the OA has
        waiting before them. In each lane up to `pipeline` claimed batches are delivered at
        once: the next batch is claimed while the last one's chunks are still with the peer,
        so the peer always has the next one waiting. A row is never in two batches (it is
        leased), and a row whose earlier message for the same document is not done is not
        claimed, so the order per document holds (a document's messages to one destination
        are all in that destination's lane)."""
        self._loop = asyncio.get_running_loop()
        lanes: list[str | None] = [name for name in self._lanes if name is not None] or [None]
        self._events = {lane: asyncio.Event() for lane in lanes}
        self.db.after_outbox_commit.append(self.wake)
        try:
            runs = self._events.items()
            await asyncio.gather(*(self._run_lane(lane, event) for lane, event in runs))
        finally:
            if self.wake in self.db.after_outbox_commit:
                self.db.after_outbox_commit.remove(self.wake)

    async def _run_lane(self, lane: str | None, event: asyncio.Event) -> None:
        failures = 0
        in_flight: set[asyncio.Task[int]] = set()

        def finished(task: asyncio.Task[int]) -> None:
            in_flight.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("delivering a batch failed", exc_info=task.exception())
            event.set()  # rows held behind the batch's rows (all in this lane) may be due now

        try:
            while not self._stopping:
                event.clear()
                if len(in_flight) >= self.pipeline:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    rows = await self._claim(lane)
                    if rows:
                        failures = 0
                        task = asyncio.ensure_future(self._deliver_leased(rows))
                        in_flight.add(task)
                        task.add_done_callback(finished)
                        continue
                    timeout = await self.db.run(self._seconds_until_due, lane)
                    failures = 0
                except Exception:
                    # The database went away or a bug surfaced: rows stay leased or pending,
                    # so nothing is lost; try again after a capped pause.
                    failures += 1
                    timeout = min(SAFETY_POLL_SECONDS * failures, 30.0)
                    log.exception("dispatcher cycle failed; retrying in %.0f s", timeout)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout)
        finally:
            if in_flight:  # stopping: the batches being delivered are settled first
                await asyncio.wait(set(in_flight))

    async def run_until_idle(self, max_seconds: float = 60.0) -> None:
        """Deliver everything due now (and retries that fall due within `max_seconds`)."""
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            if await self.run_once():
                continue
            wait = await self.db.run(self._seconds_until_due)
            if wait >= SAFETY_POLL_SECONDS or time.monotonic() + wait > deadline:
                return
            await asyncio.sleep(wait)

    async def run_once(self) -> int:
        """Claim one batch, deliver it, settle it; returns how many rows were handled."""
        rows = await self._claim()
        if not rows:
            return 0
        return await self._deliver_leased(rows)

    async def _reclaim(self) -> None:
        """Once per dispatcher, before its first claim (in whichever lane comes first)."""
        if self._reclaimed:
            return
        if self._reclaiming is None:
            self._reclaiming = asyncio.Lock()
        async with self._reclaiming:
            if not self._reclaimed:
                self.reclaimed = await self.db.run(self._reclaim_own_rows)
                self._reclaimed = True

    async def _claim(self, lane: str | None = None) -> list[ClaimedRow]:
        await self._reclaim()
        return await self.db.run(self._claim_batch, lane)

    async def _deliver_leased(self, rows: list[ClaimedRow]) -> int:
        """Deliver claimed rows, renewing their leases until all are settled."""
        heartbeat = asyncio.ensure_future(self._heartbeat(rows))
        try:
            await self._deliver(rows)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return len(rows)

    # -- claiming -----------------------------------------------------------------------------
    def _reclaim_own_rows(self) -> int:
        """Rows an earlier run of this worker left in flight (it crashed or was killed): due
        now, not when their lease runs out. Their last attempt may have reached the peer."""
        with self.db.uow("dispatcher") as uow:
            taken = uow.conn.execute(
                update(outbox)
                .where(
                    outbox.c.status == "inflight",
                    outbox.c.lease_owner.like(f"{_like_escape(self.worker_id)}/%", escape="\\"),
                    outbox.c.lease_owner != self.owner,
                )
                .values(
                    status="pending",
                    next_attempt_at=time.time(),
                    lease_until=None,
                    lease_owner=None,
                    needs_lookup=True,
                )
            ).rowcount
            if taken:
                uow.mark_outbox_changed()
            uow.commit()
        if taken:
            log.warning("took back %d rows left in flight by an earlier run", taken)
        return int(taken or 0)

    def _claim_batch(self, lane: str | None = None) -> list[ClaimedRow]:
        """Lease the next batch of due rows of `lane` (a destination; None: of any)."""
        now = time.time()
        lease_until = now + self.lease_seconds
        with self.db.uow("dispatcher") as uow:
            in_one = uow.conn.dialect.name == "postgresql"
            rows: list[ClaimedRow] = []
            after = 0
            while True:  # window after window of rows not done, until the batch is full
                end = self._windows[lane].first(uow.conn, {"after": after})
                upto = LAST_ID if end is None else int(end[0])
                values = {"now": now, "after": after, "upto": upto}
                values["room"] = self.batch_size - len(rows)
                if in_one:
                    leased = self._lease[lane].all(
                        uow.conn, {**values, "lease_until": lease_until, "owner": self.owner}
                    )
                    rows.extend(sorted((ClaimedRow(**r._asdict()) for r in leased), key=_by_id))
                else:
                    found = [self._leased(r) for r in self._due[lane].all(uow.conn, values)]
                    LEASE.run_many(
                        uow.conn,
                        [
                            {
                                "row_id": r.id,
                                "lease_until": lease_until,
                                "owner": self.owner,
                                "version": r.lease_version,
                                "needs_lookup": r.needs_lookup,
                            }
                            for r in found
                        ],
                    )
                    rows.extend(found)
                if end is None or len(rows) >= self.batch_size:
                    break
                after = upto
            uow.commit()
        return rows

    @staticmethod
    def _leased(row: Any) -> ClaimedRow:
        """A due row as it is about to be leased (what `_lease_query` returns on PostgreSQL).
        A row whose lease ran out was in flight in a worker that stopped: its attempt may
        have reached the peer."""
        fields = dict(row._mapping)
        fields["needs_lookup"] = bool(fields["needs_lookup"]) or row.status == "inflight"
        fields["lease_version"] = int(row.lease_version or 0) + 1
        return ClaimedRow(**fields)

    async def _heartbeat(self, rows: Sequence[ClaimedRow]) -> None:
        """Renew the leases while the delivery runs, so only a stopped worker loses them."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.db.run(self._renew, rows)
            except Exception:  # a missed renewal only risks a redundant (looked-up) retry
                log.exception("renewing %d leases failed", len(rows))

    def _renew(self, rows: Sequence[ClaimedRow]) -> None:
        lease_until = time.time() + self.lease_seconds
        ids = [r.id for r in rows]
        if not ids:
            return
        with self.db.uow("dispatcher") as uow:
            RENEW.run(
                uow.conn,
                {
                    "first_id": min(ids),
                    "last_id": max(ids),
                    "owner": self.owner,
                    "lease_until": lease_until,
                },
            )
            uow.commit()

    def _seconds_until_due(self, lane: str | None = None) -> float:
        """Until the next pending row that is not held behind an earlier one falls due. A
        held row waits for a settlement (which wakes the dispatcher), not for its own time:
        counting it would make the dispatcher spin while a slow peer holds the rows before
        it, or while a dead letter does."""
        with self.db.engine.connect() as conn:
            next_due = self._next_due[lane].first(conn)[0]
        if next_due is None:
            return SAFETY_POLL_SECONDS
        return max(0.0, min(SAFETY_POLL_SECONDS, float(next_due) - time.time()))

    # -- delivering ---------------------------------------------------------------------------
    async def _deliver(self, rows: Sequence[ClaimedRow]) -> None:
        """Deliver the rows chunk by chunk (up to `concurrency` chunks at once) and settle
        each chunk as soon as its answers are in: a slow peer's chunks do not hold back the
        others' follow-ups, and each settlement is a short transaction (shared by the chunks
        that came back while the one before was written)."""
        groups: dict[tuple[str, str], list[ClaimedRow]] = {}
        for row in rows:
            groups.setdefault((row.destination, row.action), []).append(row)
        loop = asyncio.get_running_loop()
        if self._sending is None or self._sending[0] is not loop:
            together = SettleTogether(lambda outcomes: self.db.run(self._settle, outcomes))
            self._sending = (loop, {}, together)
        _, semaphores, together = self._sending
        outcomes: list[Outcome] = []

        async def send(destination: str, connector: Connector, chunk: list[ClaimedRow]) -> None:
            semaphore = semaphores.setdefault(destination, asyncio.Semaphore(self.concurrency))
            async with semaphore:
                settled = await self._send(destination, connector, chunk)
            await together.settle(settled)

        tasks = []
        for (destination, action), group in groups.items():
            connector = self.connectors.get(destination)
            if connector is None:
                error = DeliveryError(ErrorClass.CONFIG, f"no connector for {destination!r}")
                outcomes.extend(Outcome(r, DeliveryResult(error=error)) for r in group)
                continue
            if action not in connector.manifest.actions:
                if action in COURTESY_ACTIONS:
                    # The OA has no channel for it: told nobody, and no dead letter either.
                    reason = f"{connector.manifest.name} takes no {action!r}; not sent"
                    result = DeliveryResult(response={"status": "not_sent", "reason": reason})
                    outcomes.extend(Outcome(r, result) for r in group)
                    continue
                error = DeliveryError(
                    ErrorClass.CONFIG, f"{connector.manifest.name} cannot {action!r}"
                )
                outcomes.extend(Outcome(r, DeliveryResult(error=error)) for r in group)
                continue
            size = max(1, connector.manifest.max_batch)
            for start in range(0, len(group), size):
                tasks.append(send(destination, connector, group[start : start + size]))
        if outcomes:  # rows no connector could take
            await self.db.run(self._settle, outcomes)
        await asyncio.gather(*tasks)

    async def _send(
        self, destination: str, connector: Connector, chunk: list[ClaimedRow]
    ) -> list[Outcome]:
        """Look up what may already have happened, send the rest; one outcome per row."""
        breaker = self.breakers.setdefault(destination, CircuitBreaker())
        if not breaker.allow():
            wait = breaker.wait_seconds()
            error = DeliveryError(
                ErrorClass.TRANSIENT,
                f"{destination} is not answering (circuit open); next probe in {wait:.1f} s",
                retry_after=wait,
            )
            return [Outcome(r, DeliveryResult(error=error), attempted=False) for r in chunk]
        outcomes: dict[int, Outcome] = {}
        if breaker.state is CircuitState.HALF_OPEN and len(chunk) > 1:
            # a probe: one message finds out whether the peer is back; the rest follow it
            probing = DeliveryError(ErrorClass.TRANSIENT, f"{destination} is being probed")
            for row in chunk[1:]:
                outcomes[row.id] = Outcome(row, DeliveryResult(error=probing), attempted=False)
            chunk, held = chunk[:1], chunk
        else:
            held = chunk
        to_send = [r for r in chunk if not r.needs_lookup]
        to_check = [r for r in chunk if r.needs_lookup]
        if to_check:
            found = await self._call(connector, "lookup", to_check)
            for row, result in zip(to_check, found, strict=True):
                if result is None:
                    to_send.append(row)  # certainly not there: send it
                elif result.ok:
                    outcomes[row.id] = Outcome(row, result, found_by_lookup=True)
                else:
                    outcomes[row.id] = Outcome(row, result)
        if to_send:
            to_send.sort(key=lambda r: r.id)
            sent = await self._call(connector, "deliver", to_send)
            for row, result in zip(to_send, sent, strict=True):
                outcomes[row.id] = Outcome(row, result)  # type: ignore[arg-type]
        results = [o.result for o in outcomes.values() if o.attempted and not o.found_by_lookup]
        breaker.record(not results or not all(_endpoint_failed(result) for result in results))
        return [outcomes[r.id] for r in held]

    async def _call(
        self, connector: Connector, method: str, rows: list[ClaimedRow]
    ) -> list[DeliveryResult | None]:
        """`connector.deliver` or `connector.lookup`, with any failure turned into results."""
        messages = [
            OutboundMessage(r.id, r.action, r.aggregate_id, r.idempotency_key, r.payload)
            for r in rows
        ]
        call = getattr(connector, method, None)
        if call is None:  # a connector without a posted-lookup: its peer keeps the keys
            return [None] * len(rows)
        answer: list[Any]
        try:
            answer = list(await call(messages))
        except DeliveryError as exc:
            answer = [DeliveryResult(error=exc)] * len(rows)
        except Exception as exc:  # a connector bug must not stop the dispatcher
            log.exception("connector %s failed in %s", connector.manifest.name, method)
            answer = [DeliveryResult(error=DeliveryError.from_exception(exc))] * len(rows)
        if len(answer) != len(rows):
            error = DeliveryError(
                ErrorClass.PERMANENT, f"connector {method} returned a wrong count"
            )
            answer = [DeliveryResult(error=error)] * len(rows)
        return answer

    # -- settling -----------------------------------------------------------------------------
    def _settle(self, outcomes: Sequence[Outcome], conflicts: int = 0) -> None:
        """Write what became of each row, with its follow-up, in one transaction. A follow-up
        that would lock rows out of order (`UnitOfWork.take_in_order`), or that hit a
        deadlock (a bounded number of times), is settled in the next transaction."""
        now = time.time()
        done: list[dict[str, Any]] = []
        later: list[Outcome] = []
        with self.db.uow("dispatcher") as uow:
            conn = uow.conn
            held = self._leases_held(conn, [o.row for o in outcomes])
            for outcome in sorted(outcomes, key=lambda o: o.row.id):
                row, result = outcome.row, outcome.result
                if row.id not in held:
                    # The lease ran out and another worker took the row: its settlement, not
                    # ours, counts. Nothing is changed.
                    self.late_settlements += 1
                    log.warning("outbox row %s: lease lost before settling; left alone", row.id)
                    continue
                attempts = row.attempts + (1 if outcome.attempted else 0)
                error = result.error
                if error is None:
                    handler = self.handlers.get((row.destination, row.action))
                    if handler is not None:
                        try:
                            with uow.step(uow.actor):
                                handler(uow, row.aggregate_id, result.response)
                        except Exception as exc:
                            if isinstance(exc, LocksOutOfOrder) or (
                                is_retryable_conflict(exc) and conflicts < SETTLE_CONFLICTS
                            ):
                                later.append(outcome)
                                continue
                            log.exception("follow-up of outbox row %s failed", row.id)
                            error = DeliveryError(
                                ErrorClass.PERMANENT, f"delivered, but follow-up failed: {exc}"
                            )
                    if error is None:
                        if outcome.found_by_lookup:
                            self.found_by_lookup += 1
                            uow.audit(
                                "outbox.found_by_lookup",
                                "outbox",
                                str(row.id),
                                {
                                    "destination": row.destination,
                                    "action": row.action,
                                    "aggregate_id": row.aggregate_id,
                                },
                            )
                        done.append(
                            {"row_id": row.id, "attempts": attempts, "response": result.response}
                        )
                        continue
                assert error is not None
                self._fail(uow, outcome, error, attempts, now)
            if done:
                MARK_DONE.run_many(conn, [{**d, "done_epoch": now} for d in done])
                self.delivered += len(done)
            uow.commit()
        if later:
            self._settle(later, conflicts + 1)
        if done:  # rows held behind these (same destinations) may be claimed now
            self.wake({outcome.row.destination for outcome in outcomes})

    def _leases_held(self, conn: Any, rows: list[ClaimedRow]) -> set[int]:
        """The ids among `rows` whose lease this dispatcher still holds (locked on PostgreSQL
        until the settlement commits)."""
        if not rows:
            return set()
        wanted = {r.id: r.lease_version for r in rows}
        query = select(outbox.c.id, outbox.c.lease_version).where(
            outbox.c.id.in_(list(wanted)),
            outbox.c.status == "inflight",
            outbox.c.lease_owner == self.owner,
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        return {r.id for r in conn.execute(query) if wanted[r.id] == r.lease_version}

    def _fail(
        self, uow: UnitOfWork, outcome: Outcome, error: DeliveryError, attempts: int, now: float
    ) -> None:
        row = outcome.row
        failing_since = row.failing_since if row.failing_since is not None else now
        # A lookup that failed leaves the question open; a send that may have arrived opens it.
        needs_lookup = (row.needs_lookup and not outcome.found_by_lookup) or error.outcome_unknown
        if not outcome.attempted:
            delay: float | None = max(error.retry_after or 0.0, 0.05)
        else:
            delay = self.policy.next_step(error, attempts, failing_for=now - failing_since)
        common = {
            "attempts": attempts,
            "last_error": error.reason[:2000],
            "error_class": error.error_class.value,
            "lease_until": None,
            "lease_owner": None,
            "needs_lookup": needs_lookup,
            "failing_since": failing_since,
        }
        if delay is not None:
            uow.conn.execute(
                update(outbox)
                .where(outbox.c.id == row.id)
                .values(status="pending", next_attempt_at=now + delay, **common)
            )
            return
        self.dead_lettered += 1
        uow.conn.execute(
            update(outbox).where(outbox.c.id == row.id).values(status="dead", **common)
        )
        uow.audit(
            "outbox.dead_lettered",
            "outbox",
            str(row.id),
            {
                "destination": row.destination,
                "action": row.action,
                "aggregate_id": row.aggregate_id,
                "error_class": error.error_class.value,
                "reason": error.reason[:500],
                "attempts": attempts,
            },
        )
        log.warning("dead letter %s (%s %s): %s", row.id, row.destination, row.action, error.reason)
        follow_up = self.dead_handlers.get((row.destination, row.action))
        if follow_up is not None:
            try:
                with uow.step(uow.actor):
                    follow_up(uow, row.aggregate_id, error)
            except Exception:  # the dead letter stands; its follow-up's writes are undone
                log.exception("dead-letter follow-up of outbox row %s failed", row.id)


# Failures that say nothing against the peer's health: a refused token (refreshed, then
# retried) and a refusal for frequency (the peer answered and asked us to slow down; the
# message is retried after its Retry-After and the connector's pacer slows down).
HEALTHY_REFUSALS = frozenset({ErrorClass.AUTH, ErrorClass.RATE_LIMITED})


def _endpoint_failed(result: DeliveryResult | None) -> bool:
    """The peer did not do its job (unreachable, overloaded, erroring), as opposed to refusing
    one message for a reason of its own or asking us to slow down."""
    return (
        result is not None
        and result.error is not None
        and result.error.error_class in RETRYABLE
        and result.error.error_class not in HEALTHY_REFUSALS
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
