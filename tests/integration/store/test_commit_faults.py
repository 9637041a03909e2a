"""The outcome of a commit is never guessed, on SQLite and PostgreSQL.

Failures are injected at each point of a group commit: in a command, before COMMIT is sent,
while it is on its way (the connection is killed: on PostgreSQL by the server, on SQLite by
closing the handle), after the database committed but before the answer came back, and in a
hook after commit. Every command is applied at most once, and exactly once once its sender
retries what was answered "outcome unknown".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, select, update
from sqlalchemy.exc import OperationalError
from support.databases import PG_ADMIN_URL

from finoa.domain.errors import Conflict
from finoa.messaging.inbox import record, seen
from finoa.store.errors import CommitOutcomeUnknown
from finoa.store.group_commit import GroupCommit
from finoa.store.tables import audit_events, inbox, voucher_sequences
from finoa.store.uow import Database, OutboxMessage, UnitOfWork

SOURCE = "probe"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.connect(db_url)
    yield database
    database.dispose()


def once(key: str) -> Callable[[UnitOfWork], str]:
    """An idempotent command: records `key` in the inbox unless it is there already."""

    def command(uow: UnitOfWork) -> str:
        if seen(uow, SOURCE, key, "probe", {"key": key}) is not None:
            return f"{key}:duplicate"
        record(uow, SOURCE, key, "probe", {"key": key}, {"key": key})
        uow.audit("probe.written", "probe", key, {"key": key})
        return f"{key}:applied"

    return command


def keys_stored(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(inbox.c.message_id).where(inbox.c.source == SOURCE))
        return sorted(rows.scalars())


def audit_count(db: Database) -> int:
    with db.engine.connect() as conn:
        return len(conn.execute(select(audit_events.c.seq)).all())


def run_batch(group: GroupCommit, keys: list[str]) -> list[Any]:
    """Queue every command at once (one writer takes them as one batch); answers in order."""

    async def scenario() -> list[Any]:
        try:
            return await asyncio.gather(
                *(group.run(once(key), actor="t") for key in keys), return_exceptions=True
            )
        finally:
            await group.close()

    return asyncio.run(scenario())


def one_shot(db: Database, fault: Callable[[Connection], None]) -> list[int]:
    """Install `fault` as a before-commit hook that fires on the first commit only."""
    fired: list[int] = []

    def hook(conn: Connection) -> None:
        if not fired:
            fired.append(1)
            fault(conn)

    db.before_commit.append(hook)
    return fired


def kill_connection(conn: Connection) -> None:
    """The connection dies right before COMMIT goes out."""
    if conn.dialect.name == "postgresql":
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        dbname = conn.exec_driver_sql("SELECT current_database()").scalar_one()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            assert dbname  # the backend we killed belonged to the test database
    else:
        conn.connection.dbapi_connection.close()  # type: ignore[union-attr]


def lose_the_answer(conn: Connection) -> None:
    """COMMIT reaches the database and succeeds, but the answer never comes back."""
    real_commit = conn.commit

    def commit_then_fail() -> None:
        real_commit()
        raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))

    conn.commit = commit_then_fail  # type: ignore[method-assign]


KEYS = [f"k{n}" for n in range(6)]


def test_a_hook_failing_after_commit_changes_nothing(db: Database) -> None:
    calls: list[int] = []

    def broken_hook(destinations: frozenset[str] | None) -> None:
        calls.append(1)
        raise RuntimeError("the dispatcher could not be woken")

    db.after_outbox_commit.append(broken_hook)
    group = GroupCommit(db, writers=1)

    def enqueueing(key: str) -> Callable[[UnitOfWork], str]:
        def command(uow: UnitOfWork) -> str:
            uow.enqueue(OutboxMessage("oa", "probe", "probe", key, {}, f"idem-{key}"))
            return once(key)(uow)

        return command

    async def scenario() -> list[Any]:
        try:
            return await asyncio.gather(*(group.run(enqueueing(k), actor="t") for k in KEYS))
        finally:
            await group.close()

    answers = asyncio.run(scenario())

    assert answers == [f"{k}:applied" for k in KEYS]  # answered as committed
    assert keys_stored(db) == KEYS  # and committed once: the batch was not run again
    assert audit_count(db) == len(KEYS)
    assert calls == [1]  # one commit, one hook call
    assert group.figures()["batches"] == 1


def test_a_failure_before_commit_reruns_each_command_alone(db: Database) -> None:
    def refuse(_: Connection) -> None:
        raise OperationalError("COMMIT", {}, ConnectionError("lost before COMMIT was sent"))

    fired = one_shot(db, refuse)
    group = GroupCommit(db, writers=1)

    answers = run_batch(group, KEYS)

    assert fired == [1]
    assert answers == [f"{k}:applied" for k in KEYS]
    assert keys_stored(db) == KEYS
    assert audit_count(db) == len(KEYS)
    assert group.figures() == {
        "batches": len(KEYS),
        "commands": len(KEYS),
        "mean_batch": 1.0,
        "split_batches": 1,
        "conflict_reruns": 0,
        "unknown_outcomes": 0,
        "lock_order_reruns": 0,
    }


@pytest.mark.parametrize(
    "fault, applied_before_retry",
    [(kill_connection, False), (lose_the_answer, True)],
    ids=["connection-killed-during-commit", "answer-lost-after-commit"],
)
def test_an_unknown_commit_outcome_is_answered_as_unknown_and_the_retry_is_safe(
    db: Database, fault: Callable[[Connection], None], applied_before_retry: bool
) -> None:
    fired = one_shot(db, fault)
    group = GroupCommit(db, writers=1)

    answers = run_batch(group, KEYS)

    assert fired == [1]
    assert all(isinstance(a, CommitOutcomeUnknown) for a in answers), answers
    assert keys_stored(db) == (KEYS if applied_before_retry else [])  # never run a second time
    assert group.figures()["unknown_outcomes"] == len(KEYS)
    assert group.figures()["split_batches"] == 0

    retried = run_batch(GroupCommit(db, writers=1), KEYS)  # the senders retry

    outcome = "duplicate" if applied_before_retry else "applied"
    assert retried == [f"{k}:{outcome}" for k in KEYS]
    assert keys_stored(db) == KEYS
    assert audit_count(db) == len(KEYS)


def test_a_refused_command_keeps_its_own_error_when_the_commit_outcome_is_unknown(
    db: Database,
) -> None:
    def refused(uow: UnitOfWork) -> str:
        once("bad")(uow)
        raise Conflict("key", "refused")

    one_shot(db, lose_the_answer)
    group = GroupCommit(db, writers=1)

    async def scenario() -> list[Any]:
        try:
            return await asyncio.gather(
                group.run(once("good"), actor="t"),
                group.run(refused, actor="t"),
                return_exceptions=True,
            )
        finally:
            await group.close()

    good, bad = asyncio.run(scenario())

    assert isinstance(good, CommitOutcomeUnknown)
    assert isinstance(bad, Conflict)  # it was undone in its savepoint: that much is certain
    assert keys_stored(db) == ["good"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite has one writer
def test_a_deadlocked_command_is_run_again_alone(db: Database) -> None:
    """Two batches lock two rows in opposite orders; the database picks a victim, whose
    command is run again on its own and applied once."""
    db.perform(
        lambda uow: uow.conn.execute(
            voucher_sequences.insert(),
            [
                {"period": "2026-01", "word": "a", "last_number": 0},
                {"period": "2026-01", "word": "b", "last_number": 0},
            ],
        ),
        actor="t",
    )
    both_hold_one = threading.Barrier(2, timeout=20)
    runs: list[str] = []

    def bump(first: str, second: str) -> Callable[[UnitOfWork], str]:
        def command(uow: UnitOfWork) -> str:
            runs.append(first)
            for n, word in enumerate((first, second)):
                uow.conn.execute(
                    update(voucher_sequences)
                    .where(voucher_sequences.c.word == word)
                    .values(last_number=voucher_sequences.c.last_number + 1)
                )
                if n == 0 and runs.count(first) == 1:
                    both_hold_one.wait()
            return first

        return command

    group = GroupCommit(db, writers=2, max_batch=1)  # one command per transaction

    async def scenario() -> list[Any]:
        try:
            return await asyncio.gather(
                group.run(bump("a", "b"), actor="t"),
                group.run(bump("b", "a"), actor="t"),
                return_exceptions=True,
            )
        finally:
            await group.close()

    answers = asyncio.run(scenario())

    assert answers == ["a", "b"]
    assert sorted(runs) == ["a", "a", "b"] or sorted(runs) == ["a", "b", "b"]  # one re-run
    assert group.figures()["conflict_reruns"] == 1
    with db.engine.connect() as conn:
        numbers = conn.execute(select(voucher_sequences.c.last_number)).scalars().all()
    assert numbers == [2, 2]  # each command's two increments, applied exactly once


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_embedded_database_acknowledges_only_durable_commits(db_url: str) -> None:
    """synchronous=FULL: the WAL is synced at every commit (2); NORMAL (1) only on request."""
    durable = Database.connect(db_url)
    faster = Database.connect(db_url, sqlite_synchronous="normal")
    try:
        for database, expected in ((durable, 2), (faster, 1)):
            with database.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == expected
    finally:
        durable.dispose()
        faster.dispose()
    with pytest.raises(ValueError, match="sqlite_synchronous"):
        Database.connect(db_url, sqlite_synchronous="off")
