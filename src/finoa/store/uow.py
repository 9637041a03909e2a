"""The unit of work: one use case = one transaction that writes the state change, its audit
events and its outbox messages together. Side effects on other systems happen only later,
from the outbox, after commit."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import Connection, Engine, insert, select, text

from finoa.security.audit import GENESIS, digest, link_hash
from finoa.store.db import WRITE_OPTION, make_engine, write_lock
from finoa.store.errors import CommitOutcomeUnknown, LocksOutOfOrder, is_retryable_conflict
from finoa.store.locks import LockClass
from finoa.store.prepared import Prepared, run_sql
from finoa.store.tables import audit_events, outbox
from finoa.store.voucher_numbers import PendingVoucher, write_vouchers

T = TypeVar("T")
log = logging.getLogger(__name__)
INSERT_OUTBOX = Prepared(insert(outbox))
INSERT_AUDIT = Prepared(insert(audit_events))
AUDIT_HEAD = Prepared(
    select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Database:
    """An engine plus the hooks to run after a commit that queued outbox messages.

    `before_commit` hooks run right before COMMIT is sent, with the connection; they exist so
    that tests can break a connection at exactly that point.
    """

    engine: Engine
    # called after a commit that queued outbox rows, with their destinations (None: rows of
    # any destination may have been made due again, as a replay does)
    after_outbox_commit: list[Callable[[frozenset[str] | None], None]] = field(default_factory=list)
    before_commit: list[Callable[[Connection], None]] = field(default_factory=list)
    clock: Callable[[], datetime] = utcnow  # what `uow.now` reads; tests set a fixed instant

    @classmethod
    def connect(
        cls, url: str, *, pool_size: int = 10, sqlite_synchronous: str = "full"
    ) -> Database:
        return cls(make_engine(url, pool_size=pool_size, sqlite_synchronous=sqlite_synchronous))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run blocking database work from async code.

        SQLite has one writer at a time, so the work runs right on the event loop: no thread
        hop, no threads queueing on the write lock. Other databases run it in a worker thread
        so that transactions proceed concurrently.
        """
        if self.is_sqlite:
            return fn(*args, **kwargs)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    def uow(self, actor: str = "system") -> UnitOfWork:
        return UnitOfWork(self, actor)

    def perform(self, command: Callable[[UnitOfWork], T], *, actor: str) -> T:
        """Run one command in a transaction of its own and commit it (blocking)."""
        with self.uow(actor) as uow:
            result = command(uow)
            uow.commit()
        return result

    def dispose(self) -> None:
        self.engine.dispose()


@dataclass(frozen=True)
class OutboxMessage:
    destination: str
    action: str
    aggregate_type: str
    aggregate_id: str
    payload: dict[str, Any]
    idempotency_key: str


