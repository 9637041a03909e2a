"""Group commit: commands from concurrent requests share one transaction.

Every accepted claim or decision has to be durable before its answer goes out, and a commit
is the costliest thing a small command does (on SQLite it also holds the only write lock).
So requests hand their command to a `GroupCommit`; a writer takes every command waiting at
that moment, runs each in a savepoint of one shared unit of work (`UnitOfWork.step`), commits
once and only then answers them all. A command that raises is undone alone and gets its own
error. A batch that committed is never run again; a batch that failed before its COMMIT is
re-run one command at a time; a COMMIT whose outcome is unknown is answered as such (see
`execute`), so one bad command never sinks the others and nothing is ever applied twice.

Batches form by themselves: while one batch runs, the next requests queue up. There is no
timer, so a lone request is committed at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from finoa.store.errors import CommitOutcomeUnknown, LocksOutOfOrder, is_retryable_conflict
from finoa.store.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

T = TypeVar("T")
CONFLICT_ATTEMPTS = 5  # runs of one command that keeps hitting deadlocks before giving up
Command = Callable[[UnitOfWork], T]


@dataclass(frozen=True)
class _Queued:
    command: Command[Any]
    actor: str
    answer: asyncio.Future[Any]


@dataclass(frozen=True)
class _Outcome:
    value: Any = None
    error: BaseException | None = None


class GroupCommit:
    """Runs commands in shared transactions; `await run(command, actor=...)` answers after
    the commit that made the command's writes durable."""

    def __init__(self, db: Database, *, max_batch: int = 64, writers: int | None = None) -> None:
        self.db = db
        self.max_batch = max_batch
        # SQLite has one writer anyway; other databases commit several batches at once.
        self.writers = writers or (1 if db.is_sqlite else 4)
        self._queue: asyncio.Queue[_Queued] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._thread: ThreadPoolExecutor | None = None
        self.batches = 0
        self.commands = 0
        self.split_batches = 0  # batches that failed before COMMIT: each command ran alone
        self.conflict_reruns = 0  # runs again of a command after a deadlock/serialization failure
        self.unknown_outcomes = 0  # commands answered CommitOutcomeUnknown
        self.lock_order_reruns = 0  # commands moved to the next transaction for the lock order

    async def run(self, command: Command[T], *, actor: str) -> T:
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [loop.create_task(self._writer()) for _ in range(self.writers)]
        answer: asyncio.Future[T] = loop.create_future()
        self._queue.put_nowait(_Queued(command, actor, answer))
        return await answer

    def _writer_thread(self) -> ThreadPoolExecutor:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="finoa-group-commit")
        return self._thread

    def figures(self) -> dict[str, float]:
        """Transactions committed, commands in them, the mean commands per commit, and how
        often commits went wrong: batches split after a failure before COMMIT, commands run
        again after a deadlock, commands whose commit outcome was unknown."""
        mean = self.commands / self.batches if self.batches else 0.0
        return {
            "batches": self.batches,
            "commands": self.commands,
            "mean_batch": round(mean, 2),
            "split_batches": self.split_batches,
            "conflict_reruns": self.conflict_reruns,
            "unknown_outcomes": self.unknown_outcomes,
            "lock_order_reruns": self.lock_order_reruns,
        }

    async def close(self) -> None:
        """Stop the writers once the queue is empty (after the server stopped taking work)."""
        if self._queue is not None:
            await self._queue.join()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)  # a cancellation of close() itself still propagates
        self._tasks, self._queue = [], None
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    async def _writer(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            await asyncio.sleep(0)  # one turn of the loop: requests already read join in
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                if self.db.is_sqlite:
                    # one writer thread: the batch's SQL and its commit (which syncs the WAL
                    # to disk) run outside the event loop, which keeps taking requests
                    outcomes = await asyncio.get_running_loop().run_in_executor(
                        self._writer_thread(), self.execute, batch
                    )
                else:
                    outcomes = await self.db.run(self.execute, batch)
            except Exception as exc:  # the writer must outlive any batch
                outcomes = [_Outcome(error=exc)] * len(batch)
            except BaseException:  # cancelled while shutting down
                for queued in batch:
                    queued.answer.cancel()
                    queue.task_done()
                raise
            for queued, outcome in zip(batch, outcomes, strict=True):
                if not queued.answer.done():
                    if outcome.error is not None:
                        queued.answer.set_exception(outcome.error)
                    else:
                        queued.answer.set_result(outcome.value)
                queue.task_done()

    def execute(self, batch: list[_Queued]) -> list[_Outcome]:
        """Run a batch in one transaction (blocking); one outcome per command, in order.

        The outcome of a commit is never guessed:
        - a batch that committed is never run again, whatever happens after its COMMIT;
        - when COMMIT itself failed, the commands that were in it are answered
          `CommitOutcomeUnknown` (503 to the caller, whose retry the inbox makes safe);
        - when the batch failed before COMMIT was sent, nothing of it is stored, and each
          command is run again in a transaction of its own;
        - a command that hit a deadlock or serialization failure is run again on its own, a
          bounded number of times;
        - a command that would have locked rows out of order (`UnitOfWork.take_in_order`) is
          run in the next transaction, with the others that did.
        """
        outcomes: list[_Outcome] = []
        committed = False
        try:
            with self.db.uow("system") as uow:
                outcomes = [self._step(uow, queued) for queued in batch]
                uow.commit()
                committed = True
        except CommitOutcomeUnknown as exc:
            log.error("the commit of %d commands has an unknown outcome: %s", len(batch), exc)
            self.unknown_outcomes += sum(1 for outcome in outcomes if outcome.error is None)
            return [
                outcome if outcome.error is not None else _Outcome(error=exc)
                for outcome in outcomes
            ]
        except Exception as exc:
            if committed:  # after COMMIT: the batch stands, only the clean-up failed
                log.exception("clean-up after a group commit failed; the commit stands")
            elif len(batch) == 1:
                return [self._alone(batch[0], first_error=exc)]
            else:
                self.split_batches += 1
                log.warning(
                    "a group commit of %d commands failed (%s); retrying each", len(batch), exc
                )
                return [self._alone(queued) for queued in batch]
        self.batches += 1
        self.commands += len(batch) - len(deferred := _out_of_order(batch, outcomes))
        if deferred:
            # they would have locked rows below ones this batch held: the next transaction
            # takes them (its first command never defers, so every round makes progress)
            self.lock_order_reruns += len(deferred)
            rerun = dict(zip(deferred, self.execute(list(deferred.values())), strict=True))
            outcomes = [rerun.get(i, outcome) for i, outcome in enumerate(outcomes)]
        return [
            self._alone(queued, first_error=outcome.error) if _conflicted(outcome) else outcome
            for queued, outcome in zip(batch, outcomes, strict=True)
        ]

    def _alone(self, queued: _Queued, *, first_error: BaseException | None = None) -> _Outcome:
        """One command in a transaction of its own, run again after deadlocks (bounded)."""
        error = first_error
        for attempt in range(CONFLICT_ATTEMPTS):
            if error is not None and not is_retryable_conflict(error):
                return _Outcome(error=error)
            if error is not None:
                self.conflict_reruns += 1
            if attempt:
                time.sleep(random.uniform(0, 0.005 * 2**attempt))  # let the other side finish
            committed = False
            try:
                with self.db.uow(queued.actor) as uow:
                    outcome = self._step(uow, queued)
                    if _conflicted(outcome):
                        error = outcome.error
                        continue
                    uow.commit()
                    committed = True
            except CommitOutcomeUnknown as exc:
                self.unknown_outcomes += 1
                return _Outcome(error=exc)
            except Exception as exc:
                if not committed:
                    error = exc
                    continue
                log.exception("clean-up after a commit failed; the commit stands")
            self.batches += 1
            self.commands += 1
            return outcome
        assert error is not None
        return _Outcome(error=error)

    @staticmethod
    def _step(uow: UnitOfWork, queued: _Queued) -> _Outcome:
        try:
            with uow.step(queued.actor):
                return _Outcome(value=queued.command(uow))
        except Exception as exc:
            return _Outcome(error=exc)


def _out_of_order(batch: list[_Queued], outcomes: list[_Outcome]) -> dict[int, _Queued]:
    """The commands of a batch (by position) that stepped back for the lock order."""
    return {
        i: queued
        for i, (queued, outcome) in enumerate(zip(batch, outcomes, strict=True))
        if isinstance(outcome.error, LocksOutOfOrder)
    }


def _conflicted(outcome: _Outcome) -> bool:
    return outcome.error is not None and is_retryable_conflict(outcome.error)
