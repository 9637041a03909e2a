"""Settlements that come due while one is being written are written together next: one
transaction for many chunks, each caller told when (and whether) its own were settled."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from finoa.messaging.dispatcher import SettleTogether


class Writer:
    """Stands in for the database: records each settlement, holds the first until released,
    and fails the ones it is told to."""

    def __init__(self) -> None:
        self.written: list[list[Any]] = []
        self.release = asyncio.Event()
        self.fail_with: str | None = None

    async def __call__(self, outcomes: Sequence[Any]) -> None:
        self.written.append(list(outcomes))
        if len(self.written) == 1:
            await self.release.wait()
        if self.fail_with is not None:
            raise RuntimeError(self.fail_with)


def test_chunks_that_come_back_during_a_settlement_share_the_next_one() -> None:
    async def scenario() -> Writer:
        writer = Writer()
        together = SettleTogether(writer)
        first = asyncio.ensure_future(together.settle(["a"]))
        while not writer.written:  # the first settlement is being written
            await asyncio.sleep(0)
        later = [asyncio.ensure_future(together.settle([name])) for name in ("b", "c", "d")]
        await asyncio.sleep(0)
        assert not first.done() and not any(task.done() for task in later)
        writer.release.set()
        await asyncio.gather(first, *later)
        await together.settle(["e"])  # nothing running: written at once, on its own
        return writer

    writer = asyncio.run(scenario())
    assert writer.written == [["a"], ["b", "c", "d"], ["e"]]


def test_a_failed_settlement_fails_each_of_its_callers_and_the_next_one_is_written() -> None:
    async def scenario() -> Writer:
        writer = Writer()
        together = SettleTogether(writer)
        first = asyncio.ensure_future(together.settle(["a"]))
        while not writer.written:
            await asyncio.sleep(0)
        later = [asyncio.ensure_future(together.settle([name])) for name in ("b", "c")]
        writer.fail_with = "database went away"
        writer.release.set()
        for task in (first, *later):
            with pytest.raises(RuntimeError, match="database went away"):
                await task
        writer.fail_with = None
        await together.settle(["d"])
        return writer

    writer = asyncio.run(scenario())
    assert writer.written == [["a"], ["b", "c"], ["d"]]
