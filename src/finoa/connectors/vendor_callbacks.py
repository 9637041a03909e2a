"""What the callback handlers of the vendor OAs (DingTalk, Feishu, WeCom) check and answer
alike; each vendor's `inbound.py` keeps how its callbacks are sealed and what they say.

- `VendorCallbacks`: a handler that asks the vendor's API about what a callback leaves out
  (the API client made on first use, on the handler's own HTTP client; a rate limit waited
  out, any other failure a 503 for the vendor to send the callback again).
- The signed callback's time: a whole number of seconds (or milliseconds) since the epoch,
  refused as stale when further than the instance's tolerance from the hub's clock.
- The reply while a command failed transiently (`RETRY_STATUSES`): 503, for the vendor to
  send the callback again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from finoa.connectors.base import (
    CommandOutcome,
    InboundRefused,
    InboundReply,
    InboundRequest,
    VendorClientOwner,
)
from finoa.connectors.callback_fetch import fetch_for_callback

if TYPE_CHECKING:
    from finoa.connectors.vendor_oa import VendorApi

T = TypeVar("T")

# A command's outcome for which the vendor should send the callback again: a rate limit, the
# hub's trouble, or 404 (the approval's id may not be recorded yet).
RETRY_STATUSES = frozenset({404, 429}) | frozenset(range(500, 600))


class VendorCallbacks(VendorClientOwner):
    """The inbound handler of a vendor OA instance; `config` is the vendor's parsed config
    (with `timeout_seconds`)."""

    config: Any
    _api: Any = None

    async def fetch_from_vendor(
        self,
        api_type: type[VendorApi],
        fetch: Callable[[Any], Awaitable[T]],
        *,
        field: str,
    ) -> T:
        """`fetch(api)` on the vendor's API (an `api_type`, made on first use) for a
        callback: a rate limit is waited out, any other failure is a 503 naming `field`."""
        if self._api is None:
            self._api = api_type(self.config, self.vendor_http(self.config.timeout_seconds))
        api = self._api
        return await fetch_for_callback(lambda: fetch(api), vendor=api_type.title, field=field)


def query_value(request: InboundRequest, *names: str) -> str:
    """The first of `names` the signed callback's query gives; 401 naming the first name
    when it gives none."""
    for name in names:
        value = request.query.get(name)
        if value:
            return value
    raise InboundRefused(
        401,
        "Invalid signature",
        f"{names[0]}: missing from the query",
        kind="invalid-signature",
        field=names[0],
    )


def callback_time_problem(
    timestamp: str, *, now: float, tolerance_seconds: int, milliseconds: bool = False
) -> str | None:
    """What is wrong with a signed callback's time (`timestamp` as sent, seconds since the
    epoch, or `milliseconds`): not such a number, or further than `tolerance_seconds` from
    `now`; None when it is fine."""
    unit, digits = ("milliseconds", 15) if milliseconds else ("seconds", 12)
    if not timestamp.isdigit() or len(timestamp) > digits:
        return f"not {unit} since the epoch"
    drift = abs(now - int(timestamp) / (1000 if milliseconds else 1))
    if drift > tolerance_seconds:
        return f"{int(drift)} s from the hub's clock (at most {tolerance_seconds})"
    return None


def check_query_timestamp(
    timestamp: str, *, now: float, tolerance_seconds: int, milliseconds: bool = False
) -> None:
    """The `timestamp` query parameter of a signed callback (`callback_time_problem`);
    refused 401 as a stale callback."""
    problem = callback_time_problem(
        timestamp, now=now, tolerance_seconds=tolerance_seconds, milliseconds=milliseconds
    )
    if problem is not None:
        raise InboundRefused(
            401,
            "Stale callback",
            f"timestamp: {problem}",
            kind="stale-timestamp",
            field="timestamp",
        )


def to_send_again(outcomes: Sequence[CommandOutcome]) -> CommandOutcome | None:
    """The first command that failed transiently (`RETRY_STATUSES`); None when every one is
    settled (applied, a duplicate, or refused for good)."""
    return next((o for o in outcomes if o.status in RETRY_STATUSES), None)


def problem_detail(outcome: CommandOutcome) -> str:
    """The `detail` of a command's problem; empty without one."""
    return (outcome.problem or {}).get("detail", "") if outcome.problem else ""


def send_again_reply(outcome: CommandOutcome, retry_after_seconds: int) -> InboundReply:
    """503 `{"success": false, "status", "detail"}` of the command to send again, with the
    vendor's `retry-after` (DingTalk, WeCom)."""
    body = json.dumps(
        {"success": False, "status": outcome.status, "detail": problem_detail(outcome)},
        ensure_ascii=False,
    )
    return InboundReply(
        503, body.encode("utf-8"), headers={"retry-after": str(retry_after_seconds)}
    )
