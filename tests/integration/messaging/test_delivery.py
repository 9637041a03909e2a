"""The outbox dispatcher against the real simulators (separate processes), on both databases:
the whole loop, exactly-once posting under lost responses and redelivery, dead letters and
replay, and a property test over duplicated and reordered messages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from support.claims import one_line_claim
from support.processes import Server

from finoa.domain.errors import NotFound
from finoa.runtime import build_dispatcher, new_http_client
from finoa.schemas import ClaimSubmission
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.operations import replay_dead_letters
from finoa.services.queries import dead_letters, get_claim
from finoa.services.vouchers import reverse_voucher
from finoa.store.tables import audit_events, outbox, vouchers


@pytest.fixture(params=["keep", "forget", "none"])
def erp_keys(request: pytest.FixtureRequest, sims: tuple[Server, Server]) -> Iterator[str]:
    """The ERP keeps idempotency keys, forgets them at once, or never had any (Kingdee-like):
    exactly-once must hold in every case."""
    _, erp = sims
    spec = {"mode": request.param, "forget_after_seconds": 0.01}
    httpx.post(f"{erp.url}/_sim/idempotency", json=spec).raise_for_status()
    yield request.param
    httpx.post(f"{erp.url}/_sim/idempotency", json={"mode": "keep"}).raise_for_status()


def deliver(hub: Hub, max_seconds: float = 20) -> None:
    async def run() -> None:
        http = new_http_client(hub.settings)
        try:
            await build_dispatcher(hub, http).run_until_idle(max_seconds)
        finally:
            await http.aclose()

    asyncio.run(run())


def body(external_id: str, amount: str = "1090.00") -> ClaimSubmission:
    return one_line_claim(
        external_id,
        applicant_id="E0021",
        department_id="D03",
        category="training",
        amount=amount,
        title="培训 training",
    )


def approve_pending(hub: Hub, claim_id: str, message_prefix: str | None = None) -> bool:
    """Approve the claim's pending task, if any; returns whether one was decided."""
    pending = [t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending"]
    if not pending:
        return False
    task = pending[0]
    decide_task(
        hub,
        task.id,
        task.assignee_id,
        True,
        "同意",
        actor="t",
        source="oa" if message_prefix else None,
        message_id=f"{message_prefix}{task.id}" if message_prefix else None,
    )
    return True


def erp_vouchers_for(erp: Server, claim_id: str) -> list[dict[str, Any]]:
    listing = httpx.get(f"{erp.url}/_sim/vouchers").json()
    items = listing["vouchers"] if isinstance(listing, dict) else listing
    return [v for v in items if v.get("source_ref") == f"finoa:{claim_id}"]


def test_whole_loop_posts_and_writes_back(loop_hub: Hub, sims: tuple[Server, Server]) -> None:
    oa, erp = sims
    tag = uuid.uuid4().hex[:8]
    claim_ids = [
        submit_claim(loop_hub, body(f"L-{tag}-{i}"), source="t", actor="t").claim_id
        for i in range(3)
    ]
    deliver(loop_hub)
    todos = httpx.get(f"{oa.url}/_sim/todos", params={"state": "open"}).json()
    assert {t["claim_id"] for t in todos} >= set(claim_ids)
    for claim_id in claim_ids:
        while approve_pending(loop_hub, claim_id):
            pass
    deliver(loop_hub)
    for i, claim_id in enumerate(claim_ids):
        claim = get_claim(loop_hub.db, claim_id)
        assert claim.status == "posted"
        assert claim.voucher is not None and claim.voucher.erp_voucher_no
        in_erp = erp_vouchers_for(erp, claim_id)
        assert len(in_erp) == 1
        assert in_erp[0]["erp_voucher_no"] == claim.voucher.erp_voucher_no
        history = httpx.get(f"{oa.url}/_sim/claims/L-{tag}-{i}").json()
        assert [h["status"] for h in history] == ["submitted", "in_approval", "approved", "posted"]
        assert history[-1]["voucher_no"] == claim.voucher.voucher_no
        assert history[-1]["erp_voucher_no"] == claim.voucher.erp_voucher_no
    closed = httpx.get(f"{oa.url}/_sim/todos", params={"state": "closed"}).json()
    assert {t["claim_id"] for t in closed} >= set(claim_ids)


def test_lost_response_is_retried_without_a_second_voucher(
    loop_hub: Hub, sims: tuple[Server, Server], erp_keys: str
) -> None:
    _, erp = sims
    httpx.post(f"{erp.url}/_sim/faults", json={"drop_rate": 1.0, "count": 1}).raise_for_status()
    claim_id = submit_claim(
        loop_hub, body(f"D-{uuid.uuid4().hex[:8]}"), source="t", actor="t"
    ).claim_id
    approve_pending(loop_hub, claim_id)
    with loop_hub.db.engine.connect() as conn:
        queued = conn.execute(
            select(outbox.c.status).where(outbox.c.aggregate_id == f"V{claim_id[2:]}")
        ).scalar_one()
    assert queued == "pending"
    deliver(loop_hub)
    posted = get_claim(loop_hub.db, claim_id)
    assert posted.status == "posted"
    assert len(erp_vouchers_for(erp, claim_id)) == 1
    with loop_hub.db.engine.connect() as conn:
        attempts = conn.execute(
            select(outbox.c.attempts).where(outbox.c.aggregate_id == f"V{claim_id[2:]}")
        ).scalar_one()
    assert attempts >= 2  # the first try timed out after the ERP had done the work
    assert loop_hub_audited(loop_hub, "outbox.found_by_lookup") >= 1  # not posted again


def loop_hub_audited(hub: Hub, action: str) -> int:
    with hub.db.engine.connect() as conn:
        return len(
            conn.execute(select(audit_events.c.seq).where(audit_events.c.action == action)).all()
        )


def test_permanent_failure_dead_letters_and_replay_delivers(
    loop_hub: Hub, sims: tuple[Server, Server], erp_keys: str
) -> None:
    _, erp = sims
    httpx.post(
        f"{erp.url}/_sim/faults", json={"error_rate": 1.0, "error_status": 422}
    ).raise_for_status()
    claim_id = submit_claim(
        loop_hub, body(f"X-{uuid.uuid4().hex[:8]}"), source="t", actor="t"
    ).claim_id
    approve_pending(loop_hub, claim_id)
    deliver(loop_hub)
    letters = [d for d in dead_letters(loop_hub.db)[0] if d["aggregate_id"] == f"V{claim_id[2:]}"]
    assert len(letters) == 1
    letter = letters[0]
    assert letter["action"] == "voucher.post" and letter["error_class"] == "permanent"
    assert "422" in letter["reason"]
    assert letter["payload"]["claim_id"] == claim_id  # the canonical voucher, as queued
    assert letter["payload"]["voucher_id"] == f"V{claim_id[2:]}"
    assert get_claim(loop_hub.db, claim_id).status == "approved"
    httpx.delete(f"{erp.url}/_sim/faults").raise_for_status()
    with pytest.raises(NotFound):
        replay_dead_letters(loop_hub.db, [letter["id"], 10**9], actor="t")
    assert replay_dead_letters(loop_hub.db, [letter["id"]], actor="t") == [letter["id"]]
    deliver(loop_hub)
    assert get_claim(loop_hub.db, claim_id).status == "posted"
    assert len(erp_vouchers_for(erp, claim_id)) == 1


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.integers(0, 2)),
        st.tuples(st.just("decide"), st.integers(0, 2)),
        st.tuples(st.just("redecide"), st.integers(0, 2)),
        st.tuples(st.just("deliver"), st.just(0)),
        st.tuples(st.just("lose_acks"), st.just(0)),
    ),
    max_size=14,
)


