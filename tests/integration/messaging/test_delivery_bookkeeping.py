"""Delivery bookkeeping on both databases: leases with owner and version, a heartbeat while a
delivery runs, a restarted worker taking back its rows at once, a late settler changing
nothing, rows held behind a dead letter made visible and released in order, and an outage
healed without a dead letter and without a storm of requests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import select
from support.claims import one_line_claim
from support.processes import Server

from finoa.connectors.base import (
    ConnectorKind,
    ConnectorManifest,
    DeliveryResult,
    Direction,
    HealthReport,
    OutboundMessage,
)
from finoa.messaging.circuit import CircuitBreaker
from finoa.messaging.dispatcher import SAFETY_POLL_SECONDS, Dispatcher
from finoa.messaging.retry import DeliveryError, ErrorClass, RetryPolicy
from finoa.runtime import build_dispatcher, new_http_client
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.operations import replay_dead_letters
from finoa.services.queries import dead_letters, get_claim, held_rows
from finoa.services.sweeps import approval_sources, sweep_stuck_tasks
from finoa.store.tables import audit_events, outbox
from finoa.store.uow import Database, OutboxMessage, UnitOfWork

ACTION = "probe.notify"
DEADLINE = 20.0  # seconds any wait in these tests may take before it fails


class Probe:
    """A connector standing in for a peer: records what it was sent and looked up, can hold
    a delivery until released, and can refuse chosen messages for good."""

    manifest: ClassVar[ConnectorManifest] = ConnectorManifest(
        name="probe",
        kind=ConnectorKind.OA,
        direction=Direction.OUTBOUND,
        actions=(ACTION,),
        config_schema={},
        auth="none",
        max_batch=10,
    )

    def __init__(self, *, refuse: Sequence[str] = (), found: Sequence[str] = ()) -> None:
        self.sent: list[str] = []
        self.looked_up: list[str] = []
        self.refuse = set(refuse)
        self.found = set(found)
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        results = []
        for m in messages:
            self.sent.append(m.idempotency_key)
            if m.idempotency_key in self.refuse:
                error = DeliveryError(ErrorClass.PERMANENT, f"{m.idempotency_key} refused")
                results.append(DeliveryResult(error=error))
            else:
                results.append(DeliveryResult(response={"ok": m.idempotency_key}))
        return results

    async def lookup(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult | None]:
        self.looked_up.extend(m.idempotency_key for m in messages)
        return [
            DeliveryResult(response={"found": m.idempotency_key})
            if m.idempotency_key in self.found
            else None
            for m in messages
        ]

    async def health(self) -> HealthReport:
        return HealthReport(True)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.connect(db_url)
    yield database
    database.dispose()


def enqueue(db: Database, keys: Sequence[str], document: str = "DOC-1") -> None:
    def command(uow: UnitOfWork) -> None:
        for key in keys:
            uow.enqueue(OutboxMessage("peer", ACTION, "probe", document, {"key": key}, key))

    db.perform(command, actor="t")


def statuses(db: Database) -> dict[str, str]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.idempotency_key, outbox.c.status))
        return {r.idempotency_key: r.status for r in rows}


def dispatcher(db: Database, probe: Probe, **kwargs: Any) -> Dispatcher:
    return Dispatcher(
        db,
        {"peer": probe},  # type: ignore[dict-item]
        policy=RetryPolicy(base_seconds=0.01, cap_seconds=0.05),
        **kwargs,
    )


async def until(condition: Any, what: str) -> None:
    """Poll `condition()` until it holds, failing after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_a_late_settler_changes_nothing(db: Database) -> None:
    enqueue(db, ["k1"])
    followed_up: list[str] = []

    def handler(uow: UnitOfWork, aggregate_id: str, response: dict[str, Any]) -> None:
        followed_up.append(response["ok"])

    slow, fast = Probe(refuse=["k1"]), Probe()
    first = dispatcher(db, slow, lease_seconds=0.2, worker_id="w1")
    second = dispatcher(
        db, fast, lease_seconds=30, worker_id="w2", handlers={("peer", ACTION): handler}
    )

    async def scenario() -> None:
        claimed = await db.run(first._claim_batch)  # w1 takes the row, then stalls
        assert [r.idempotency_key for r in claimed] == ["k1"]
        await until(second_claims, "the lease to run out and w2 to take the row")
        await second._deliver(taken)  # delivered and settled
        assert statuses(db) == {"k1": "done"}
        # w1 wakes up and settles what it had: the peer refused it, says its connector
        await first._deliver(claimed)

    taken: list[Any] = []

    def second_claims() -> bool:
        rows = second._claim_batch()
        taken.extend(rows)
        return bool(rows)

    asyncio.run(scenario())

    assert statuses(db) == {"k1": "done"}  # not dead: the late settlement changed nothing
    assert first.late_settlements == 1 and first.dead_lettered == 0
    assert followed_up == ["k1"]  # the follow-up ran once, for the settlement that counted
    assert fast.looked_up == ["k1"]  # the expired lease left its outcome unknown: asked first
    assert fast.sent == ["k1"]


