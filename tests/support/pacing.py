"""A vendor simulator with a small quota, and a connector paced at it: nothing is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from finoa.connectors.base import OutboundMessage


async def check_paced_at_quota(
    start_sim: Callable[..., Any],
    connector: Callable[[dict[str, Any], httpx.AsyncClient], Any],
    messages: list[OutboundMessage],
    http: httpx.AsyncClient,
) -> None:
    """`messages` sent through a connector paced at 3 calls a second, to a simulator that
    refuses a fourth call within a second, all succeed and none was refused."""
    sim = start_sim("--qps", "3", "--no-auto-decide")
    results = await connector(sim.config(rate_limit_per_second=3), http).deliver(messages)
    assert all(r.ok for r in results), [r.error for r in results]
    assert sim.get("/_sim/stats")["rate_limited"] == 0