class UnitOfWork:
    """`with db.uow(actor) as uow: ...; uow.commit()` — rolled back unless committed."""

    def __init__(self, db: Database, actor: str) -> None:
        self.db = db
        self.actor = actor
        self._conn: Connection | None = None
        self._lock = write_lock(db.engine)
        self._audit: list[tuple[datetime, str, str, str, str, dict[str, Any]]] = []
        self._outbox: list[OutboxMessage] = []
        self._vouchers: list[PendingVoucher] = []
        self._committed = False
        self._outbox_changed = False
        self._steps = 0
        # rows taken by `take_in_order`: by the steps that ended well, and by the current one
        self._held: dict[str, set[int]] = {}
        self._held_in_step: dict[str, set[int]] | None = None
        self.now = db.clock()

    def __enter__(self) -> UnitOfWork:
        if self._lock is not None:
            self._lock.acquire()
        try:
            self._conn = self.db.engine.connect().execution_options(**{WRITE_OPTION: True})
            self._conn.begin()
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._conn is not None:
                try:
                    if not self._committed:
                        self._conn.rollback()
                    self._conn.close()
                except Exception:
                    if exc is None:
                        raise
                    # the connection is already broken; the error that broke it is raised
                    log.debug("rollback after a failed unit of work failed too", exc_info=True)
                    self._conn.invalidate()
        finally:
            if self._lock is not None:
                self._lock.release()
        if self._committed and (self._outbox or self._outbox_changed):
            destinations = (
                None if self._outbox_changed else frozenset(m.destination for m in self._outbox)
            )
            for hook in self.db.after_outbox_commit:
                try:
                    hook(destinations)
                except Exception:  # the commit stands: a hook can never undo or redo it
                    log.exception("a hook after commit failed")

    @property
    def conn(self) -> Connection:
        assert self._conn is not None, "unit of work not entered"
        return self._conn

    def audit(
        self,
        action: str,
        object_type: str,
        object_id: str,
        data: dict[str, Any],
        *,
        actor: str | None = None,
    ) -> None:
        """Record an audit event; it is chained and written at commit."""
        self._audit.append((self.now, actor or self.actor, action, object_type, object_id, data))

    @contextmanager
    def step(self, actor: str) -> Iterator[UnitOfWork]:
        """One command among several sharing this transaction (a group commit).

        Its writes sit in a savepoint: when the command raises, they are undone together with
        the audit events and outbox messages it queued, and the others are untouched.
        """
        saved = (
            self.actor,
            self.now,
            len(self._audit),
            len(self._outbox),
            self._outbox_changed,
            len(self._vouchers),
        )
        self.actor, self.now = actor, self.db.clock()
        self._steps += 1
        outer, self._held_in_step = self._held_in_step, {}
        savepoint = f"finoa_step_{self._steps}"  # plain SQL: far cheaper than begin_nested()
        run_sql(self.conn, f"SAVEPOINT {savepoint}")
        try:
            yield self
        except BaseException:
            run_sql(self.conn, f"ROLLBACK TO SAVEPOINT {savepoint}")
            run_sql(self.conn, f"RELEASE SAVEPOINT {savepoint}")
            del self._audit[saved[2] :]
            del self._outbox[saved[3] :]
            self._outbox_changed = saved[4]
            del self._vouchers[saved[5] :]
            raise  # its rows were let go with the savepoint: they are not held
        else:
            run_sql(self.conn, f"RELEASE SAVEPOINT {savepoint}")
            # an inner step's rows belong to the step around it; the outermost one's are held
            into = self._held if outer is None else outer
            for resource, keys in self._held_in_step.items():
                into.setdefault(resource, set()).update(keys)
        finally:
            self._held_in_step = outer
            self.actor, self.now = saved[0], saved[1]

    def take_in_order(self, resource: str, keys: Iterable[int]) -> list[int]:
        """The order in which to lock rows of `resource` (by their integer keys): ascending.

        Every transaction that takes such rows in ascending order cannot deadlock with another
        one on them. Within one command sorting is enough, but a group commit runs several
        commands in one transaction: a later command must not take a row below one an earlier
        command already holds. When it would, it raises `LocksOutOfOrder` before taking any,
        its step is undone and the group commit (or the dispatcher's settlement) runs it in
        the next transaction. The first step of a transaction never raises it, nor does work
        outside steps. SQLite has one writer: no rule applies.
        """
        wanted = sorted(set(keys))
        if self.db.is_sqlite or self._held_in_step is None:
            return wanted  # one writer, or a transaction of one command
        held = self._held.get(resource)
        if held:
            highest = max(held)
            below = [key for key in wanted if key < highest and key not in held]
            if below:
                raise LocksOutOfOrder(resource, below[0], highest)
        self._held_in_step.setdefault(resource, set()).update(wanted)
        return wanted

    def add_voucher(self, voucher: PendingVoucher) -> None:
        """Queue a generated voucher; it is numbered and written at commit (see
        `store/voucher_numbers.py`), so that its period's counter is locked only then."""
        self._vouchers.append(voucher)

    def enqueue(self, message: OutboxMessage) -> None:
        """Queue an outbound message; written at commit, delivered after it."""
        self._outbox.append(message)

    def mark_outbox_changed(self) -> None:
        """Rows were made due again (a replay): wake the dispatcher after commit."""
        self._outbox_changed = True

    @property
    def committed(self) -> bool:
        return self._committed

    def commit(self) -> None:
        """Number and write the queued vouchers, write the queued outbox and audit rows,
        then COMMIT.

        A failure before COMMIT is sent is raised as it is (the transaction is rolled back).
        A failure of COMMIT itself is raised as `CommitOutcomeUnknown`, unless the database
        says for certain that it rolled back (a deadlock or serialization failure).
        """
        write_vouchers(self.conn, self._vouchers)  # fills the numbers the others carry
        self._flush_outbox()
        self._flush_audit()
        for hook in self.db.before_commit:
            hook(self.conn)
        try:
            self.conn.commit()
        except Exception as exc:
            if is_retryable_conflict(exc):
                raise
            raise CommitOutcomeUnknown(exc) from exc
        self._committed = True

    def _flush_outbox(self) -> None:
        if not self._outbox:
            return
        now = time.time()
        rows = [
            {
                "aggregate_type": m.aggregate_type,
                "aggregate_id": m.aggregate_id,
                "destination": m.destination,
                "action": m.action,
                "ordering_key": f"{m.destination}:{m.action}:{m.aggregate_id}",
                "payload": m.payload,
                "idempotency_key": m.idempotency_key,
                "digest": digest(m.payload),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_epoch": now,
            }
            for m in self._outbox
        ]
        INSERT_OUTBOX.run_many(self.conn, rows)

    def _flush_audit(self) -> None:
        if not self._audit:
            return
        conn = self.conn
        # the digests need no place in the chain: made before the lock that every writer of
        # audit events waits on, so that a big settlement holds it for as short as it can
        digests = [digest(event[-1]) for event in self._audit]
        if conn.dialect.name == "postgresql":
            lock = {"k": int(LockClass.AUDIT_CHAIN)}
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), lock)
        head = AUDIT_HEAD.first(conn)
        seq, prev_hash = (head[0], head[1]) if head else (0, GENESIS)
        rows = []
        for (at, actor, action, object_type, object_id, data), data_digest in zip(
            self._audit, digests, strict=True
        ):
            seq += 1
            event_hash = link_hash(
                prev_hash,
                seq=seq,
                at=at,
                actor=actor,
                action=action,
                object_type=object_type,
                object_id=object_id,
                data_digest=data_digest,
            )
            rows.append(
                {
                    "seq": seq,
                    "at": at,
                    "actor": actor,
                    "action": action,
                    "object_type": object_type,
                    "object_id": object_id,
                    "data": data,
                    "data_digest": data_digest,
                    "prev_hash": prev_hash,
                    "hash": event_hash,
                }
            )
            prev_hash = event_hash
        INSERT_AUDIT.run_many(conn, rows)