def test_a_follow_up_out_of_lock_order_is_settled_in_the_next_transaction(
    db: Database,
) -> None:
    """Two rows settle in one transaction; the second's follow-up would lock a row below one
    the first's holds. On PostgreSQL it steps back and is settled right after, in a
    transaction of its own: both rows done, each follow-up applied once, no dead letter."""
    enqueue(db, ["a"], document="DOC-A")
    enqueue(db, ["b"], document="DOC-B")
    tried: list[str] = []

    def handler(uow: UnitOfWork, aggregate_id: str, response: dict[str, Any]) -> None:
        key = response["ok"]
        tried.append(key)
        uow.take_in_order("budgets", [5] if key == "a" else [1])
        uow.audit("probe.followed_up", "probe", key, {})

    worker = dispatcher(db, Probe(), worker_id="w", handlers={("peer", ACTION): handler})
    asyncio.run(worker.run_until_idle(DEADLINE))

    assert statuses(db) == {"a": "done", "b": "done"}
    assert worker.dead_lettered == 0
    assert tried == (["a", "b"] if db.is_sqlite else ["a", "b", "b"])
    with db.engine.connect() as conn:
        followed = conn.execute(
            select(audit_events.c.object_id).where(audit_events.c.action == "probe.followed_up")
        )
        assert sorted(r.object_id for r in followed) == ["a", "b"]  # each applied once


def test_a_restarted_worker_takes_back_its_rows_at_once(db: Database) -> None:
    for key in ("a", "b", "c"):
        enqueue(db, [key], document=f"DOC-{key}")
    crashed = dispatcher(db, Probe(), lease_seconds=3600, worker_id="host:hub")
    claimed = crashed._claim_batch()  # ... and the process is killed before it settles
    assert len(claimed) == 3 and set(statuses(db).values()) == {"inflight"}
    other = dispatcher(db, Probe(), lease_seconds=3600, worker_id="host:worker")
    probe = Probe(found=["a"])  # "a" had reached the peer before the crash
    restarted = dispatcher(db, probe, lease_seconds=3600, worker_id="host:hub")

    async def scenario() -> None:
        assert await other.run_once() == 0  # another worker waits out the hour-long lease
        await restarted.run_until_idle(DEADLINE)

    asyncio.run(scenario())

    assert restarted.reclaimed == 3
    assert statuses(db) == {"a": "done", "b": "done", "c": "done"}
    assert sorted(probe.looked_up) == ["a", "b", "c"]  # each may have arrived: asked first
    assert probe.sent == ["b", "c"]  # "a" was there already: not sent again
    assert restarted.found_by_lookup == 1


