"""The outbox dispatcher: delivers queued messages, at least once, in order per document.

It claims due rows in batches (PostgreSQL: FOR UPDATE SKIP LOCKED, so several workers can share
the table), leases them, hands them to connectors grouped by action, and settles the results in
one transaction: done (and the follow-up use case runs, e.g. "voucher posted"), retried later
with capped exponential backoff + jitter, or dead-lettered with its reason. It is woken right
after any commit that queued messages; it never polls on a fixed interval on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Select, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from finoa.connectors.base import Connector, DeliveryResult, OutboundMessage
from finoa.messaging.retry import DeliveryError, ErrorClass, RetryPolicy
from finoa.store.prepared import Prepared
from finoa.store.tables import outbox
from finoa.store.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

# What to do inside the settling transaction when a message of (destination, action) succeeds.
SuccessHandler = Callable[[UnitOfWork, str, dict[str, Any]], None]

SAFETY_POLL_SECONDS = 2.0  # picks up rows queued by other processes; not on the hot path


def _due_query(batch_size: int) -> Select[Any]:
    """Rows due now (`:now`) whose earlier messages for the same document are all done."""
    earlier = aliased(outbox)
    blocked = exists().where(
        and_(
            earlier.c.ordering_key == outbox.c.ordering_key,
            earlier.c.id < outbox.c.id,
            earlier.c.status != "done",
        )
    )
    now = bindparam("now", type_=Float)
    due = or_(
        and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= now),
        and_(outbox.c.status == "inflight", outbox.c.lease_until < now),
    )
    return (
        select(
            outbox.c.id,
            outbox.c.destination,
            outbox.c.action,
            outbox.c.aggregate_id,
            outbox.c.idempotency_key,
            outbox.c.payload,
            outbox.c.attempts,
        )
        .where(due, ~blocked)
        .order_by(outbox.c.id)
        .limit(batch_size)
    )


LEASE = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row_id"))
    .values(status="inflight", lease_until=bindparam("lease_until"))
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
    )
)


@dataclass(frozen=True)
class ClaimedRow:
    id: int
    destination: str
    action: str
    aggregate_id: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int


class Dispatcher:
    def __init__(
        self,
        db: Database,
        connectors: dict[str, Connector],
        *,
        policy: RetryPolicy | None = None,
        handlers: dict[tuple[str, str], SuccessHandler] | None = None,
        batch_size: int = 500,
        concurrency: int = 16,
        lease_seconds: float = 120.0,
    ) -> None:
        self.db = db
        self.connectors = connectors
        self.policy = policy or RetryPolicy()
        self.handlers = handlers or {}
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        due = _due_query(batch_size)
        self._due = Prepared(due)
        self._due_locking = Prepared(due.with_for_update(skip_locked=True, of=outbox))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._stopping = False
        self.delivered = 0
        self.dead_lettered = 0

    # -- waking -------------------------------------------------------------------------------
    def wake(self) -> None:
        """Safe from any thread: there is work in the outbox."""
        loop, event = self._loop, self._event
        if loop is None or event is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    # -- running ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver until stopped."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.db.after_outbox_commit.append(self.wake)
        failures = 0
        try:
            while not self._stopping:
                self._event.clear()
                try:
                    if await self.run_once():
                        failures = 0
                        continue
                    timeout = await self.db.run(self._seconds_until_due)
                    failures = 0
                except Exception:
                    # The database went away or a bug surfaced: rows stay leased or pending,
                    # so nothing is lost; try again after a capped pause.
                    failures += 1
                    timeout = min(SAFETY_POLL_SECONDS * failures, 30.0)
                    log.exception("dispatcher cycle failed; retrying in %.0f s", timeout)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), timeout)
        finally:
            if self.wake in self.db.after_outbox_commit:
                self.db.after_outbox_commit.remove(self.wake)

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
        rows = await self.db.run(self._claim_batch)
        if not rows:
            return 0
        results = await self._deliver(rows)
        await self.db.run(self._settle, results)
        return len(rows)

    # -- claiming -----------------------------------------------------------------------------
    def _claim_batch(self) -> list[ClaimedRow]:
        now = time.time()
        with self.db.uow("dispatcher") as uow:
            due = self._due_locking if uow.conn.dialect.name == "postgresql" else self._due
            rows = [ClaimedRow(**r._mapping) for r in due.all(uow.conn, {"now": now})]
            lease_until = now + self.lease_seconds
            LEASE.run_many(uow.conn, [{"row_id": r.id, "lease_until": lease_until} for r in rows])
            uow.commit()
        return rows

    def _seconds_until_due(self) -> float:
        with self.db.engine.connect() as conn:
            next_due = conn.execute(
                select(func.min(outbox.c.next_attempt_at)).where(outbox.c.status == "pending")
            ).scalar()
        if next_due is None:
            return SAFETY_POLL_SECONDS
        return max(0.0, min(SAFETY_POLL_SECONDS, float(next_due) - time.time()))

    # -- delivering ---------------------------------------------------------------------------
    async def _deliver(self, rows: Sequence[ClaimedRow]) -> list[tuple[ClaimedRow, DeliveryResult]]:
        groups: dict[tuple[str, str], list[ClaimedRow]] = {}
        for row in rows:
            groups.setdefault((row.destination, row.action), []).append(row)
        semaphore = asyncio.Semaphore(self.concurrency)
        results: list[tuple[ClaimedRow, DeliveryResult]] = []

        async def send(connector: Connector, chunk: list[ClaimedRow]) -> None:
            messages = [
                OutboundMessage(r.id, r.action, r.aggregate_id, r.idempotency_key, r.payload)
                for r in chunk
            ]
            async with semaphore:
                try:
                    outcome = await connector.deliver(messages)
                except DeliveryError as exc:
                    outcome = [DeliveryResult(error=exc)] * len(chunk)
                except Exception as exc:  # a connector bug must not stop the dispatcher
                    log.exception("connector %s failed", connector.manifest.name)
                    outcome = [DeliveryResult(error=DeliveryError.from_exception(exc))] * len(chunk)
            if len(outcome) != len(chunk):
                error = DeliveryError(ErrorClass.PERMANENT, "connector returned a wrong count")
                outcome = [DeliveryResult(error=error)] * len(chunk)
            results.extend(zip(chunk, outcome, strict=True))

        tasks = []
        for (destination, action), group in groups.items():
            connector = self.connectors.get(destination)
            if connector is None:
                error = DeliveryError(ErrorClass.CONFIG, f"no connector for {destination!r}")
                results.extend((r, DeliveryResult(error=error)) for r in group)
                continue
            if action not in connector.manifest.actions:
                error = DeliveryError(
                    ErrorClass.CONFIG, f"{connector.manifest.name} cannot {action!r}"
                )
                results.extend((r, DeliveryResult(error=error)) for r in group)
                continue
            size = max(1, connector.manifest.max_batch)
            for start in range(0, len(group), size):
                tasks.append(send(connector, group[start : start + size]))
        await asyncio.gather(*tasks)
        return results

    # -- settling -----------------------------------------------------------------------------
    def _settle(self, results: Sequence[tuple[ClaimedRow, DeliveryResult]]) -> None:
        now = time.time()
        done: list[dict[str, Any]] = []
        with self.db.uow("dispatcher") as uow:
            conn = uow.conn
            for row, result in sorted(results, key=lambda pair: pair[0].id):
                attempts = row.attempts + 1
                error = result.error
                if error is None:
                    handler = self.handlers.get((row.destination, row.action))
                    if handler is not None:
                        try:
                            with uow.step(uow.actor):
                                handler(uow, row.aggregate_id, result.response)
                        except Exception as exc:
                            log.exception("follow-up of outbox row %s failed", row.id)
                            error = DeliveryError(
                                ErrorClass.PERMANENT, f"delivered, but follow-up failed: {exc}"
                            )
                    if error is None:
                        done.append(
                            {"row_id": row.id, "attempts": attempts, "response": result.response}
                        )
                        continue
                assert error is not None
                delay = self.policy.next_step(error, attempts)
                if delay is None:
                    self.dead_lettered += 1
                    conn.execute(
                        update(outbox)
                        .where(outbox.c.id == row.id)
                        .values(
                            status="dead",
                            attempts=attempts,
                            last_error=error.reason[:2000],
                            error_class=error.error_class.value,
                            lease_until=None,
                        )
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
                    log.warning(
                        "dead letter %s (%s %s): %s",
                        row.id,
                        row.destination,
                        row.action,
                        error.reason,
                    )
                else:
                    conn.execute(
                        update(outbox)
                        .where(outbox.c.id == row.id)
                        .values(
                            status="pending",
                            attempts=attempts,
                            next_attempt_at=now + delay,
                            last_error=error.reason[:2000],
                            error_class=error.error_class.value,
                            lease_until=None,
                        )
                    )
            if done:
                MARK_DONE.run_many(conn, [{**d, "done_epoch": now} for d in done])
                self.delivered += len(done)
            uow.commit()
