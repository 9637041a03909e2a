"""What this process created at an OA, for the callbacks that come back about it.

An OA answers the call that creates an approval (DingTalk's `processInstances`, WeCom's
`applyevent`) with the approval's id, and its callbacks about that approval name only the
id. The hub keeps the id against the claim once the answer is settled in the outbox, but
the OA's first callbacks often come sooner — the submission's callback is often sent before
the creating call is even answered. Without the id the callback handler would have to ask
the OA what the approval is (one more call against the app's quota) before it could answer.
So the outbound side notes each id it is given here, and the inbound side of the same
instance looks it up first; while a creation is still waiting for its answer, a callback
about an id not known yet waits for it (briefly). The memory is per process and bounded; a
callback that finds nothing here is handled as before (the database, then the OA).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Iterator

MAX_REMEMBERED = 100_000  # ids remembered per kind and instance, per process
ANSWER_WAIT = 1.0  # seconds a callback waits for a creation in flight to be answered


class Created:
    """The OA's id -> finoa's id (claim or task) of what this process created, for one kind
    of document at one OA app, and how many creations are waiting for their answers."""

    def __init__(self) -> None:
        self.ids: OrderedDict[str, str] = OrderedDict()
        self.in_flight = 0
        self._waiters: list[asyncio.Future[None]] = []

    def get(self, oa_id: str) -> str | None:
        return self.ids.get(oa_id)

    def pop(self, oa_id: str) -> str | None:
        return self.ids.pop(oa_id, None)

    @contextlib.contextmanager
    def creating(self) -> Iterator[None]:
        """Around the call that creates one: callbacks meanwhile wait for its answer."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._wake()

    def remember(self, oa_id: str, finoa_id: str) -> None:
        self.ids[oa_id] = finoa_id
        self.ids.move_to_end(oa_id)
        while len(self.ids) > MAX_REMEMBERED:
            self.ids.popitem(last=False)
        self._wake()

    async def lookup(self, oa_id: str, wait: float = ANSWER_WAIT) -> str | None:
        """finoa's id for `oa_id`; while creations are in flight and it is not known, wait
        up to `wait` seconds for their answers."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while oa_id not in self.ids and self.in_flight and (left := deadline - loop.time()) > 0:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, left)
        return self.ids.get(oa_id)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.get_loop().call_soon_threadsafe(_release, waiter)


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_MEMORIES: dict[tuple[str, ...], Created] = {}


def created_here(*key: str) -> Created:
    """What this process created for one kind of document at one OA app (`key`: the kind
    and what names the app)."""
    memory = _MEMORIES.get(key)
    if memory is None:
        memory = _MEMORIES[key] = Created()
    return memory
