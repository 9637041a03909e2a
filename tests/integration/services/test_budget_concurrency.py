"""Never overspent under concurrency: hundreds of submissions race for one `block` budget
through the group commit on PostgreSQL (four writers, real concurrent transactions), then
rejections that give budget back race with new submissions. Afterwards the budget's balance
is not negative, its row equals its ledger, and it holds exactly what the live claims hold;
and no writer ever deadlocked on the budgets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select
from support.budgets import SUBMITTED_AT, budget, load_budgets, meeting_claim

from finoa.domain.budgets import BudgetExceeded
from finoa.services.approvals import task_decision
from finoa.services.budgets import ledger_mismatches
from finoa.services.claims import claim_submission
from finoa.services.context import Hub
from finoa.store.tables import approval_tasks, budget_movements, claims

FIRST_WAVE = 240
SECOND_WAVE = 100
BUDGET_YUAN = 50_000


def amount_fen(n: int) -> int:
    return 10_000 + (n * 7_919) % 80_000  # 100 to 900 元, varied


def submission(n: int) -> Any:
    fen = amount_fen(n)
    # every fourth claim comes from Sales (D02): it counts only against the unit above
    where = {"applicant_id": "E0011", "department_id": "D02"} if n % 4 == 3 else {}
    return meeting_claim(f"CON-{n:04}", f"{fen // 100}.{fen % 100:02}", **where)


async def submit(hub: Hub, n: int) -> Any:
    command = claim_submission(hub, submission(n), "oa", f"s-{n}")
    return await hub.commands.run(command, actor="oa:race")


async def reject(hub: Hub, task: Any) -> Any:
    command = task_decision(hub, task.id, task.assignee_id, False, "no", "oa", f"d-{task.id}")
    return await hub.commands.run(command, actor=f"employee:{task.assignee_id}")


def live_claims_fen(hub: Hub, department: str | None = None) -> int:
    stmt = select(func.coalesce(func.sum(claims.c.total_fen), 0)).where(
        claims.c.status == "in_approval"
    )
    if department is not None:
        stmt = stmt.where(claims.c.department_id == department)
    with hub.db.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def assert_invariant(hub: Hub, marketing: int, company: int) -> None:
    assert ledger_mismatches(hub.db) == []
    held = budget(hub, marketing)
    assert held.balance_fen >= 0
    assert held.occupied_fen == live_claims_fen(hub, "D04")
    assert budget(hub, company).occupied_fen == live_claims_fen(hub)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_hundreds_of_submissions_never_overspend_a_block_budget(hub: Hub) -> None:
    assert hub.commands.writers == 4
    hub.db.clock = lambda: SUBMITTED_AT
    marketing, company = load_budgets(
        hub, f"org_unit,D04,,2026,{BUDGET_YUAN},block\norg_unit,D00,meeting,2026,1,warn\n"
    ).budget_ids

    async def first_wave() -> list[Any]:
        results = await asyncio.gather(
            *(submit(hub, n) for n in range(FIRST_WAVE)), return_exceptions=True
        )
        await hub.commands.close()  # its writers belong to this event loop
        return results

    first = asyncio.run(first_wave())
    other = [r for r in first if isinstance(r, BaseException) and not isinstance(r, BudgetExceeded)]
    assert other == []
    accepted = [n for n, r in enumerate(first) if not isinstance(r, BaseException)]
    refused = [n for n, r in enumerate(first) if isinstance(r, BudgetExceeded)]
    marketing_accepted = sum(amount_fen(n) for n in accepted if n % 4 != 3)
    assert refused, "the wave asks for more than the budget holds"
    assert all(n % 4 != 3 for n in refused)  # Sales has no block budget
    assert marketing_accepted <= BUDGET_YUAN * 100
    held = budget(hub, marketing)
    assert held.occupied_fen == marketing_accepted
    # the balance only went down in this wave: each refused claim was larger than what is left
    assert all(amount_fen(n) > held.balance_fen for n in refused)
    with hub.db.engine.connect() as conn:
        occupying = conn.execute(
            select(func.count()).where(
                budget_movements.c.budget_id == marketing, budget_movements.c.kind == "occupy"
            )
        ).scalar_one()
    assert occupying == len([n for n in accepted if n % 4 != 3])
    assert_invariant(hub, marketing, company)

    with hub.db.engine.connect() as conn:
        pending = conn.execute(
            select(approval_tasks)
            .join(claims, claims.c.id == approval_tasks.c.claim_id)
            .where(approval_tasks.c.status == "pending", claims.c.department_id == "D04")
            .order_by(approval_tasks.c.id)
        ).all()

    async def second_wave() -> list[Any]:
        jobs = [reject(hub, task) for task in pending[::2]]
        jobs += [submit(hub, FIRST_WAVE + n) for n in range(SECOND_WAVE)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        await hub.commands.close()
        return results

    second = asyncio.run(second_wave())
    other = [
        r for r in second if isinstance(r, BaseException) and not isinstance(r, BudgetExceeded)
    ]
    assert other == []
    assert all(r.claim_status == "rejected" for r in second[: len(pending[::2])])
    assert_invariant(hub, marketing, company)
    # budgets are locked in one order across each shared transaction: no writer waited for
    # a deadlock to be detected and run again
    assert hub.commands.figures()["conflict_reruns"] == 0