@hsettings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    amounts=st.lists(st.sampled_from(["120.00", "6000.00", "60000.00"]), min_size=3, max_size=3),
    operations=OPERATIONS,
)
def test_duplicates_and_reorderings_post_each_voucher_once(
    loop_hub: Hub,
    sims: tuple[Server, Server],
    erp_keys: str,
    amounts: list[str],
    operations: list[tuple[str, int]],
) -> None:
    _, erp = sims
    tag = uuid.uuid4().hex[:8]
    claim_ids: dict[int, str] = {}
    last_decision: dict[int, str] = {}

    def submit(i: int) -> None:
        result = submit_claim(
            loop_hub,
            body(f"P-{tag}-{i}", amounts[i]),
            source="oa",
            actor="t",
            message_id=f"sub-{tag}-{i}",
        )
        claim_ids[i] = result.claim_id

    def decide(i: int) -> None:
        if i not in claim_ids:
            return  # the OA cannot decide a todo it was never sent
        pending = [t for t in get_claim(loop_hub.db, claim_ids[i]).tasks if t.status == "pending"]
        if pending:
            task = pending[0]
            last_decision[i] = task.id
            decide_task(
                loop_hub,
                task.id,
                task.assignee_id,
                True,
                "同意",
                actor="t",
                source="oa",
                message_id=f"dec-{task.id}",
            )

    def redecide(i: int) -> None:
        if i in last_decision:  # the OA re-sends its last callback (at-least-once)
            task_id = last_decision[i]
            task = next(t for t in get_claim(loop_hub.db, claim_ids[i]).tasks if t.id == task_id)
            result = decide_task(
                loop_hub,
                task_id,
                task.assignee_id,
                True,
                "同意",
                actor="t",
                source="oa",
                message_id=f"dec-{task_id}",
            )
            assert result.duplicate

    def lose_acks() -> None:
        # The dispatcher died after the ERP answered but before it recorded the answer:
        # the lease runs out and the rows are delivered again.
        with loop_hub.db.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.action == "voucher.post", outbox.c.status == "done")
                .values(status="inflight", lease_until=0)
            )

    for name, i in operations:
        if name == "submit":
            submit(i)
        elif name == "decide":
            decide(i)
        elif name == "redecide":
            redecide(i)
        elif name == "deliver":
            deliver(loop_hub, 5)
        else:
            lose_acks()
    for i in range(3):
        submit(i)
        while claim_ids[i] and get_claim(loop_hub.db, claim_ids[i]).status == "in_approval":
            decide(i)
    deliver(loop_hub)
    lose_acks()
    deliver(loop_hub)
    with loop_hub.db.engine.connect() as conn:
        hub_vouchers = conn.execute(
            select(vouchers.c.claim_id).where(vouchers.c.claim_id.in_(list(claim_ids.values())))
        ).all()
    assert sorted(v.claim_id for v in hub_vouchers) == sorted(claim_ids.values())
    for claim_id in claim_ids.values():
        assert get_claim(loop_hub.db, claim_id).status == "posted"
        assert len(erp_vouchers_for(erp, claim_id)) == 1


