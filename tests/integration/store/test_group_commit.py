"""Group commit on both databases: `UnitOfWork.step` undoes one command alone (its rows, audit
events and outbox messages) and `GroupCommit` answers every command after the commit that made
it durable, retrying each alone when a shared commit fails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from finoa.domain.errors import Conflict
from finoa.messaging.inbox import record
from finoa.security.audit import verify_chain
from finoa.store.group_commit import GroupCommit
from finoa.store.tables import audit_events, inbox, outbox
from finoa.store.uow import Database, OutboxMessage, UnitOfWork

SOURCE = "probe"


CLOSE_TIMEOUT = 10  # seconds: a writer that never stops fails the test instead of hanging it


async def close(group: GroupCommit) -> None:
    closing = asyncio.ensure_future(group.close())
    done, _ = await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT)
    assert done, "close() did not return"
    closing.result()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.connect(db_url)
    yield database
    database.dispose()


def message(key: str, idempotency_key: str | None = None) -> OutboxMessage:
    return OutboxMessage(
        destination="oa",
        action="probe.notify",
        aggregate_type="probe",
        aggregate_id=key,
        payload={"key": key},
        idempotency_key=idempotency_key or f"idem-{key}",
    )


def write(uow: UnitOfWork, key: str, *, idempotency_key: str | None = None) -> None:
    """A command's three kinds of writes: a row, an audit event and an outbox message."""
    record(uow, SOURCE, key, "probe", {"key": key}, {"key": key})
    uow.audit("probe.written", "probe", key, {"key": key})
    uow.enqueue(message(key, idempotency_key))


def writes(key: str) -> Callable[[UnitOfWork], tuple[str, str]]:
    """A command that writes under `key` and answers with the key and the actor it ran as."""

    def command(uow: UnitOfWork) -> tuple[str, str]:
        write(uow, key)
        return key, uow.actor

    return command


def refused(key: str) -> Callable[[UnitOfWork], Any]:
    """A command that writes, then breaks a business rule."""

    def command(uow: UnitOfWork) -> Any:
        write(uow, key)
        raise Conflict("key", f"{key} refused")

    return command


@dataclass(frozen=True)
class Stored:
    rows: list[str]  # inbox message ids
    audit: list[tuple[str, str]]  # (object_id, actor), in seq order
    outbox: list[str]  # idempotency keys, in id order
    chain_checked: int


def stored(db: Database) -> Stored:
    """What is committed; the audit chain must verify."""
    with db.engine.connect() as conn:
        rows = conn.execute(select(inbox.c.message_id).where(inbox.c.source == SOURCE))
        events = [
            dict(r._mapping)
            for r in conn.execute(select(audit_events).order_by(audit_events.c.seq))
        ]
        keys = conn.execute(select(outbox.c.idempotency_key).order_by(outbox.c.id))
        result = Stored(
            rows=sorted(rows.scalars()),
            audit=[(e["object_id"], e["actor"]) for e in events],
            outbox=list(keys.scalars()),
            chain_checked=0,
        )
    report = verify_chain(events)
    assert report.ok, report
    return Stored(result.rows, result.audit, result.outbox, report.checked)


# --- UnitOfWork.step ------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["domain", "database"])
def test_a_failing_step_is_undone_alone(db: Database, failure: str) -> None:
    expected: type[Exception] = Conflict if failure == "domain" else IntegrityError
    with db.uow("system") as uow:
        with uow.step("alice"):
            write(uow, "a")
        with pytest.raises(expected), uow.step("bob"):
            write(uow, "b")
            if failure == "domain":
                raise Conflict(None, "no")
            # a statement the database refuses: on PostgreSQL it aborts the transaction
            # unless the savepoint is rolled back
            record(uow, SOURCE, "a", "probe", {}, {})
        assert uow.actor == "system"
        with uow.step("carol"):
            write(uow, "c")
        uow.audit("batch.done", "batch", "batch-1", {})
        uow.commit()

    assert stored(db) == Stored(
        rows=["a", "c"],
        audit=[("a", "alice"), ("c", "carol"), ("batch-1", "system")],
        outbox=["idem-a", "idem-c"],
        chain_checked=3,
    )


def test_an_explicit_actor_overrides_the_step_actor(db: Database) -> None:
    with db.uow("system") as uow:
        with uow.step("alice"):
            uow.audit("probe.seen", "probe", "x", {}, actor="scheduler")
            uow.audit("probe.seen", "probe", "y", {})
        uow.commit()
    assert stored(db).audit == [("x", "scheduler"), ("y", "alice")]