def test_the_heartbeat_keeps_a_long_delivery_leased(db: Database) -> None:
    enqueue(db, ["slow"])
    held = Probe()
    held.gate = asyncio.Event()
    worker = dispatcher(db, held, lease_seconds=1.5, worker_id="w1")
    rival = dispatcher(db, Probe(), lease_seconds=1.5, worker_id="w2")

    async def scenario() -> None:
        delivery = asyncio.ensure_future(worker.run_once())
        await until(held.entered.is_set, "the delivery to start")
        # more than two lease lengths pass while the delivery runs; the rival never gets the row
        watched_until = time.monotonic() + 4.0
        while time.monotonic() < watched_until:
            assert await db.run(rival._claim_batch) == []
            await asyncio.sleep(0.05)
        held.gate.set()  # type: ignore[union-attr]
        assert await delivery == 1

    asyncio.run(scenario())
    assert statuses(db) == {"slow": "done"}
    assert held.sent == ["slow"]


def test_rows_held_behind_a_dead_letter_are_visible_and_follow_it_in_order(db: Database) -> None:
    enqueue(db, ["first", "second", "third"], document="DOC-9")
    enqueue(db, ["elsewhere"], document="DOC-10")
    probe = Probe(refuse=["first"])

    asyncio.run(dispatcher(db, probe, worker_id="w").run_until_idle(DEADLINE))

    assert statuses(db) == {
        "first": "dead",
        "second": "pending",
        "third": "pending",
        "elsewhere": "done",
    }
    letters, total = dead_letters(db)
    assert total == 1 and letters[0]["idempotency_key"] == "first"
    held, held_total = held_rows(db)
    assert held_total == 2
    assert [(h["idempotency_key"], h["reason"]) for h in held] == [
        ("second", f"waiting on dead letter {letters[0]['id']}"),
        ("third", f"waiting on dead letter {letters[0]['id']}"),
    ]
    page, _ = held_rows(db, page=2, page_size=1)
    assert [h["idempotency_key"] for h in page] == ["third"]

    probe.refuse.clear()  # the peer was fixed
    replay_dead_letters(db, [letters[0]["id"]], actor="t")
    asyncio.run(dispatcher(db, probe, worker_id="w").run_until_idle(DEADLINE))

    assert set(statuses(db).values()) == {"done"}
    assert probe.sent == ["first", "elsewhere", "first", "second", "third"]
    assert probe.looked_up == ["first"]  # a replay asks the peer first
    assert held_rows(db) == ([], 0)


def test_rows_held_behind_a_row_in_flight_do_not_make_the_dispatcher_poll(db: Database) -> None:
    enqueue(db, ["first", "second"], document="DOC-H")
    worker = dispatcher(db, Probe(), worker_id="w", batch_size=1)
    (leased,) = worker._claim_batch()  # "first" is with its peer; "second" waits behind it
    assert leased.idempotency_key == "first"
    assert statuses(db) == {"first": "inflight", "second": "pending"}

    # "second" is due by its own time, but held: the dispatcher sleeps until a settlement
    # wakes it (or its safety poll), instead of claiming nothing over and over
    assert worker._seconds_until_due() == SAFETY_POLL_SECONDS
    enqueue(db, ["elsewhere"], document="DOC-E")
    assert worker._seconds_until_due() == 0.0  # a row that is not held is due at once


def test_a_claim_looks_past_windows_of_held_rows(db: Database) -> None:
    """A claim looks at windows of rows not yet done (four batches each). When a whole window
    is held behind a row in flight, it goes on to the next, and finds the rows due there."""
    enqueue(db, [f"chain-{n:02}" for n in range(12)], document="DOC-LONG")
    enqueue(db, ["x"], document="DOC-X")
    enqueue(db, ["y"], document="DOC-Y")
    enqueue(db, ["z"], document="DOC-Z")
    other = dispatcher(db, Probe(), worker_id="other", batch_size=1)
    (leased,) = other._claim_batch()  # the chain's first row is with its peer
    assert leased.idempotency_key == "chain-00"
    worker = dispatcher(db, Probe(), worker_id="w", batch_size=2)  # windows of 8 rows

    claimed = worker._claim_batch()

    # the first window (chain-00 … chain-07) has nothing due; the second holds x and y
    assert [r.idempotency_key for r in claimed] == ["x", "y"]
    assert [r.idempotency_key for r in worker._claim_batch()] == ["z"]  # the last, short one
    assert worker._claim_batch() == []