def test_reversal_is_posted_as_a_red_ink_voucher(
    loop_hub: Hub, sims: tuple[Server, Server]
) -> None:
    _, erp = sims
    claim_id = submit_claim(
        loop_hub, body(f"RV-{uuid.uuid4().hex[:8]}"), source="t", actor="t"
    ).claim_id
    approve_pending(loop_hub, claim_id)
    deliver(loop_hub)
    original = get_claim(loop_hub.db, claim_id).voucher
    assert original is not None and original.status == "posted"
    reversal_id = reverse_voucher(loop_hub, original.id, actor="finance")
    deliver(loop_hub)
    in_erp = erp_vouchers_for(erp, claim_id)
    assert len(in_erp) == 2
    red = next(v for v in in_erp if v["voucher"]["hub_voucher_no"] != original.voucher_no)
    assert all(e["debit_fen"] <= 0 and e["credit_fen"] <= 0 for e in red["voucher"]["entries"])
    assert sum(e["debit_fen"] for e in red["voucher"]["entries"]) == -original.total_fen
    with loop_hub.db.engine.connect() as conn:
        statuses = dict(
            conn.execute(
                select(vouchers.c.id, vouchers.c.status).where(vouchers.c.claim_id == claim_id)
            ).all()
        )
    assert statuses == {original.id: "reversed", reversal_id: "posted"}
    assert get_claim(loop_hub.db, claim_id).status == "posted"


def test_dispatcher_survives_a_failed_cycle(loop_hub: Hub, sims: tuple[Server, Server]) -> None:
    """A cycle that fails (here: the database refuses the claim query once) is logged and
    retried; the loop keeps running and the message is delivered."""

    async def scenario() -> str:
        http = new_http_client(loop_hub.settings)
        dispatcher = build_dispatcher(loop_hub, http)
        real_claim_batch = dispatcher._claim_batch
        failures = {"left": 1}

        def flaky_claim_batch(*lane: Any) -> Any:
            if failures["left"]:
                failures["left"] -= 1
                raise OperationalError("SELECT … FROM outbox", {}, Exception("database is locked"))
            return real_claim_batch(*lane)

        dispatcher._claim_batch = flaky_claim_batch  # type: ignore[method-assign]
        runner = asyncio.create_task(dispatcher.run())
        try:
            result = await loop_hub.db.run(
                submit_claim, loop_hub, body(f"F-{uuid.uuid4().hex[:8]}"), source="t", actor="t"
            )
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                with loop_hub.db.engine.connect() as conn:
                    states = {
                        r.status
                        for r in conn.execute(
                            select(outbox.c.status).where(outbox.c.aggregate_id == result.claim_id)
                        )
                    }
                if states == {"done"}:
                    break
                assert asyncio.get_running_loop().time() < deadline, states
                await asyncio.sleep(0.05)  # polling with a deadline
        finally:
            dispatcher.stop()
            await runner
            await http.aclose()
        assert failures["left"] == 0
        return result.claim_id

    claim_id = asyncio.run(scenario())
    assert get_claim(loop_hub.db, claim_id).status == "in_approval"
