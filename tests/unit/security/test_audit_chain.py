"""Tests for finoa.security.audit: the hash-linked audit chain and its verification."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from finoa.security.audit import GENESIS, canonical_json, digest, link_hash, verify_chain

T0 = datetime(2024, 5, 20, 8, 30, 15, 123456, tzinfo=UTC)


def build_chain(n: int = 10) -> list[dict[str, Any]]:
    """Events as UnitOfWork._flush_audit stores them."""
    events: list[dict[str, Any]] = []
    prev_hash = GENESIS
    for seq in range(1, n + 1):
        data = {"claim_id": f"CLM-{seq}", "amount_fen": seq * 100, "note": "审批通过"}
        at = T0 + timedelta(seconds=seq)
        data_digest = digest(data)
        event_hash = link_hash(
            prev_hash,
            seq=seq,
            at=at,
            actor=f"user-{seq % 3}",
            action="claim.approved",
            object_type="claim",
            object_id=f"CLM-{seq}",
            data_digest=data_digest,
        )
        events.append(
            {
                "seq": seq,
                "at": at,
                "actor": f"user-{seq % 3}",
                "action": "claim.approved",
                "object_type": "claim",
                "object_id": f"CLM-{seq}",
                "data": data,
                "data_digest": data_digest,
                "prev_hash": prev_hash,
                "hash": event_hash,
            }
        )
        prev_hash = event_hash
    return events


def relink(events: list[dict[str, Any]], start: int) -> None:
    """Recompute digests and hashes from index `start` on, as a forger would."""
    prev_hash = events[start - 1]["hash"] if start else GENESIS
    for event in events[start:]:
        event["data_digest"] = digest(event["data"])
        event["prev_hash"] = prev_hash
        event["hash"] = link_hash(
            prev_hash,
            seq=event["seq"],
            at=event["at"],
            actor=event["actor"],
            action=event["action"],
            object_type=event["object_type"],
            object_id=event["object_id"],
            data_digest=event["data_digest"],
        )
        prev_hash = event["hash"]


def test_intact_chain_verifies() -> None:
    events = build_chain(10)
    report = verify_chain(events)
    assert report.ok
    assert report.checked == 10
    assert report.first_broken_seq is None
    assert report.reason is None


def test_empty_chain_verifies() -> None:
    report = verify_chain([])
    assert report.ok and report.checked == 0


def test_first_event_links_to_genesis_and_hashes_are_distinct() -> None:
    events = build_chain(10)
    assert events[0]["prev_hash"] == GENESIS == "0" * 64
    assert len({e["hash"] for e in events}) == 10
    assert all(len(e["hash"]) == 64 for e in events)


def test_chain_must_start_at_seq_1() -> None:
    events = build_chain(10)[1:]
    report = verify_chain(events)
    assert not report.ok
    assert report.first_broken_seq == 2
    assert report.checked == 0


@pytest.mark.parametrize("k", [1, 4, 10])
def test_tampered_data_is_reported_at_that_event(k: int) -> None:
    events = build_chain(10)
    events[k - 1]["data"]["amount_fen"] += 1
    report = verify_chain(events)
    assert not report.ok
    assert report.first_broken_seq == k
    assert report.checked == k - 1
    assert report.reason is not None and "data" in report.reason


def test_tampered_data_with_recomputed_digest_breaks_the_hash() -> None:
    events = build_chain(10)
    events[4]["data"]["amount_fen"] = 1
    events[4]["data_digest"] = digest(events[4]["data"])
    report = verify_chain(events)
    assert report.first_broken_seq == 5
    assert report.reason is not None and "hash" in report.reason


def test_tampered_event_column_breaks_the_hash() -> None:
    events = build_chain(10)
    events[6]["actor"] = "mallory"
    report = verify_chain(events)
    assert report.first_broken_seq == 7
    assert report.checked == 6
    assert report.reason is not None and "hash" in report.reason


@pytest.mark.parametrize("k", [1, 5, 10])
def test_tampered_hash_is_reported_at_that_event(k: int) -> None:
    events = build_chain(10)
    events[k - 1]["hash"] = "f" * 64
    report = verify_chain(events)
    assert report.first_broken_seq == k
    assert report.checked == k - 1
    assert report.reason is not None and "hash" in report.reason


def test_tampered_prev_hash_is_reported_at_that_event() -> None:
    events = build_chain(10)
    events[3]["prev_hash"] = "a" * 64
    report = verify_chain(events)
    assert report.first_broken_seq == 4
    assert report.reason is not None and "prev_hash" in report.reason


def test_rewriting_one_event_completely_breaks_the_next_link() -> None:
    events = build_chain(10)
    events[2]["data"]["amount_fen"] = 0
    forged = copy.deepcopy(events)
    # the forger recomputes event 3's digest and hash, but cannot fix event 4's stored link
    relink(forged, 2)
    forged[3:] = events[3:]
    report = verify_chain(forged)
    assert report.first_broken_seq == 4
    assert report.checked == 3
    assert report.reason is not None and "prev_hash" in report.reason


def test_rewriting_everything_after_the_change_verifies() -> None:
    """The chain is tamper-evident only against a stored head: a full relink is consistent."""
    events = build_chain(10)
    original_head = events[-1]["hash"]
    events[2]["data"]["amount_fen"] = 0
    relink(events, 2)
    assert verify_chain(events).ok
    assert events[-1]["hash"] != original_head


@pytest.mark.parametrize("k", [2, 5, 9])
def test_deleted_event_is_reported_as_a_gap(k: int) -> None:
    events = build_chain(10)
    del events[k - 1]
    report = verify_chain(events)
    assert not report.ok
    assert report.first_broken_seq == k + 1
    assert report.checked == k - 1
    assert report.reason is not None
    assert "gap" in report.reason and f"expected seq {k}" in report.reason


def test_deleting_the_last_event_is_not_detectable_without_the_head() -> None:
    events = build_chain(10)
    assert verify_chain(events[:-1]).ok


def test_reordered_events_are_reported() -> None:
    events = build_chain(10)
    events[3], events[4] = events[4], events[3]  # seq 5 now stored before seq 4
    report = verify_chain(events)
    assert not report.ok
    assert report.first_broken_seq == 5
    assert report.checked == 3
    assert report.reason is not None and "expected seq 4" in report.reason


def test_reordered_and_renumbered_events_break_the_link() -> None:
    events = build_chain(10)
    events[3], events[4] = events[4], events[3]
    events[3]["seq"], events[4]["seq"] = 4, 5
    report = verify_chain(events)
    assert report.first_broken_seq == 4
    assert report.checked == 3
    assert report.reason is not None and "prev_hash" in report.reason


def test_verify_chain_accepts_a_generator() -> None:
    events = build_chain(5)
    assert verify_chain(e for e in events).checked == 5


# --- timestamps -----------------------------------------------------------------------------


def _hash_at(at: datetime | str) -> str:
    return link_hash(
        GENESIS,
        seq=1,
        at=at,
        actor="a",
        action="x",
        object_type="claim",
        object_id="1",
        data_digest=digest({}),
    )


def test_naive_and_aware_utc_datetimes_hash_the_same() -> None:
    naive = datetime(2024, 5, 20, 8, 30, 15, 123456)
    aware = naive.replace(tzinfo=UTC)
    assert _hash_at(naive) == _hash_at(aware)


def test_other_timezones_are_normalised_to_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    local = datetime(2024, 5, 20, 16, 30, 15, 123456, tzinfo=beijing)
    assert _hash_at(local) == _hash_at(datetime(2024, 5, 20, 8, 30, 15, 123456))


def test_datetime_is_hashed_as_its_utc_iso_string() -> None:
    assert _hash_at(T0) == _hash_at("2024-05-20T08:30:15.123456Z")
    assert _hash_at(T0.replace(microsecond=0)) == _hash_at("2024-05-20T08:30:15.000000Z")


def test_a_different_instant_changes_the_hash() -> None:
    assert _hash_at(T0) != _hash_at(T0 + timedelta(microseconds=1))


def test_chain_with_naive_stored_at_verifies() -> None:
    """SQLite hands back naive datetimes; the chain was hashed with aware ones."""
    events = build_chain(10)
    for event in events:
        event["at"] = event["at"].replace(tzinfo=None)
    assert verify_chain(events).ok


# --- canonical json / digest ----------------------------------------------------------------


def test_canonical_json_is_key_order_independent_and_compact() -> None:
    assert canonical_json({"b": 1, "a": "审"}) == canonical_json({"a": "审", "b": 1})
    assert canonical_json({"b": 1, "a": 2}) == b'{"a":2,"b":1}'
    assert digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1})
    assert digest({"a": 1}) != digest({"a": 2})