# --- an outage of the real ERP simulator ----------------------------------------------------


def test_an_erp_outage_heals_by_itself_with_a_few_probes(
    loop_hub: Hub, sims: tuple[Server, Server]
) -> None:
    _, erp = sims
    tag = uuid.uuid4().hex[:8]
    claim_ids = []
    for i in range(5):
        claim = one_line_claim(
            f"OUT-{tag}-{i}",
            applicant_id="E0021",
            department_id="D03",
            category="training",
            amount="300.00",
        )
        claim_ids.append(submit_claim(loop_hub, claim, source="t", actor="t").claim_id)
    httpx.post(f"{erp.url}/_sim/faults", json={"error_rate": 1.0}).raise_for_status()

    def erp_requests() -> int:
        return int(httpx.get(f"{erp.url}/_sim/stats").json()["requests"])

    async def scenario() -> int:
        http = new_http_client(loop_hub.settings)
        hub_dispatcher = build_dispatcher(loop_hub, http)
        hub_dispatcher.breakers["erp"] = CircuitBreaker(
            threshold=3, base_cooldown_seconds=0.25, max_cooldown_seconds=1.0
        )
        runner = asyncio.create_task(hub_dispatcher.run())
        try:
            for claim_id in claim_ids:
                task = get_claim(loop_hub.db, claim_id).tasks[0]
                await loop_hub.db.run(
                    decide_task, loop_hub, task.id, task.assignee_id, True, "同意", actor="t"
                )
            before = erp_requests()
            outage_ends = time.monotonic() + 3.0  # with the old budget this was dead letters
            while time.monotonic() < outage_ends:
                await asyncio.sleep(0.1)
            during = erp_requests() - before
            httpx.delete(f"{erp.url}/_sim/faults").raise_for_status()
            await until(
                lambda: all(get_claim(loop_hub.db, c).status == "posted" for c in claim_ids),
                "every claim to be posted after the outage",
            )
        finally:
            hub_dispatcher.stop()
            await runner
            await http.aclose()
        return during

    during = asyncio.run(scenario())

    assert dead_letters(loop_hub.db)[1] == 0
    # a few failures open the circuit, then probes 0.25, 0.5, 1, 1 s apart: not a storm (the
    # five vouchers retried every 0.05-0.2 s without a breaker would be some 75 requests)
    assert during <= 15, during


def test_a_decision_the_oa_gave_up_sending_is_found_by_the_sweep(
    loop_hub: Hub, sims: tuple[Server, Server]
) -> None:
    """The OA's approver decides while the hub cannot be reached; the OA gives up on the
    webhook. The hub's sweep asks the OA about its stuck task and applies the decision."""
    oa, _ = sims
    claim = one_line_claim(
        f"SW-{uuid.uuid4().hex[:8]}",
        applicant_id="E0021",
        department_id="D03",
        category="training",
        amount="300.00",
    )
    claim_id = submit_claim(loop_hub, claim, source="t", actor="t").claim_id
    asyncio.run(build_dispatcher(loop_hub, new_http_client(loop_hub.settings)).run_until_idle(10))
    (task,) = get_claim(loop_hub.db, claim_id).tasks
    # the simulators' hub port has no hub behind it: the webhook fails and the OA gives up
    sent = httpx.post(
        f"{oa.url}/_sim/todos/{task.id}/decide",
        json={"decision": "approve", "comment": "同意"},
        timeout=30,
    ).json()
    assert sent["state"] == "failed"
    assert get_claim(loop_hub.db, claim_id).status == "in_approval"

    async def sweep() -> Any:
        http = new_http_client(loop_hub.settings)
        try:
            connectors = build_dispatcher(loop_hub, http).connectors
            sources = approval_sources(loop_hub, connectors)
            assert list(sources) == ["generic-oa"]
            return await sweep_stuck_tasks(loop_hub, sources, older_than=timedelta(0))
        finally:
            await loop_hub.commands.close()
            await http.aclose()

    report = asyncio.run(sweep())

    assert report.applied == 1 and report.errors == []
    assert get_claim(loop_hub.db, claim_id).tasks[0].status == "approved"
    assert get_claim(loop_hub.db, claim_id).status == "approved"
    again = asyncio.run(sweep())  # nothing left to do; a late webhook would be a duplicate
    assert again.applied == 0