def test_nested_steps(db: Database) -> None:
    with db.uow("system") as uow:
        with uow.step("outer"):
            write(uow, "o1")
            with pytest.raises(Conflict), uow.step("inner-bad"):
                write(uow, "i1")
                raise Conflict(None, "inner")
            assert uow.actor == "outer"
            with uow.step("inner-ok"):
                write(uow, "i2")
            assert uow.actor == "outer"
            write(uow, "o2")
        # an outer step that fails undoes its inner steps too, even those that succeeded
        with pytest.raises(Conflict), uow.step("outer-bad"):
            write(uow, "o3")
            with uow.step("inner-done"):
                write(uow, "i3")
            raise Conflict(None, "outer")
        assert uow.actor == "system"
        uow.commit()

    assert stored(db) == Stored(
        rows=["i2", "o1", "o2"],
        audit=[("o1", "outer"), ("i2", "inner-ok"), ("o2", "outer")],
        outbox=["idem-o1", "idem-i2", "idem-o2"],
        chain_checked=3,
    )


def test_a_failed_step_does_not_wake_the_dispatcher(db: Database) -> None:
    woken: list[int] = []
    db.after_outbox_commit.append(lambda destinations: woken.append(1))

    with db.uow("system") as uow:
        with pytest.raises(Conflict), uow.step("alice"):
            uow.enqueue(message("a"))
            raise Conflict(None, "no")
        with pytest.raises(Conflict), uow.step("bob"):
            uow.mark_outbox_changed()
            raise Conflict(None, "no")
        with uow.step("carol"):
            record(uow, SOURCE, "c", "probe", {}, {})
        uow.commit()
    assert woken == []
    assert stored(db).outbox == []

    with db.uow("system") as uow:
        with uow.step("dave"):
            uow.mark_outbox_changed()
        uow.commit()
    assert woken == [1]


def test_steps_continue_the_existing_audit_chain(db: Database) -> None:
    db.perform(lambda uow: write(uow, "first"), actor="alice")
    with db.uow("system") as uow:
        with pytest.raises(Conflict), uow.step("bob"):
            write(uow, "gone")
            raise Conflict(None, "no")
        with uow.step("carol"):
            write(uow, "second")
        uow.commit()
    db.perform(lambda uow: write(uow, "third"), actor="dave")

    after = stored(db)
    assert after.audit == [("first", "alice"), ("second", "carol"), ("third", "dave")]
    assert after.chain_checked == 3


# --- GroupCommit ----------------------------------------------------------------------------


def run_all(
    group: GroupCommit, commands: list[tuple[Callable[[UnitOfWork], Any], str]]
) -> list[Any]:
    """Submit all commands at once; each one's answer or exception, in order."""

    async def scenario() -> list[Any]:
        try:
            return await asyncio.gather(
                *(group.run(command, actor=actor) for command, actor in commands),
                return_exceptions=True,
            )
        finally:
            await close(group)

    return asyncio.run(scenario())


def test_concurrent_commands_share_commits(db: Database) -> None:
    group = GroupCommit(db)
    keys = [f"k{n:02}" for n in range(50)]

    answers = run_all(group, [(writes(key), f"user-{key}") for key in keys])

    assert answers == [(key, f"user-{key}") for key in keys]
    after = stored(db)
    assert after.rows == keys
    assert sorted(after.audit) == [(key, f"user-{key}") for key in keys]
    assert sorted(after.outbox) == [f"idem-{key}" for key in keys]
    assert after.chain_checked == 50
    figures = group.figures()
    assert figures["commands"] == 50
    if db.is_sqlite:  # one writer takes everything queued
        assert figures["batches"] < 50
        assert figures["mean_batch"] > 1
    else:
        assert 1 <= figures["batches"] <= 50


def counts(group: GroupCommit) -> dict[str, float]:
    """What the group commit committed: batches, commands and the mean batch."""
    figures = group.figures()
    return {k: figures[k] for k in ("batches", "commands", "mean_batch")}


def troubles(group: GroupCommit) -> dict[str, float]:
    """How often its commits went wrong."""
    figures = group.figures()
    return {k: figures[k] for k in ("split_batches", "conflict_reruns", "unknown_outcomes")}


def test_a_lone_command_and_the_batch_limit(db: Database) -> None:
    group = GroupCommit(db, max_batch=4, writers=1)
    assert run_all(group, [(writes("alone"), "alice")]) == [("alone", "alice")]
    assert counts(group) == {"batches": 1, "commands": 1, "mean_batch": 1.0}

    keys = [f"k{n}" for n in range(10)]
    answers = run_all(group, [(writes(key), "bob") for key in keys])

    assert answers == [(key, "bob") for key in keys]
    assert stored(db).rows == sorted(["alone", *keys])
    assert counts(group) == {"batches": 1 + 3, "commands": 11, "mean_batch": 2.75}  # 4+4+2
    assert troubles(group) == {"split_batches": 0, "conflict_reruns": 0, "unknown_outcomes": 0}


