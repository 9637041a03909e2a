"""One call for the work of every caller that arrived while the last call ran.

A peer or a database that takes one batch at a time does better with fewer, bigger batches
than with the ragged chunks its callers happen to bring: the dispatcher's settlements share a
transaction this way, and moves waiting for Tryton share one create and one post. Calls run
one at a time, in arrival order; each caller gets its own items' results back, or what the
call it was part of raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class CallTogether(Generic[Item, Result]):
    """`await together.run(items)` joins the items of callers waiting while a call runs into
    the next call, up to `max_items` per call (a caller's items are never split; one caller
    with more than `max_items` gets a call of its own). `call` answers one result per item,
    in order."""

    def __init__(
        self,
        call: Callable[[list[Item]], Awaitable[Sequence[Result]]],
        *,
        max_items: int | None = None,
    ) -> None:
        self._call = call
        self.max_items = max_items
        self._waiting: list[tuple[Sequence[Item], asyncio.Future[list[Result]]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.calls = 0  # how many calls were made, for figures and tests

    async def run(self, items: Sequence[Item]) -> list[Result]:
        """The results of `items`, once the call they joined has answered."""
        future: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, future))
        if self._runner is None or self._runner.done():
            # its own task: a caller that stops waiting does not stop the others' call
            self._runner = asyncio.ensure_future(self._run())
        return await future

    def _next_group(self) -> list[tuple[Sequence[Item], asyncio.Future[list[Result]]]]:
        group: list[tuple[Sequence[Item], asyncio.Future[list[Result]]]] = []
        size = 0
        while self._waiting:
            items = self._waiting[0][0]
            if group and self.max_items is not None and size + len(items) > self.max_items:
                break
            group.append(self._waiting.pop(0))
            size += len(items)
        return group

    async def _run(self) -> None:
        while self._waiting:
            group = self._next_group()
            self.calls += 1
            try:
                results = list(await self._call([item for items, _ in group for item in items]))
                if len(results) != sum(len(items) for items, _ in group):
                    raise RuntimeError("a call together answered a different number of results")
            except Exception as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for items, future in group:
                if not future.done():
                    future.set_result(results[start : start + len(items)])
                start += len(items)