def test_the_next_batch_is_delivered_while_a_slow_one_is_still_with_its_peer(
    db: Database,
) -> None:
    def command(uow: UnitOfWork) -> None:
        uow.enqueue(OutboxMessage("slow", ACTION, "probe", "DOC-S", {"key": "s"}, "s"))
        for key in ("p1", "p2", "p3"):  # one document: delivered in this order, one at a time
            uow.enqueue(OutboxMessage("peer", ACTION, "probe", "DOC-P", {"key": key}, key))

    db.perform(command, actor="t")
    slow, peer = Probe(), Probe()
    slow.gate = asyncio.Event()
    worker = Dispatcher(
        db,
        {"slow": slow, "peer": peer},  # type: ignore[dict-item]
        policy=RetryPolicy(base_seconds=0.01, cap_seconds=0.05),
        batch_size=1,  # each row a batch of its own
        pipeline=2,
        worker_id="w1",
    )

    async def scenario() -> None:
        runner = asyncio.create_task(worker.run())
        try:
            await until(slow.entered.is_set, "the slow delivery to start")
            # the slow batch is still with its peer: the other batches go on meanwhile
            await until(lambda: statuses(db)["p3"] == "done", "the other rows to be delivered")
            assert statuses(db)["s"] == "inflight" and not slow.sent
            slow.gate.set()  # type: ignore[union-attr]
            await until(lambda: statuses(db)["s"] == "done", "the slow row to be settled")
        finally:
            worker.stop()
            await asyncio.wait_for(runner, DEADLINE)

    asyncio.run(scenario())
    assert peer.sent == ["p1", "p2", "p3"]  # the document's order held across batches
    assert slow.sent == ["s"]
    assert worker.delivered == 4


def test_a_backlog_at_one_destination_does_not_hold_back_anothers_rows(db: Database) -> None:
    """Each destination is a lane of its own: while the OA's batches are stuck with a slow
    OA, the ERP's row, queued after all of them, is claimed and delivered."""

    def command(uow: UnitOfWork) -> None:
        for n in range(30):  # thirty documents' messages to the OA, before the ERP's
            uow.enqueue(OutboxMessage("oa", ACTION, "probe", f"DOC-{n}", {"n": n}, f"oa-{n}"))
        uow.enqueue(OutboxMessage("erp", ACTION, "probe", "DOC-E", {"key": "e"}, "erp-1"))

    db.perform(command, actor="t")
    oa, erp = Probe(), Probe()
    oa.gate = asyncio.Event()
    worker = Dispatcher(
        db,
        {"oa": oa, "erp": erp},  # type: ignore[dict-item]
        policy=RetryPolicy(base_seconds=0.01, cap_seconds=0.05),
        batch_size=10,  # the OA's rows fill the first batches
        pipeline=1,  # one claimed batch at a time: without lanes the ERP's row would wait
        worker_id="w1",
    )

    async def scenario() -> None:
        runner = asyncio.create_task(worker.run())
        try:
            await until(oa.entered.is_set, "the OA's first batch to be with the OA")
            await until(lambda: statuses(db)["erp-1"] == "done", "the ERP's row delivered")
            assert not oa.sent and statuses(db)["oa-29"] == "pending"  # the OA is still stuck
            oa.gate.set()  # type: ignore[union-attr]
            await until(lambda: statuses(db)["oa-29"] == "done", "the OA's backlog delivered")
        finally:
            oa.gate.set()  # type: ignore[union-attr]  # a failed wait must not leave it stuck
            worker.stop()
            await asyncio.wait_for(runner, DEADLINE)

    asyncio.run(scenario())
    assert erp.sent == ["erp-1"]
    assert sorted(oa.sent) == sorted(f"oa-{n}" for n in range(30))
    assert worker.delivered == 31


