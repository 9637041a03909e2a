"""What this process created at an OA, for the callbacks that come back about it.

An OA answers the call that creates an approval (DingTalk's `processInstances`, WeCom's
`applyevent`) with the approval's id, and its callbacks about that approval name only the
id. The hub keeps the id against the claim once the answer is settled in the outbox, but
the OA's first callbacks often come sooner; without the id the callback handler would have
to ask the OA what the approval is (one more call against the app's quota) before it could
answer. So the outbound side notes each id it is given here, and the inbound side of the
same instance looks it up first. The memory is per process and bounded; a callback that
finds nothing here is handled as before (the database, then the OA).
"""

from __future__ import annotations

from collections import OrderedDict

MAX_REMEMBERED = 100_000  # ids remembered per kind and instance, per process
_MEMORIES: dict[tuple[str, ...], OrderedDict[str, str]] = {}


def created_here(*key: str) -> OrderedDict[str, str]:
    """The OA's id -> finoa's id (claim or task) of what this process created, for one kind
    of document at one OA app (`key`: the kind and what names the app)."""
    return _MEMORIES.setdefault(key, OrderedDict())


def remember_created(key: tuple[str, ...], oa_id: str, finoa_id: str) -> None:
    known = created_here(*key)
    known[oa_id] = finoa_id
    known.move_to_end(oa_id)
    while len(known) > MAX_REMEMBERED:
        known.popitem(last=False)
