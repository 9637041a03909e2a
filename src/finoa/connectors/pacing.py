"""Pacing calls to a vendor's API under its per-app rate limit, and not spending it twice.

An OA's open API refuses calls beyond a quota per app (DingTalk's QPS limit, WeCom's 45009,
Feishu's 99991400). A client that sends as fast as the dispatcher hands it messages meets
the quota in bursts and has every refused call retried later; a client that spaces its calls
at the quota (`rate_limit_per_second` of the instance) is never refused and sends the same
number of calls a second.

A `rate_limit_per_second` set above the app's real quota is learnt from: each refusal holds the
app's next call back until the vendor's Retry-After and widens the slots, and the calls that go
through narrow them back towards the configured rate, so the client settles near the quota
instead of being refused at every burst.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from finoa.messaging.retry import DeliveryError, ErrorClass

R = TypeVar("R")
T = TypeVar("T")
V = TypeVar("V")
PACING_MARGIN = 1.05  # slots a little wider than 1/rate: network jitter bunches calls up
SLOWDOWN = 1.5  # a refusal widens the slots by this much
RECOVERY = 0.97  # a call that goes through narrows them by this much, down to 1/rate
MAX_INTERVAL = 10.0  # the widest slot a refusal leads to, in seconds
REFUSAL_PAUSE = 1.0  # how long a refusal without a Retry-After holds the calls back


class Pacer:
    """At most `rate` calls a second from this client: each call waits for its slot. (Its
    slot is taken before anything is awaited, so callers on one event loop never take the
    same one, and the pacer may serve any loop.) A vendor's refusal for frequency slows it
    down (`refused`); the calls that go through bring it back up (`answered`)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.configured_interval = PACING_MARGIN / rate
        self.interval = self.configured_interval
        self._clock = clock
        self._next = 0.0
        self._paused_until = 0.0
        self.refusals = 0  # refusals for frequency seen (diagnostics)

    @property
    def rate(self) -> float:
        """Calls a second the pacer lets through now."""
        return PACING_MARGIN / self.interval

    def refused(self, retry_after: float | None = None) -> None:
        """The vendor refused a call for frequency: no call goes before its Retry-After, and
        the slots widen, once per refusal pause (the calls already in flight when the quota
        ran out are refused too, and say nothing more)."""
        now = self._clock()
        self.refusals += 1
        if now >= self._paused_until:
            self.interval = min(MAX_INTERVAL, self.interval * SLOWDOWN)
        pause = REFUSAL_PAUSE if retry_after is None else max(0.0, retry_after)
        self._paused_until = max(self._paused_until, now + pause)
        self._next = max(self._next, self._paused_until)

    def heard(self, error: DeliveryError) -> DeliveryError:
        """`error`, after slowing down when it is a refusal for frequency."""
        if error.error_class is ErrorClass.RATE_LIMITED:
            self.refused(error.retry_after)
        return error

    def answered(self) -> None:
        """A call went through: the slots narrow a little, back to the configured rate."""
        if self.interval > self.configured_interval:
            self.interval = max(self.configured_interval, self.interval * RECOVERY)

    async def slot(self) -> None:
        now = self._clock()
        wait = self._next - now
        self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)


_SHARED: dict[tuple[Any, ...], Pacer] = {}


def app_pacer(rate: float, *app: str) -> Pacer:
    """The one pacer of an OA app in this process: the connector's calls and its callback
    handler's share the app's quota."""
    key = (*app, rate)
    pacer = _SHARED.get(key)
    if pacer is None:
        pacer = _SHARED[key] = Pacer(rate)
    return pacer


def rate_limit_setting(config: Mapping[str, Any], default: float) -> float:
    """An instance's `rate_limit_per_second` (calls a second at most), checked: ValueError
    `rate_limit_per_second: reason`."""
    rate = config.get("rate_limit_per_second", default)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        raise ValueError("rate_limit_per_second: must be a positive number")
    return float(rate)


def rate_limit_schema(default: float, vendor: str) -> dict[str, Any]:
    """The config schema's `rate_limit_per_second` property."""
    return {
        "type": "number",
        "exclusiveMinimum": 0,
        "default": default,
        "description": f"How many calls a second the client makes to {vendor} at most: the "
        "app's quota",
    }


class ReadOnce(Generic[V]):
    """Values read from the vendor once per client and kept (a template's controls, a
    user's unionId): callers that ask while one is being read share that one call, so a
    burst of first messages costs one call of the app's quota, not one each. A failed read
    is not kept; the next caller reads again."""

    def __init__(self, read: Callable[[str], Awaitable[V]]) -> None:
        self._read = read
        self.values: dict[str, V] = {}
        self._reading: dict[str, asyncio.Future[V]] = {}

    async def get(self, key: str) -> V:
        if key in self.values:
            return self.values[key]
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = asyncio.ensure_future(self._keep(key))
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        return await asyncio.shield(reading)

    async def _keep(self, key: str) -> V:
        value = await self._read(key)
        self.values[key] = value
        return value


CALLS_AT_ONCE = 4  # a chunk's calls in flight at once (16 chunks: the HTTP pool's 64)


async def each_call(
    items: Sequence[T], call: Callable[[T], Awaitable[R]], at_once: int = CALLS_AT_ONCE
) -> list[R]:
    """`call(item)` for every item, `at_once` of them at a time; the results in order. For
    a vendor without batch calls: a chunk goes out about as fast as one batch call would,
    without more requests waiting on the HTTP client's pool than it has connections."""
    gate = asyncio.Semaphore(at_once)

    async def one(item: T) -> R:
        async with gate:
            return await call(item)

    return list(await asyncio.gather(*(one(item) for item in items)))