def test_a_notice_the_oa_has_no_channel_for_is_settled_not_sent_and_other_actions_dead(
    db: Database,
) -> None:
    """The archive tells the applicant her voucher is archived (`notice.send`), but this OA
    has no messages: the notice is settled as not sent, with the reason, and is no dead
    letter. An action the OA cannot take that is not a courtesy stays a dead letter."""

    def command(uow: UnitOfWork) -> None:
        uow.enqueue(OutboxMessage("peer", "notice.send", "archive_package", "P1", {}, "n-1"))
        uow.enqueue(OutboxMessage("peer", "todo.unknown", "claim", "C1", {}, "t-1"))

    db.perform(command, actor="t")
    probe = Probe()
    asyncio.run(dispatcher(db, probe).run_until_idle())
    assert statuses(db) == {"n-1": "done", "t-1": "dead"}
    assert probe.sent == []  # neither reached the OA
    with db.engine.connect() as conn:
        rows = {r.idempotency_key: r for r in conn.execute(select(outbox))}
    assert "takes no 'notice.send'" in str(rows["n-1"].response)
    assert "probe cannot 'todo.unknown'" in str(rows["t-1"].last_error)


class Throttled(Probe):
    """A peer that answers its first `refusals` sends "too many requests" (or, for
    comparison, a server error), and takes them after that."""

    def __init__(self, refusals: int, error_class: ErrorClass = ErrorClass.RATE_LIMITED) -> None:
        super().__init__()
        self.refusals = refusals
        self.error_class = error_class
        self.calls = 0

    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        self.calls += 1
        if self.calls <= self.refusals:
            error = DeliveryError(self.error_class, "slow down", retry_after=0.01)
            return [DeliveryResult(error=error) for _ in messages]
        return await super().deliver(messages)


def test_a_peer_that_asks_to_slow_down_never_opens_the_breaker(db: Database) -> None:
    enqueue(db, ["a", "b", "c"])
    breaker = CircuitBreaker(threshold=3, base_cooldown_seconds=30)
    peer = Throttled(refusals=8)  # refused far more often in a row than the threshold
    hub = dispatcher(db, peer, breaker=lambda: breaker)
    asyncio.run(hub.run_until_idle(max_seconds=DEADLINE))
    assert statuses(db) == {"a": "done", "b": "done", "c": "done"}
    assert peer.sent == ["a", "b", "c"] and peer.calls == 8 + 3  # one document: in turn
    assert breaker.snapshot()["state"] == "closed" and breaker.opened == 0


def test_a_peer_that_fails_as_often_opens_the_breaker(db: Database) -> None:
    enqueue(db, ["a"])
    breaker = CircuitBreaker(threshold=3, base_cooldown_seconds=30)
    peer = Throttled(refusals=8, error_class=ErrorClass.TRANSIENT)
    hub = dispatcher(db, peer, breaker=lambda: breaker)
    asyncio.run(hub.run_until_idle(max_seconds=1.0))
    assert peer.calls == 3 and breaker.snapshot()["state"] == "open"
    assert statuses(db) == {"a": "pending"}
