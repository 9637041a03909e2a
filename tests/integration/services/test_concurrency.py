"""Concurrent deliveries of the same claim or decision (at-least-once senders, racing
resyncs) create it once, on SQLite and on PostgreSQL with real concurrent transactions."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, select
from support.claims import one_line_claim

from finoa.schemas import ClaimSubmission
from finoa.services.approvals import DecisionResult, decide_task
from finoa.services.claims import SubmitResult, submit_claim
from finoa.services.context import Hub
from finoa.services.queries import get_claim
from finoa.store.tables import claims, inbox, vouchers

WORKERS = 8


def race(count: int, work: Any) -> list[Any]:
    """Run `work(i)` in `count` threads released together."""
    gate = threading.Barrier(count)

    def run(i: int) -> Any:
        gate.wait()
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def submission(external_id: str, amount: str = "880.00") -> ClaimSubmission:
    return one_line_claim(
        external_id,
        applicant_id="E0031",
        department_id="D04",
        category="meeting",
        amount=amount,
        expense_date="2026-11-12",
        title="展会 trade fair",
    )


def test_the_same_claim_submitted_at_once_is_recorded_once(hub: Hub) -> None:
    def submit(i: int) -> SubmitResult:
        # half re-send the same message, half are resyncs with new message ids
        message_id = "m-same" if i % 2 else f"m-{i}"
        return submit_claim(
            hub, submission("RACE-1"), source="oa", actor="t", message_id=message_id
        )

    results = race(WORKERS, submit)
    assert len({r.claim_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    with hub.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(claims)).scalar_one() == 1
        recorded = conn.execute(select(inbox.c.message_id)).scalars().all()
    assert sorted(recorded) == sorted({"m-same", *(f"m-{i}" for i in range(0, WORKERS, 2))})


def test_the_same_decision_delivered_at_once_is_applied_once(hub: Hub) -> None:
    claim_id = submit_claim(hub, submission("RACE-2"), source="oa", actor="t").claim_id
    task = get_claim(hub.db, claim_id).tasks[0]

    def decide(_: int) -> DecisionResult:
        return decide_task(
            hub,
            task.id,
            task.assignee_id,
            True,
            "同意",
            actor="t",
            source="oa",
            message_id=f"decision-{task.id}",
        )

    results = race(WORKERS, decide)
    assert sum(not r.duplicate for r in results) == 1
    assert {r.claim_status for r in results} == {"approved"}
    claim = get_claim(hub.db, claim_id)
    assert claim.status == "approved" and [t.status for t in claim.tasks] == ["approved"]
    with hub.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(vouchers)).scalar_one() == 1
