"""Versions of one external document (same source and external id), on SQLite and PostgreSQL.

A higher version withdraws the earlier claim while it is not approved yet and becomes a claim
of its own; once the earlier claim is approved or posted it is refused, and so is a version
not above the latest. Racing versions leave exactly one live claim.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select
from support.claims import decide_by_message, one_line_claim, row_counts

from finoa.domain.claim import LIVE_STATUSES
from finoa.domain.errors import Conflict, DomainError
from finoa.schemas import ClaimSubmission
from finoa.services.approvals import decide_task
from finoa.services.claims import SubmitResult, submit_claim
from finoa.services.context import Hub
from finoa.services.queries import get_claim
from finoa.services.vouchers import record_voucher_posted
from finoa.store.tables import (
    approval_tasks,
    audit_events,
    claims,
    inbox,
    outbox,
    vouchers,
    workflow_instances,
)

SOURCE = "oa"


def version(external_id: str, number: int, amount: str = "6000.00") -> ClaimSubmission:
    """Version `number` of a document; each version claims a different amount."""
    return one_line_claim(
        external_id,
        applicant_id="E0011",
        department_id="D02",
        category="travel",
        amount=f"{float(amount) + number:.2f}",
        title="北京出差 Beijing trip",
        version=number,
    )


def submit(hub: Hub, body: ClaimSubmission, message_id: str | None = None) -> SubmitResult:
    return submit_claim(hub, body, source=SOURCE, actor="t", message_id=message_id)


def pending(hub: Hub, claim_id: str) -> Any:
    (task,) = [t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending"]
    return task


def approve_all(hub: Hub, claim_id: str) -> None:
    while get_claim(hub.db, claim_id).status == "in_approval":
        task = pending(hub, claim_id)
        decide_task(hub, task.id, task.assignee_id, True, "同意", actor="t")


def counts(hub: Hub) -> dict[str, int]:
    return row_counts(hub, (claims, approval_tasks, outbox, audit_events, inbox, vouchers))


def messages(hub: Hub, claim_id: str, action: str) -> list[dict[str, Any]]:
    with hub.db.engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.payload)
            .where(outbox.c.aggregate_id == claim_id, outbox.c.action == action)
            .order_by(outbox.c.id)
        )
        return [r.payload for r in rows]


def audit_actions(hub: Hub, object_id: str) -> list[tuple[str, dict[str, Any]]]:
    with hub.db.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.action, audit_events.c.data)
            .where(audit_events.c.object_id == object_id)
            .order_by(audit_events.c.seq)
        )
        return [(r.action, r.data) for r in rows]


def workflow(hub: Hub, claim_id: str) -> Any:
    with hub.db.engine.connect() as conn:
        return conn.execute(
            select(workflow_instances).where(workflow_instances.c.claim_id == claim_id)
        ).one()


def test_higher_version_withdraws_the_open_claim_and_becomes_a_new_claim(hub: Hub) -> None:
    v1 = submit(hub, version("DOC-1", 1), message_id="v1").claim_id
    # two levels (manager, then finance director): the first is decided, the second pending
    manager = pending(hub, v1)
    decide_task(hub, manager.id, manager.assignee_id, True, "同意", actor="t")
    director = pending(hub, v1)
    state_before = workflow(hub, v1).state

    v2 = submit(hub, version("DOC-1", 2), message_id="v2")
    assert not v2.duplicate and v2.claim_id != v1

    old = get_claim(hub.db, v1)
    reason = f"superseded by version 2 ({v2.claim_id})"
    assert (old.status, old.reason) == ("withdrawn", reason)
    assert {t.id: t.status for t in old.tasks} == {manager.id: "approved", director.id: "withdrawn"}
    new = get_claim(hub.db, v2.claim_id)
    assert (new.status, new.version, new.total_fen) == ("in_approval", 2, 600200)
    assert [t.status for t in new.tasks] == ["pending"]

    # the OA: the withdrawn task's todo is closed, the earlier claim's new status written back
    todos = [(m["op"], m["task_id"]) for m in messages(hub, v1, "todo.push")]
    assert todos == [
        ("create", manager.id),
        ("close", manager.id),
        ("create", director.id),
        ("close", director.id),
    ]
    (*_, withdrawn) = messages(hub, v1, "status.writeback")
    assert (withdrawn["status"], withdrawn["reason"]) == ("withdrawn", reason)
    # the workflow instance ended without a decision in the engine
    ended = workflow(hub, v1)
    assert ended.outcome == "withdrawn" and ended.state == state_before
    # audited: the task, the claim, and the new claim naming the one it supersedes
    assert (
        "task.withdrawn",
        {"claim_id": v1, "assignee_id": director.assignee_id, "reason": reason},
    ) in audit_actions(hub, director.id)
    assert ("claim.status_changed", {"status": "withdrawn", "reason": reason}) in audit_actions(
        hub, v1
    )
    (submitted,) = [d for a, d in audit_actions(hub, v2.claim_id) if a == "claim.submitted"]
    assert submitted["supersedes"] == [v1] and submitted["version"] == 2


def test_decision_on_a_task_of_a_withdrawn_claim_is_refused(hub: Hub) -> None:
    v1 = submit(hub, version("DOC-2", 1)).claim_id
    task = pending(hub, v1)
    submit(hub, version("DOC-2", 2))
    before = counts(hub)
    for approve, comment in ((True, "同意"), (False, "不同意 no")):
        with pytest.raises(Conflict) as refused:
            decide_by_message(hub, task, approve, comment, f"late-{approve}")
        assert refused.value.field == "task_id"
        assert (
            "withdrawn" in refused.value.message
            and "superseded by version 2" in refused.value.message
        )
    assert counts(hub) == before
    assert get_claim(hub.db, v1).status == "withdrawn"


def test_new_version_of_an_approved_or_posted_claim_is_refused_naming_the_voucher(
    hub: Hub,
) -> None:
    v1 = submit(hub, version("DOC-3", 1, amount="300.00")).claim_id
    approve_all(hub, v1)
    voucher = get_claim(hub.db, v1).voucher
    assert voucher is not None
    before = counts(hub)
    with pytest.raises(Conflict) as refused:
        submit(hub, version("DOC-3", 2, amount="300.00"), message_id="v2")
    assert refused.value.field == "version"
    message = refused.value.message
    assert "already approved" in message and voucher.voucher_no in message and "红冲" in message
    assert v1 in message
    assert counts(hub) == before

    with hub.db.uow("erp") as uow:
        record_voucher_posted(uow, voucher.id, {"erp_voucher_no": "ERP-77", "erp_id": "x"})
        uow.commit()
    before = counts(hub)
    with pytest.raises(Conflict) as refused:
        submit(hub, version("DOC-3", 3, amount="300.00"))
    assert "already posted" in refused.value.message and voucher.voucher_no in refused.value.message
    assert counts(hub) == before
    assert get_claim(hub.db, v1).status == "posted"


def test_version_not_above_the_latest_is_refused_stating_the_current_version(hub: Hub) -> None:
    v2 = submit(hub, version("DOC-4", 2)).claim_id
    before = counts(hub)
    with pytest.raises(Conflict) as lower:
        submit(hub, version("DOC-4", 1), message_id="late-v1")
    assert lower.value.field == "version"
    assert "version 1 is not newer" in lower.value.message
    assert "the current version is 2" in lower.value.message
    with pytest.raises(Conflict) as changed:  # the same version with other content
        submit(hub, version("DOC-4", 2, amount="1.00"))
    assert changed.value.field == "version" and "current version is 2" in changed.value.message
    assert counts(hub) == before
    # the same version with the same content is a duplicate
    again = submit(hub, version("DOC-4", 2))
    assert again.duplicate and again.claim_id == v2
    assert get_claim(hub.db, v2).status == "in_approval"


def test_a_resent_superseded_version_is_a_duplicate_and_revives_nothing(hub: Hub) -> None:
    v1 = submit(hub, version("DOC-5", 1)).claim_id
    v2 = submit(hub, version("DOC-5", 2)).claim_id
    before = counts(hub)
    again = submit(hub, version("DOC-5", 1))
    assert again.duplicate and again.claim_id == v1
    assert counts(hub) == before
    assert get_claim(hub.db, v1).status == "withdrawn"
    assert get_claim(hub.db, v2).status == "in_approval"


def test_new_version_after_a_rejection_is_a_new_claim(hub: Hub) -> None:
    v1 = submit(hub, version("DOC-6", 1)).claim_id
    task = pending(hub, v1)
    decide_task(hub, task.id, task.assignee_id, False, "缺发票 missing invoice", actor="t")
    v2 = submit(hub, version("DOC-6", 2))
    assert not v2.duplicate
    old = get_claim(hub.db, v1)
    assert (old.status, old.reason) == ("rejected", "缺发票 missing invoice")
    assert get_claim(hub.db, v2.claim_id).status == "in_approval"
    assert [m["status"] for m in messages(hub, v1, "status.writeback")] == [
        "submitted",
        "in_approval",
        "rejected",
    ]


def test_racing_versions_leave_exactly_one_live_claim(hub: Hub) -> None:
    """Submissions of v1, v2 and v3 of one document from threads released together: the
    transactions run concurrently on PostgreSQL (SQLite takes them one at a time)."""
    numbers = [1, 2, 3] * 3
    gate = threading.Barrier(len(numbers))

    def send(i: int) -> SubmitResult | DomainError:
        body = version("DOC-RACE", numbers[i])
        gate.wait()
        try:
            return submit(hub, body, message_id=f"race-{i}")
        except DomainError as refused:
            return refused

    with ThreadPoolExecutor(len(numbers)) as pool:
        outcomes = list(pool.map(send, range(len(numbers))))

    refusals = [o for o in outcomes if isinstance(o, DomainError)]
    assert all(isinstance(o, Conflict) and o.field == "version" for o in refusals), refusals
    accepted = [o for o in outcomes if isinstance(o, SubmitResult)]
    with hub.db.engine.connect() as conn:
        rows = conn.execute(
            select(claims.c.id, claims.c.version, claims.c.status).where(
                claims.c.external_id == "DOC-RACE"
            )
        ).all()
        pending_tasks = (
            conn.execute(
                select(approval_tasks.c.claim_id).where(approval_tasks.c.status == "pending")
            )
            .scalars()
            .all()
        )
    live = [r for r in rows if r.status in LIVE_STATUSES]
    assert [(r.version, r.status) for r in live] == [(3, "in_approval")], rows
    assert {r.status for r in rows if r.id != live[0].id} <= {"withdrawn"}
    assert set(pending_tasks) == {live[0].id}
    # every v3 submission resolved to the one live claim
    v3 = {o.claim_id for o, n in zip(outcomes, numbers, strict=True) if n == 3}
    assert v3 == {live[0].id}
    assert {o.claim_id for o in accepted} == {r.id for r in rows}
