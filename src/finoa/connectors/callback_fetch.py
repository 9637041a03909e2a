"""Asking the OA about the approval a callback names, while the callback waits for its answer.

An OA's callback often says only that something changed; the hub asks the OA's API for the
rest before it answers. When that call meets the OA's rate limit the hub waits the limit out
(`retry_after`, for at most `RATE_WAIT` seconds in all, well inside every vendor's reply
timeout) instead of failing the callback at once: an OA that retries a failed callback only a
few times, quickly, would otherwise give up on a decision while its own limit lasts. Anything
else that keeps the answer from the hub is a 503 naming the field, and the OA sends the
callback again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from finoa.connectors.base import InboundRefused
from finoa.messaging.retry import DeliveryError, ErrorClass

RATE_WAIT = 3.0  # seconds a callback waits out the OA's rate limit in all
DEFAULT_PAUSE = 1.0  # when the OA does not say how long

T = TypeVar("T")


async def fetch_for_callback(call: Callable[[], Awaitable[T]], *, vendor: str, field: str) -> T:
    """`call()`'s answer; a rate limit is waited out, any other failure is a 503 (`vendor`
    unreachable, naming `field`) for the OA to send the callback again."""
    waited = 0.0
    while True:
        try:
            return await call()
        except DeliveryError as exc:
            pause = exc.retry_after or DEFAULT_PAUSE
            if exc.error_class is not ErrorClass.RATE_LIMITED or waited + pause > RATE_WAIT:
                raise InboundRefused(
                    503,
                    f"{vendor} unreachable",
                    f"{field}: {exc.reason}",
                    kind="upstream",
                    field=field,
                ) from None
        await asyncio.sleep(pause)
        waited += pause
