"""The tamper-evident audit chain (审计日志).

Each event's hash is SHA-256(prev_hash ‖ canonical JSON of the event); the first event links
to GENESIS. Changing, removing or reordering any stored event breaks every later link, and
`verify_chain` names the first event whose link no longer holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS = "0" * 64


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def _at(value: datetime | str) -> str:
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return value


def link_hash(
    prev_hash: str,
    *,
    seq: int,
    at: datetime | str,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    data_digest: str,
) -> str:
    """Hash of one event, chained to the previous one."""
    body = canonical_json(
        {
            "seq": seq,
            "at": _at(at),
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "data_digest": data_digest,
        }
    )
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_broken_seq is None


def verify_chain(events: Iterable[Mapping[str, Any]]) -> ChainReport:
    """Recompute every link; events must come in seq order with the stored columns."""
    prev_hash = GENESIS
    expected_seq = 1
    checked = 0
    for event in events:
        seq = int(event["seq"])
        if seq != expected_seq:
            return ChainReport(checked, seq, f"expected seq {expected_seq}, found {seq} (gap)")
        if digest(event["data"]) != event["data_digest"]:
            return ChainReport(checked, seq, "data does not match its digest (data changed)")
        if event["prev_hash"] != prev_hash:
            return ChainReport(checked, seq, "prev_hash does not match the previous event")
        recomputed = link_hash(
            prev_hash,
            seq=seq,
            at=event["at"],
            actor=event["actor"],
            action=event["action"],
            object_type=event["object_type"],
            object_id=event["object_id"],
            data_digest=event["data_digest"],
        )
        if recomputed != event["hash"]:
            return ChainReport(checked, seq, "hash does not match the event (event changed)")
        prev_hash = event["hash"]
        expected_seq += 1
        checked += 1
    return ChainReport(checked)
