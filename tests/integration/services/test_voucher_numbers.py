"""Voucher numbers are allocated at commit: concurrent transactions that each generate a
voucher do not wait on each other's period counter, numbers stay gap-free and contiguous
after rollbacks, and everything that carries a voucher's number carries the one it got."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select
from support.claims import one_line_claim

from finoa.domain.errors import Conflict
from finoa.services.approvals import DecisionResult, task_decision
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.queries import get_claim
from finoa.services.vouchers import record_voucher_posted, reverse_voucher
from finoa.store.group_commit import GroupCommit
from finoa.store.tables import audit_events, outbox, voucher_entries, voucher_sequences, vouchers
from finoa.store.uow import UnitOfWork

WAIT_SECONDS = 20  # how long the second transaction may take before it counts as blocked


def pending_task(hub: Hub, n: int) -> Any:
    """A submitted claim one approval away from its voucher; its pending task."""
    submission = one_line_claim(
        f"VNO-{n}",
        applicant_id="E0031",
        department_id="D04",
        category="meeting",
        amount=f"{300 + n}.00",
        expense_date="2026-11-12",
    )
    claim_id = submit_claim(hub, submission, source="oa", actor="t").claim_id
    (task,) = get_claim(hub.db, claim_id).tasks
    return task


def approval(hub: Hub, task: Any) -> Any:
    return task_decision(hub, task.id, task.assignee_id, True, "同意")


def numbers_by_voucher(hub: Hub) -> dict[str, tuple[int, str]]:
    with hub.db.engine.connect() as conn:
        rows = conn.execute(select(vouchers.c.id, vouchers.c.number, vouchers.c.voucher_no))
        return {r.id: (r.number, r.voucher_no) for r in rows}


def carried_numbers(hub: Hub) -> tuple[dict[str, str], dict[str, str]]:
    """The voucher number each posting's outbox payload and each voucher.created event
    carries, by voucher id."""
    with hub.db.engine.connect() as conn:
        postings = conn.execute(
            select(outbox.c.aggregate_id, outbox.c.payload).where(outbox.c.action == "voucher.post")
        )
        events = conn.execute(
            select(audit_events.c.object_id, audit_events.c.data).where(
                audit_events.c.action == "voucher.created"
            )
        )
        return (
            {r.aggregate_id: r.payload["hub_voucher_no"] for r in postings},
            {r.object_id: r.data["voucher_no"] for r in events},
        )


def assert_numbers_carried(hub: Hub) -> None:
    numbers = {vid: no for vid, (_, no) in numbers_by_voucher(hub).items()}
    in_postings, in_events = carried_numbers(hub)
    assert in_postings == numbers
    assert in_events == numbers


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_transaction_holding_a_voucher_does_not_block_another(hub: Hub) -> None:
    """The first transaction generates its voucher and stays open; a second one generates
    its own and commits meanwhile. The counter row is locked only at commit, so the second
    is not held up, takes the first number, and the first gets the next one."""
    first_task, second_task = pending_task(hub, 1), pending_task(hub, 2)
    second_result: DecisionResult | None = None
    with ThreadPoolExecutor(1) as pool, hub.db.uow("t") as first:
        assert approval(hub, first_task)(first).claim_status == "approved"
        second = pool.submit(hub.db.perform, approval(hub, second_task), actor="t")
        try:
            second_result = second.result(timeout=WAIT_SECONDS)
        except TimeoutError:
            pass  # leaving the block rolls the first back, which lets the second go on
        else:
            first.commit()
    # before numbers were allocated at commit, the second waited for the first's COMMIT
    assert second_result is not None, "the second transaction waited for the first"
    assert second_result.claim_status == "approved"
    first_voucher = get_claim(hub.db, first_task.claim_id).voucher
    second_voucher = get_claim(hub.db, second_task.claim_id).voucher
    assert first_voucher is not None and second_voucher is not None
    assert second_voucher.voucher_no == "记-0001"
    assert first_voucher.voucher_no == "记-0002"
    assert_numbers_carried(hub)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_approvals_number_every_voucher_once(hub: Hub) -> None:
    """Many approvals at once on real concurrent transactions: numbers 1..n, each once."""
    tasks = [pending_task(hub, n) for n in range(12)]
    gate = threading.Barrier(len(tasks))

    def approve(task: Any) -> DecisionResult:
        gate.wait()
        return hub.db.perform(approval(hub, task), actor="t")

    with ThreadPoolExecutor(len(tasks)) as pool:
        results = list(pool.map(approve, tasks))
    assert {r.claim_status for r in results} == {"approved"}
    numbers = sorted(n for n, _ in numbers_by_voucher(hub).values())
    assert numbers == list(range(1, len(tasks) + 1))
    assert_numbers_carried(hub)


def test_a_rolled_back_transaction_leaves_no_gap(hub: Hub) -> None:
    tasks = [pending_task(hub, n) for n in range(3)]
    with hub.db.uow("t") as uow:
        approval(hub, tasks[0])(uow)  # generated, never committed
    assert numbers_by_voucher(hub) == {}
    for task in tasks[1:]:
        hub.db.perform(approval(hub, task), actor="t")
    assert sorted(numbers_by_voucher(hub).values()) == [(1, "记-0001"), (2, "记-0002")]
    # the rolled-back claim is still pending and its approval now takes the next number
    hub.db.perform(approval(hub, tasks[0]), actor="t")
    voucher = get_claim(hub.db, tasks[0].claim_id).voucher
    assert voucher is not None and voucher.voucher_no == "记-0003"
    assert_numbers_carried(hub)


def test_a_command_undone_in_a_group_commit_leaves_no_gap(hub: Hub) -> None:
    """Three approvals share one transaction; the middle one raises after its voucher was
    generated. Its savepoint takes the voucher back: the other two get 1 and 2, and their
    entries are written under their own vouchers."""
    tasks = [pending_task(hub, n) for n in range(3)]
    group = GroupCommit(hub.db, writers=1)  # one writer: the three form one batch

    def fails_after_its_voucher(uow: UnitOfWork) -> None:
        approval(hub, tasks[1])(uow)
        raise Conflict("task_id", "refused after the voucher was generated")

    async def batch() -> list[Any]:
        jobs = [
            group.run(approval(hub, tasks[0]), actor="t"),
            group.run(fails_after_its_voucher, actor="t"),
            group.run(approval(hub, tasks[2]), actor="t"),
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        await group.close()
        return results

    first, failed, third = asyncio.run(batch())
    assert isinstance(failed, Conflict)
    assert first.claim_status == third.claim_status == "approved"
    assert group.figures()["batches"] == 1  # they did share the transaction
    numbers = numbers_by_voucher(hub)
    assert sorted(numbers.values()) == [(1, "记-0001"), (2, "记-0002")]
    assert get_claim(hub.db, tasks[1].claim_id).status == "in_approval"
    with hub.db.engine.connect() as conn:
        owners = set(conn.execute(select(voucher_entries.c.voucher_id)).scalars())
        (last,) = conn.execute(select(voucher_sequences.c.last_number)).scalars()
    assert owners == set(numbers)
    assert last == 2
    assert_numbers_carried(hub)


def test_a_reversal_takes_the_next_number_and_carries_it(hub: Hub) -> None:
    task = pending_task(hub, 1)
    hub.db.perform(approval(hub, task), actor="t")
    voucher = get_claim(hub.db, task.claim_id).voucher
    assert voucher is not None
    hub.db.perform(
        lambda uow: record_voucher_posted(
            uow, voucher.id, {"erp_voucher_no": "ERP-1", "erp_id": "1"}
        ),
        actor="erp",
    )
    reversal_id = reverse_voucher(hub, voucher.id, actor="t")
    assert numbers_by_voucher(hub)[reversal_id] == (2, "记-0002")
    assert_numbers_carried(hub)