def test_a_refused_command_gets_its_error_and_the_others_commit(db: Database) -> None:
    group = GroupCommit(db, writers=1)  # one writer takes all eleven into one batch
    keys = [f"k{n}" for n in range(10)]
    commands: list[tuple[Callable[[UnitOfWork], Any], str]] = [
        (writes(key), f"user-{key}") for key in keys
    ]
    commands.insert(4, (refused("bad"), "mallory"))

    answers = run_all(group, commands)

    error = answers.pop(4)
    assert isinstance(error, Conflict)
    assert (error.field, error.message) == ("key", "bad refused")
    assert answers == [(key, f"user-{key}") for key in keys]
    after = stored(db)
    assert after.rows == keys
    assert sorted(after.audit) == [(key, f"user-{key}") for key in keys]
    assert sorted(after.outbox) == [f"idem-{key}" for key in keys]
    assert after.chain_checked == 10
    assert counts(group) == {"batches": 1, "commands": 11, "mean_batch": 11.0}
    assert troubles(group)["split_batches"] == 0  # a refused command is no failed commit


def test_a_failed_shared_commit_retries_each_command_alone(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    db.perform(lambda uow: uow.enqueue(message("earlier", "taken")), actor="system")
    runs: dict[str, int] = {}

    def counted(key: str, idempotency_key: str | None = None) -> Callable[[UnitOfWork], str]:
        def command(uow: UnitOfWork) -> str:
            runs[key] = runs.get(key, 0) + 1
            write(uow, key, idempotency_key=idempotency_key)
            return key

        return command

    keys = [f"k{n}" for n in range(8)]
    commands: list[tuple[Callable[[UnitOfWork], Any], str]] = [
        (counted(key), f"user-{key}") for key in keys
    ]
    # its outbox row is only written at commit, where the unique key makes the commit fail
    commands.insert(3, (counted("dup", idempotency_key="taken"), "mallory"))
    commands.insert(6, (refused("bad"), "eve"))
    group = GroupCommit(db, writers=1)  # one writer takes all ten into one batch

    with caplog.at_level(logging.WARNING, logger="finoa.store.group_commit"):
        answers = run_all(group, commands)

    assert isinstance(answers.pop(6), Conflict)
    assert isinstance(answers.pop(3), IntegrityError)
    assert answers == keys
    after = stored(db)
    assert after.rows == keys  # neither "dup" nor "bad"
    assert sorted(after.audit) == [(key, f"user-{key}") for key in keys]
    assert after.outbox[0] == "taken"
    assert sorted(after.outbox[1:]) == [f"idem-{key}" for key in keys]
    assert after.chain_checked == 8
    # the shared batch failed, then every command ran alone: the good ones committed alone
    assert "a group commit of 10 commands failed" in caplog.text
    assert runs == {"dup": 2, **{key: 2 for key in keys}}
    assert counts(group) == {"batches": 9, "commands": 9, "mean_batch": 1.0}
    assert troubles(group) == {"split_batches": 1, "conflict_reruns": 0, "unknown_outcomes": 0}


def test_close_stops_the_writers_after_the_queued_work(db: Database) -> None:
    group = GroupCommit(db)
    keys = [f"k{n}" for n in range(10)]

    async def scenario() -> list[Any]:
        await close(group)  # nothing started yet: nothing to stop
        me = asyncio.current_task()
        callers = [asyncio.create_task(group.run(writes(key), actor="alice")) for key in keys]
        await asyncio.sleep(0)  # one turn: every caller has queued its command
        assert stored(db).rows == []
        assert len(asyncio.all_tasks() - {me} - set(callers)) == group.writers

        await close(group)

        # everything queued was committed and answered; no writer is left running
        assert stored(db).rows == keys
        assert asyncio.all_tasks() - {me} - set(callers) == set()
        answers = await asyncio.gather(*callers)

        # a closed group starts afresh on the next command
        answers.append(await group.run(writes("again"), actor="bob"))
        await close(group)
        assert asyncio.all_tasks() == {me}
        return answers

    answers = asyncio.run(scenario())

    assert answers == [*((key, "alice") for key in keys), ("again", "bob")]
    assert stored(db).rows == sorted([*keys, "again"])
