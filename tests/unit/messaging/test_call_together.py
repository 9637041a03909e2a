"""Callers that arrive while a call runs share the next call, up to its size; each gets its own
items' results back, in order, or what the shared call raised."""

from __future__ import annotations

import asyncio

import pytest

from finoa.messaging.together import CallTogether


class Peer:
    """Answers each item doubled; holds the first call until released; can fail a call."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_with: str | None = None
        self.short = False
        self.entered = asyncio.Event()  # set when the first call is with the peer

    async def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        self.entered.set()
        if len(self.calls) == 1:
            await self.release.wait()
        if self.fail_with is not None:
            raise RuntimeError(self.fail_with)
        return [2 * i for i in items][: -1 if self.short else None]


async def _first_call_running(
    together: CallTogether[int, int], peer: Peer
) -> asyncio.Future[list[int]]:
    first = asyncio.ensure_future(together.run([1]))
    await asyncio.wait_for(peer.entered.wait(), 5)
    return first


def test_waiting_callers_join_up_to_the_size_and_each_gets_its_own_results() -> None:
    async def scenario() -> tuple[Peer, list[list[int]], int]:
        peer = Peer()
        together = CallTogether(peer, max_items=5)
        first = await _first_call_running(together, peer)
        waiting = [
            asyncio.ensure_future(together.run(items))
            for items in ([10, 11], [20, 21, 22], [30], [40, 41, 42, 43, 44, 45, 46])
        ]
        await asyncio.sleep(0)
        assert not any(task.done() for task in waiting)
        peer.release.set()
        answers = [await first, *await asyncio.gather(*waiting)]
        return peer, answers, together.calls

    peer, answers, calls = asyncio.run(scenario())
    # [10, 11] + [20, 21, 22] fill 5; [30] starts the next; a caller is never split, and
    # one bigger than the size gets a call of its own
    assert peer.calls == [[1], [10, 11, 20, 21, 22], [30], [40, 41, 42, 43, 44, 45, 46]]
    assert answers == [[2], [20, 22], [40, 42, 44], [60], [80, 82, 84, 86, 88, 90, 92]]
    assert calls == 4


def test_a_failed_call_fails_each_of_its_callers_and_the_next_call_runs() -> None:
    async def scenario() -> Peer:
        peer = Peer()
        together = CallTogether(peer)
        first = await _first_call_running(together, peer)
        later = [asyncio.ensure_future(together.run([n])) for n in (2, 3)]
        peer.fail_with = "Tryton went away"
        peer.release.set()
        for task in (first, *later):
            with pytest.raises(RuntimeError, match="Tryton went away"):
                await task
        peer.fail_with = None
        assert await together.run([4]) == [8]
        return peer

    assert asyncio.run(scenario()).calls == [[1], [2, 3], [4]]


def test_a_call_that_answers_too_few_results_is_an_error_not_a_shifted_answer() -> None:
    async def scenario() -> None:
        peer = Peer()
        peer.release.set()
        peer.short = True
        together = CallTogether(peer)
        with pytest.raises(RuntimeError, match="different number of results"):
            await together.run([1, 2])

    asyncio.run(scenario())
