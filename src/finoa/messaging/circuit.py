"""A circuit breaker per outbound endpoint (F5).

While an ERP or OA is down, sending every due message to it would be a storm of requests that
all fail. After `threshold` failed sends in a row the breaker *opens*: nothing is sent to that
endpoint, and its messages wait until the breaker lets a probe through (*half-open*) after a
cooldown that doubles with each failed probe, up to `max_cooldown_seconds`. One successful
send closes it again. An outage of any length so costs a handful of probes, and the messages
behind it go out as soon as the endpoint answers.

A send counts as failed when every message in it failed with a retryable class (the endpoint
is unreachable, overloaded or erroring); a peer that refuses one item for a business reason is
working fine, and so is one that refuses for frequency (rate limited: it answered, and asked
for fewer calls) or refuses an access token (refreshed and sent again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"  # sending normally
    OPEN = "open"  # sending nothing until `reopen_at`
    HALF_OPEN = "half_open"  # one probe is on its way


@dataclass
class CircuitBreaker:
    threshold: int = 5
    base_cooldown_seconds: float = 1.0
    max_cooldown_seconds: float = 60.0
    clock: Callable[[], float] = time.time
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0  # failed sends in a row
    opened: int = 0  # times opened in a row (the cooldown doubles each time)
    reopen_at: float = 0.0
    probes: int = field(default=0)  # sends let through while half-open, in all

    def allow(self) -> bool:
        """May a send go to this endpoint now? While half-open, only one send at a time."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN and self.clock() >= self.reopen_at:
            self.state = CircuitState.HALF_OPEN
            self.probes += 1
            return True
        return False

    def record(self, ok: bool) -> None:
        """The outcome of a send that `allow` let through."""
        if ok:
            self.state, self.failures, self.opened = CircuitState.CLOSED, 0, 0
            return
        self.failures += 1
        if self.state is CircuitState.HALF_OPEN or self.failures >= self.threshold:
            cooldown = min(self.max_cooldown_seconds, self.base_cooldown_seconds * 2**self.opened)
            self.opened += 1
            self.state = CircuitState.OPEN
            self.reopen_at = self.clock() + cooldown

    def wait_seconds(self) -> float:
        """How long until the next probe may go (0 when sending is allowed)."""
        if self.state is CircuitState.CLOSED:
            return 0.0
        return max(0.0, self.reopen_at - self.clock())

    def snapshot(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "failures_in_a_row": self.failures,
            "probes": self.probes,
            "next_probe_in_seconds": round(self.wait_seconds(), 3),
        }
