"""Budgets are locked in one order across a whole transaction, so writers never deadlock on
them: a group commit that already holds a budget row does not take one below it in a later
command; that command runs in the next transaction instead (`UnitOfWork.take_in_order`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from support.budgets import SUBMITTED_AT, budget, load_budgets, meeting_claim

from finoa.services.claims import SubmitResult, claim_submission
from finoa.services.context import Hub
from finoa.store.errors import LocksOutOfOrder
from finoa.store.group_commit import GroupCommit, _Queued
from finoa.store.tables import budgets
from finoa.store.uow import Database, UnitOfWork

WAIT_SECONDS = 20  # a scenario that never reaches its next point fails instead of hanging


def queued(command: Callable[[UnitOfWork], Any]) -> _Queued:
    return _Queued(command, "oa:test", None)  # type: ignore[arg-type]  # execute() never answers


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_group_does_not_lock_a_budget_below_one_it_holds(hub: Hub) -> None:
    """The classic deadlock, staged: a group holds the company budget (a Sales claim), a lone
    Marketing claim holds the Marketing budget and goes on to wait for the company's; the
    group's next command, another Marketing claim, would now wait for the Marketing budget.
    It steps back instead and runs after the group's commit: no deadlock, nothing refused,
    all applied."""
    hub.db.clock = lambda: SUBMITTED_AT
    marketing, company = load_budgets(
        hub, "org_unit,D04,,2026,50000,block\norg_unit,D00,,2026,100000,warn\n"
    ).budget_ids
    assert marketing < company  # the Marketing budget comes first in the lock order
    sales_held = threading.Event()
    marketing_held = threading.Event()
    sales = claim_submission(
        hub,
        meeting_claim("ORD-S", "300.00", applicant_id="E0011", department_id="D02"),
        "oa",
        "m-s",
    )

    def sales_then_pause(uow: UnitOfWork) -> SubmitResult:
        result = sales(uow)  # holds the company budget's row until the group commits
        sales_held.set()
        assert marketing_held.wait(WAIT_SECONDS)
        return result

    lone = claim_submission(hub, meeting_claim("ORD-M2", "100.00"), "oa", "m-2")

    def marketing_first(uow: UnitOfWork) -> SubmitResult:
        # the lone claim holds the Marketing budget before the group's next command runs;
        # its own occupation then waits for the company budget, which the group holds
        uow.conn.execute(select(budgets.c.id).where(budgets.c.id == marketing).with_for_update())
        marketing_held.set()
        return lone(uow)

    group_batch = [
        queued(sales_then_pause),
        queued(claim_submission(hub, meeting_claim("ORD-M1", "200.00"), "oa", "m-1")),
    ]
    lone_batch = [queued(marketing_first)]
    commands = GroupCommit(hub.db, writers=2)
    answers: dict[str, list[Any]] = {}

    def run(name: str, batch: list[_Queued]) -> None:
        answers[name] = commands.execute(batch)

    group = threading.Thread(target=run, args=("group", group_batch))
    group.start()
    assert sales_held.wait(WAIT_SECONDS)
    alone = threading.Thread(target=run, args=("lone", lone_batch))
    alone.start()
    group.join(WAIT_SECONDS)
    alone.join(WAIT_SECONDS)
    assert not group.is_alive() and not alone.is_alive()

    outcomes = answers["group"] + answers["lone"]
    assert [o.error for o in outcomes] == [None, None, None]
    assert all(isinstance(o.value, SubmitResult) and not o.value.duplicate for o in outcomes)
    figures = commands.figures()
    assert figures["conflict_reruns"] == 0  # no deadlock was detected and re-run
    assert figures["lock_order_reruns"] == 1  # the group's Marketing claim stepped back once
    assert figures["batches"] == 3 and figures["commands"] == 3
    assert budget(hub, marketing).occupied_fen == 30_000
    assert budget(hub, company).occupied_fen == 60_000


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_lock_order_binds_later_steps_only(db: Database) -> None:
    """The rule, on its own: steps that ended well hold their rows; a failed step holds none;
    an inner step's rows are its outer step's; the first step and work outside steps are free."""
    with db.uow("t") as uow:
        assert uow.take_in_order("budgets", [9, 3]) == [3, 9]  # outside steps: only sorted
        with uow.step("t"):
            assert uow.take_in_order("budgets", [7, 5]) == [5, 7]
            assert uow.take_in_order("budgets", [2]) == [2]  # the same step: sorting is its own
        with pytest.raises(LocksOutOfOrder, match="budgets 1 comes before 7"), uow.step("t"):
            uow.take_in_order("budgets", [1, 8])
        with pytest.raises(RuntimeError), uow.step("t"):
            uow.take_in_order("budgets", [20])
            raise RuntimeError("undone: row 20 is not held")
        with uow.step("t"):
            assert uow.take_in_order("budgets", [5, 7, 10]) == [5, 7, 10]  # held or above
            assert uow.take_in_order("vouchers", [1]) == [1]  # another resource, its own order
            with uow.step("t"):
                uow.take_in_order("budgets", [15])
        with pytest.raises(LocksOutOfOrder, match="budgets 12 comes before 15"), uow.step("t"):
            uow.take_in_order("budgets", [12])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_embedded_database_has_no_lock_order(db: Database) -> None:
    with db.uow("t") as uow:
        with uow.step("t"):
            uow.take_in_order("budgets", [7])
        with uow.step("t"):
            assert uow.take_in_order("budgets", [1, 7]) == [1, 7]  # one writer: nothing to order


@pytest.fixture
def db(db_url: str) -> Any:
    database = Database.connect(db_url)
    yield database
    database.dispose()
