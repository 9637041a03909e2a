"""The budget invariant over random lives of claims, on SQLite and PostgreSQL.

Hypothesis draws sequences of submit / approve / reject / withdraw (a new version of the
document) / return to the applicant (退回) / resubmit / post / reverse (红冲). Each example
runs in a year of its own, with a `block` budget for Marketing (D04) and a `warn` budget for
the executive office's meetings (D00, the unit above). After every step:
- each budget row equals the sum of its ledger;
- the `block` budget never has a negative balance;
- both budgets hold exactly what the claims' states say: occupied = open and approved
  claims (a returned claim holds nothing until it is resubmitted), consumed = posted claims
  not reversed;
- a submission or resubmission was refused exactly when the `block` budget lacked room.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.budgets import (
    approve_all,
    budget,
    load_budgets,
    meeting_claim,
    post,
    reject,
    resubmit,
    return_to_applicant,
    reverse,
    submit,
)

from finoa.domain.budgets import BudgetExceeded
from finoa.services.budgets import ledger_mismatches
from finoa.services.context import Hub
from finoa.services.queries import get_claim

YEARS = itertools.count(2101)
BLOCK_YUAN = 6000
WARN_YUAN = 5000

amounts = st.integers(min_value=1, max_value=400_000)  # fen: up to 4,000 元
steps = st.one_of(
    st.tuples(st.just("submit"), amounts),
    st.tuples(st.just("approve"), st.integers(0, 50)),
    st.tuples(st.just("reject"), st.integers(0, 50)),
    st.tuples(st.just("withdraw"), st.integers(0, 50), amounts),
    st.tuples(st.just("return"), st.integers(0, 50)),
    st.tuples(st.just("resubmit"), st.integers(0, 50)),
    st.tuples(st.just("post"), st.integers(0, 50)),
    st.tuples(st.just("reverse"), st.integers(0, 50)),
)


@dataclass
class Claim:
    claim_id: str
    external_id: str
    version: int
    amount_fen: int
    state: str = "in_approval"  # in_approval / returned / approved / posted / reversed / released


@dataclass
class Model:
    hub: Hub
    year: int
    block_id: int
    warn_id: int
    claims: list[Claim] = field(default_factory=list)
    serial: int = 0

    def of(self, state: str, index: int) -> Claim | None:
        found = [c for c in self.claims if c.state == state]
        return found[index % len(found)] if found else None

    def submit(self, amount_fen: int, replacing: Claim | None = None) -> None:
        room = budget(self.hub, self.block_id).balance_fen
        if replacing is not None:
            room += replacing.amount_fen  # the old version's hold is given back first
            external_id, version = replacing.external_id, replacing.version + 1
        else:
            self.serial += 1
            external_id, version = f"HY-{self.year}-{self.serial}", 1
        amount = f"{amount_fen // 100}.{amount_fen % 100:02}"
        submission = meeting_claim(external_id, amount, version=version)
        try:
            result = submit(self.hub, submission)
        except BudgetExceeded as exc:
            assert room < amount_fen, f"refused with {room} fen of room for {amount_fen}"
            assert exc.extensions["budget"]["id"] == self.block_id
            assert exc.extensions["shortfall_fen"] == amount_fen - room
            return
        assert room >= amount_fen, f"accepted {amount_fen} fen with only {room} fen of room"
        if replacing is not None:
            replacing.state = "released"
        self.claims.append(Claim(result.claim_id, external_id, version, amount_fen))

    def step(self, action: tuple[object, ...]) -> None:
        name = action[0]
        if name == "submit":
            self.submit(int(action[1]))  # type: ignore[call-overload]
            return
        index = int(action[1])  # type: ignore[call-overload]
        wanted = {
            "approve": "in_approval",
            "reject": "in_approval",
            "withdraw": "in_approval",
            "return": "in_approval",
            "resubmit": "returned",
            "post": "approved",
            "reverse": "posted",
        }[str(name)]
        claim = self.of(wanted, index)
        if claim is None:
            return
        if name == "approve":
            assert approve_all(self.hub, claim.claim_id) == "approved"
            claim.state = "approved"
        elif name == "reject":
            reject(self.hub, claim.claim_id)
            claim.state = "released"
        elif name == "withdraw":
            self.submit(int(action[2]), replacing=claim)  # type: ignore[call-overload]
        elif name == "return":
            return_to_applicant(self.hub, claim.claim_id)
            claim.state = "returned"
        elif name == "resubmit":
            room = budget(self.hub, self.block_id).balance_fen
            try:
                resubmit(self.hub, claim.claim_id)
            except BudgetExceeded:
                assert room < claim.amount_fen, f"resubmission refused with {room} fen of room"
                return
            assert room >= claim.amount_fen, f"resubmitted with only {room} fen of room"
            claim.state = "in_approval"
        elif name == "post":
            post(self.hub, claim.claim_id)
            claim.state = "posted"
        else:
            reverse(self.hub, claim.claim_id)
            claim.state = "reversed"

    def check(self) -> None:
        assert ledger_mismatches(self.hub.db) == []
        occupied = sum(c.amount_fen for c in self.claims if c.state in ("in_approval", "approved"))
        consumed = sum(c.amount_fen for c in self.claims if c.state == "posted")
        for budget_id in (self.block_id, self.warn_id):
            totals = budget(self.hub, budget_id)
            assert (totals.occupied_fen, totals.consumed_fen) == (occupied, consumed)
        assert budget(self.hub, self.block_id).balance_fen >= 0
        for claim in self.claims:
            status = get_claim(self.hub.db, claim.claim_id).status.value
            expected = {"released": ("rejected", "withdrawn"), "reversed": ("posted",)}
            assert status in expected.get(claim.state, (claim.state,))


def run(hub: Hub, actions: list[tuple[object, ...]]) -> None:
    year = next(YEARS)
    hub.db.clock = lambda: datetime(year, 5, 20, 3, 0, tzinfo=UTC)
    block_id, warn_id = load_budgets(
        hub,
        f"org_unit,D04,,{year},{BLOCK_YUAN},block\norg_unit,D00,meeting,{year}-Q2,{WARN_YUAN},warn\n",
    ).budget_ids
    model = Model(hub, year, block_id, warn_id)
    for action in actions:
        model.step(action)
        model.check()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=st.lists(steps, min_size=1, max_size=14))
def test_the_budget_invariant_holds_on_sqlite(hub: Hub, actions: list[tuple[object, ...]]) -> None:
    run(hub, actions)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=st.lists(steps, min_size=1, max_size=14))
def test_the_budget_invariant_holds_on_postgresql(
    hub: Hub, actions: list[tuple[object, ...]]
) -> None:
    run(hub, actions)
