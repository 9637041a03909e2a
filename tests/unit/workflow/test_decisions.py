"""Decisions through the engine's API: allowed actions, assignees, countersign and or-sign."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from finoa.workflow import (
    Action,
    ActorNotAssigned,
    ApprovalEngine,
    Decision,
    EngineState,
    StepMode,
    UnsupportedAction,
)
from finoa.workflow.decisions import PATTERN_ACTIONS, StepRecord, apply_decision
from finoa.workflow.specs import DEFAULT_BPMN, DEFAULT_DMN

FD_ROLE = '<camunda:property name="role" value="finance_director" />'
FACTS: dict[str, object] = {
    "claim_id": "CLM-7",
    "amount_fen": 600_000,  # manager, then finance director
    "department": "D-OPS",
    "category": "travel",
}

Variant = Callable[..., ApprovalEngine]


@pytest.fixture
def variant(tmp_path: Path) -> Variant:
    """An engine on the shipped process whose finance-director step has extra properties."""

    def build(live_instances: int = 1024, **properties: str) -> ApprovalEngine:
        extra = "".join(
            f'<camunda:property name="{k}" value="{v}" />' for k, v in properties.items()
        )
        text = DEFAULT_BPMN.read_text(encoding="utf-8")
        assert text.count(FD_ROLE) == 1
        directory = tmp_path / "-".join(f"{k}={v}" for k, v in properties.items())
        directory.mkdir()
        bpmn = directory / "claim_approval.bpmn"
        bpmn.write_text(text.replace(FD_ROLE, FD_ROLE + extra), encoding="utf-8")
        return ApprovalEngine(bpmn, DEFAULT_DMN, live_instances=live_instances)

    return build


def approve(actor: str | None = None) -> Decision:
    return Decision(Action.APPROVE, actor=actor, comment=f"ok from {actor}")


def reject(actor: str | None = None) -> Decision:
    return Decision(Action.REJECT, actor=actor, comment=f"no from {actor}")


def at_finance_director(engine: ApprovalEngine) -> EngineState:
    started = engine.start(FACTS)
    state = engine.decide(started.state, started.pending[0].step_id, approve("E-MGR"))
    (step,) = state.pending
    assert step.name == "finance_director_approval"
    return state


# --------------------------------------------------------------------------- rules alone


@pytest.mark.parametrize(
    ("mode", "assignees", "decisions", "verdict"),
    [
        (StepMode.SINGLE, (), [approve("A")], True),
        (StepMode.SINGLE, (), [reject("A")], False),
        (StepMode.SINGLE, ("A",), [approve("A")], True),
        (StepMode.ANY, ("A", "B"), [approve("B")], True),
        (StepMode.ANY, ("A", "B"), [reject("A")], False),
        (StepMode.ALL, ("A", "B", "C"), [approve("A")], None),
        (StepMode.ALL, ("A", "B", "C"), [approve("A"), approve("C")], None),
        (StepMode.ALL, ("A", "B", "C"), [approve("A"), approve("C"), approve("B")], True),
        (StepMode.ALL, ("A", "B", "C"), [approve("A"), reject("B")], False),
    ],
)
def test_step_verdicts(
    mode: StepMode, assignees: tuple[str, ...], decisions: list[Decision], verdict: bool | None
) -> None:
    record = StepRecord(assignees)
    result: bool | None = None
    for decision in decisions:
        record, result = apply_decision(
            "step", mode, (Action.APPROVE, Action.REJECT), record, decision
        )
    assert result is verdict
    assert record.decisions == tuple(decisions)
    assert record.decided_by == tuple(d.actor for d in decisions)


def test_step_record_round_trips() -> None:
    record = StepRecord(("A", "B"), (approve("A"), Decision(Action.REJECT, None, None)))
    assert StepRecord.from_dict(record.to_dict()) == record
    assert StepRecord.from_dict(None) == StepRecord()


# --------------------------------------------------------------------------- actions


def test_withdraw_is_no_step_action_of_the_shipped_process() -> None:
    engine = ApprovalEngine()
    state = engine.start(FACTS)
    (step,) = state.pending
    assert step.actions == PATTERN_ACTIONS
    with pytest.raises(UnsupportedAction) as raised:
        engine.decide(state.state, step.step_id, Decision(Action.WITHDRAW, actor="E-MGR"))
    assert raised.value.action is Action.WITHDRAW
    assert str(raised.value) == (
        "action 'withdraw' is not supported on step 'manager_approval'"
        " (allowed: approve, reject, transfer, add_signer, return)"
    )


@pytest.mark.parametrize("action", [Action.RETURN, Action.TRANSFER, Action.ADD_SIGNER])
def test_actions_not_allowed_by_the_step_are_refused(variant: Variant, action: Action) -> None:
    engine = variant(actions="approve,reject")
    state = at_finance_director(engine)
    (step,) = state.pending
    assert step.actions == (Action.APPROVE, Action.REJECT)
    with pytest.raises(UnsupportedAction) as raised:
        engine.decide(state.state, step.step_id, Decision(action, actor="E-FD", target="E-X"))
    assert raised.value.action is action
    assert str(raised.value) == (
        f"action {action.value!r} is not supported on step 'finance_director_approval'"
        " (allowed: approve, reject)"
    )
    # nothing changed: the same state is still decided normally
    after = engine.decide(state.state, step.step_id, approve("E-FD"))
    assert after.outcome == "approved"


def test_a_step_may_allow_fewer_actions(variant: Variant) -> None:
    engine = variant(actions="approve")
    state = at_finance_director(engine)
    (step,) = state.pending
    assert step.actions == (Action.APPROVE,)
    with pytest.raises(UnsupportedAction):
        engine.decide(state.state, step.step_id, reject("E-FD"))
    assert engine.decide(state.state, step.step_id, approve("E-FD")).outcome == "approved"


@pytest.mark.parametrize(
    "properties",
    [
        pytest.param({"actions": "approve,reject,withdraw"}, id="not-implemented-action"),
        pytest.param({"actions": "approve,shrug"}, id="unknown-action"),
        pytest.param({"mode": "sometimes"}, id="unknown-mode"),
    ],
)
def test_definitions_with_unusable_steps_fail_at_load(
    variant: Variant, properties: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="finance_director_approval"):
        variant(**properties)


# --------------------------------------------------------------------------- assignees


def test_a_single_step_assigned_to_one_person_takes_only_their_decision() -> None:
    engine = ApprovalEngine()
    started = engine.start(FACTS)
    step_id = started.pending[0].step_id
    for bad, error in [("E-1", TypeError), ([], ValueError), (["E-1", "E-2"], ValueError)]:
        with pytest.raises(error):
            engine.assign(started.state, step_id, bad)  # type: ignore[arg-type]
    assigned = engine.assign(started.state, step_id, ["E-MGR"])
    (step,) = assigned.pending
    assert (step.step_id, step.assignees, step.mode) == (step_id, ("E-MGR",), StepMode.SINGLE)
    with pytest.raises(ActorNotAssigned, match="'E-OTHER' is not an assignee"):
        engine.decide(assigned.state, step_id, approve("E-OTHER"))
    after = engine.decide(assigned.state, step_id, approve("E-MGR"))
    assert [p.name for p in after.pending] == ["finance_director_approval"]


@pytest.mark.parametrize("live_instances", [1024, 0], ids=["live", "restored"])
def test_countersign_needs_every_assignee(variant: Variant, live_instances: int) -> None:
    engine = variant(live_instances=live_instances, mode="all")
    state = at_finance_director(engine)
    step_id = state.pending[0].step_id
    assert state.pending[0].mode == StepMode.ALL
    with pytest.raises(ActorNotAssigned, match="has no assignees yet"):
        engine.decide(state.state, step_id, approve("E-A"))

    state = engine.assign(state.state, step_id, ["E-A", "E-B", "E-C"])
    for actor, decided in [("E-B", ("E-B",)), ("E-A", ("E-B", "E-A"))]:
        state = engine.decide(state.state, step_id, approve(actor))
        (step,) = state.pending
        assert (step.step_id, step.decided_by) == (step_id, decided)
        assert step.assignees == ("E-A", "E-B", "E-C")
    with pytest.raises(ActorNotAssigned, match="'E-A' has already decided"):
        engine.decide(state.state, step_id, approve("E-A"))
    with pytest.raises(ActorNotAssigned, match="has decisions already"):
        engine.assign(state.state, step_id, ["E-D"])
    final = engine.decide(state.state, step_id, approve("E-C"))
    assert final.outcome == "approved"
    assert final.pending == ()


def test_countersign_is_rejected_by_one_rejection(variant: Variant) -> None:
    engine = variant(mode="all")
    state = at_finance_director(engine)
    step_id = state.pending[0].step_id
    state = engine.assign(state.state, step_id, ["E-A", "E-B"])
    state = engine.decide(state.state, step_id, approve("E-A"))
    final = engine.decide(state.state, step_id, reject("E-B"))
    assert final.outcome == "rejected"


@pytest.mark.parametrize("first", [approve("E-B"), reject("E-B")], ids=["approve", "reject"])
def test_or_sign_is_decided_by_the_first_decision(variant: Variant, first: Decision) -> None:
    engine = variant(mode="any")
    state = at_finance_director(engine)
    step_id = state.pending[0].step_id
    state = engine.assign(state.state, step_id, ["E-A", "E-B"])
    assert state.pending[0].mode == StepMode.ANY
    with pytest.raises(ActorNotAssigned):
        engine.decide(state.state, step_id, approve("E-Z"))
    final = engine.decide(state.state, step_id, first)
    assert final.outcome == ("approved" if first.action is Action.APPROVE else "rejected")
