"""A race through the group commit on PostgreSQL with its four writers: hundreds of
submissions, re-sent submissions, decisions and re-sent decisions at once. Nothing fails,
and afterwards every invariant of the ledger holds."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select
from support.claims import one_line_claim

from finoa.security.audit import verify_chain
from finoa.services.approvals import task_decision
from finoa.services.claims import claim_submission
from finoa.services.context import Hub
from finoa.store.tables import approval_tasks, audit_events, claims, inbox, outbox, vouchers

FIRST_WAVE = 150
SECOND_WAVE = 150


def submission(n: int) -> Any:
    return one_line_claim(
        f"RACE-{n:04}",
        applicant_id="E0031",
        department_id="D04",
        category="meeting",
        amount="6200.00" if n % 5 == 0 else f"{100 + n}.50",  # every fifth needs the FD too
        expense_date="2026-11-12",
    )


async def submit(hub: Hub, n: int, message_id: str) -> Any:
    command = claim_submission(hub, submission(n), "oa", message_id)
    return await hub.commands.run(command, actor="oa:race")


async def decide(hub: Hub, task: Any, approve: bool) -> Any:
    command = task_decision(
        hub, task.id, task.assignee_id, approve, "ok" if approve else "no", "oa", f"d-{task.id}"
    )
    return await hub.commands.run(command, actor=f"employee:{task.assignee_id}")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_hundreds_of_mixed_commands_race_through_the_group_commit(hub: Hub) -> None:
    assert hub.commands.writers == 4

    async def first_wave() -> list[Any]:
        jobs = [submit(hub, n, f"s-{n}") for n in range(FIRST_WAVE)]
        jobs += [submit(hub, n, f"s-{n}") for n in range(0, FIRST_WAVE, 3)]  # re-sent
        results = await asyncio.gather(*jobs, return_exceptions=True)
        await hub.commands.close()  # its writers belong to this event loop
        return results

    first = asyncio.run(first_wave())
    assert [r for r in first if isinstance(r, BaseException)] == []
    assert sum(not r.duplicate for r in first) == FIRST_WAVE

    with hub.db.engine.connect() as conn:
        pending = conn.execute(
            select(approval_tasks, claims.c.total_fen)
            .join(claims, claims.c.id == approval_tasks.c.claim_id)
            .where(approval_tasks.c.status == "pending")
            .order_by(approval_tasks.c.id)
        ).all()
    assert len(pending) == FIRST_WAVE
    rejected = len(range(0, FIRST_WAVE, 7))
    # approved by the manager, but from 5,000 yuan the finance director decides too
    needs_fd = sum(1 for i, t in enumerate(pending) if i % 7 and t.total_fen >= 500_000)
    assert needs_fd > 0

    async def second_wave() -> list[Any]:
        jobs = [decide(hub, task, approve=i % 7 != 0) for i, task in enumerate(pending)]
        jobs += [decide(hub, task, approve=i % 7 != 0) for i, task in enumerate(pending[::4])]
        jobs += [submit(hub, FIRST_WAVE + n, f"s-{FIRST_WAVE + n}") for n in range(SECOND_WAVE)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        await hub.commands.close()
        return results

    second = asyncio.run(second_wave())
    assert len(second) >= 300
    assert [r for r in second if isinstance(r, BaseException)] == []

    with hub.db.engine.connect() as conn:
        claim_rows = conn.execute(select(claims)).all()
        voucher_rows = conn.execute(select(vouchers)).all()
        task_rows = conn.execute(select(approval_tasks)).all()
        inbox_ids = conn.execute(select(inbox.c.message_id)).scalars().all()
        events = [
            dict(r._mapping)
            for r in conn.execute(select(audit_events).order_by(audit_events.c.seq))
        ]
        keys = conn.execute(select(func.count(), func.count(outbox.c.idempotency_key.distinct())))
        outbox_rows, distinct_keys = keys.one()

    assert len(claim_rows) == FIRST_WAVE + SECOND_WAVE
    assert len({(c.source, c.external_id, c.version) for c in claim_rows}) == len(claim_rows)
    statuses = Counter(c.status for c in claim_rows)
    assert statuses["rejected"] == rejected
    assert statuses["approved"] == FIRST_WAVE - rejected - needs_fd
    assert statuses["in_approval"] == needs_fd + SECOND_WAVE

    # one voucher per approved claim, numbered 1..N without gaps or repeats in its month
    assert sorted(v.claim_id for v in voucher_rows) == sorted(
        c.id for c in claim_rows if c.status == "approved"
    )
    by_period: dict[str, list[int]] = {}
    for v in voucher_rows:
        by_period.setdefault(f"{v.period}/{v.word}", []).append(v.number)
    for numbers in by_period.values():
        assert sorted(numbers) == list(range(1, len(numbers) + 1))

    decided = Counter(t.status for t in task_rows)
    assert decided["approved"] == FIRST_WAVE - rejected
    assert decided["rejected"] == rejected
    assert decided["pending"] == needs_fd + SECOND_WAVE
    assert len(inbox_ids) == len(set(inbox_ids)) == FIRST_WAVE + SECOND_WAVE + FIRST_WAVE
    assert outbox_rows == distinct_keys
    report = verify_chain(events)
    assert report.ok, report
