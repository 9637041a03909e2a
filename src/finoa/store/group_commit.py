"""Group commit: commands from concurrent requests share one transaction.

Every accepted claim or decision has to be durable before its answer goes out, and a commit
is the costliest thing a small command does (on SQLite it also holds the only write lock).
So requests hand their command to a `GroupCommit`; a writer takes every command waiting at
that moment, runs each in a savepoint of one shared unit of work (`UnitOfWork.step`), commits
once and only then answers them all. A command that raises is undone alone and gets its own
error; if the shared commit itself fails, each command is retried in a transaction of its
own, so one bad command never sinks the others and nothing acknowledged is lost.

Batches form by themselves: while one batch runs, the next requests queue up. There is no
timer, so a lone request is committed at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from finoa.store.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

T = TypeVar("T")
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
        self.batches = 0
        self.commands = 0

    async def run(self, command: Command[T], *, actor: str) -> T:
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [loop.create_task(self._writer()) for _ in range(self.writers)]
        answer: asyncio.Future[T] = loop.create_future()
        self._queue.put_nowait(_Queued(command, actor, answer))
        return await answer

    def figures(self) -> dict[str, float]:
        """Transactions committed, commands in them, and the mean commands per commit."""
        mean = self.commands / self.batches if self.batches else 0.0
        return {"batches": self.batches, "commands": self.commands, "mean_batch": round(mean, 2)}

    async def close(self) -> None:
        """Stop the writers once the queue is empty (after the server stopped taking work)."""
        if self._queue is not None:
            await self._queue.join()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)  # a cancellation of close() itself still propagates
        self._tasks, self._queue = [], None

    async def _writer(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            await asyncio.sleep(0)  # one turn of the loop: requests already read join in
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
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
        """Run a batch in one transaction (blocking); one outcome per command, in order."""
        try:
            with self.db.uow("system") as uow:
                outcomes = [self._step(uow, queued) for queued in batch]
                uow.commit()
        except Exception as exc:
            if len(batch) == 1:
                return [_Outcome(error=exc)]
            log.warning("a group commit of %d commands failed (%s); retrying each", len(batch), exc)
            return [self.execute([queued])[0] for queued in batch]
        self.batches += 1
        self.commands += len(batch)
        return outcomes

    @staticmethod
    def _step(uow: UnitOfWork, queued: _Queued) -> _Outcome:
        try:
            with uow.step(queued.actor):
                return _Outcome(value=queued.command(uow))
        except Exception as exc:
            return _Outcome(error=exc)
