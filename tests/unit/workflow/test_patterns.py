"""The approval patterns' rules alone and through the engine: transfer, 加签, 退回."""

from __future__ import annotations

import pytest

from finoa.workflow import (
    RETURNED_TO_APPLICANT,
    Action,
    ActorNotAssigned,
    ApprovalEngine,
    CannotReturn,
    Decision,
    SignerPosition,
    StepMode,
)
from finoa.workflow.decisions import PATTERN_ACTIONS, StepRecord, apply_decision, awaiting

FACTS: dict[str, object] = {
    "claim_id": "CLM-9",
    "amount_fen": 600_000,  # manager, then finance director
    "department": "D-OPS",
    "category": "travel",
}


def run(mode: StepMode, record: StepRecord, *decisions: Decision) -> tuple[StepRecord, object]:
    verdict: object = None
    for decision in decisions:
        record, verdict = apply_decision("step", mode, PATTERN_ACTIONS, record, decision)
    return record, verdict


def test_transfer_hands_the_step_over() -> None:
    record, verdict = run(StepMode.SINGLE, StepRecord(), Decision(Action.TRANSFER, "M", target="W"))
    assert (record.assignees, verdict, awaiting(StepMode.SINGLE, record)) == (("W",), None, ("W",))
    with pytest.raises(ActorNotAssigned, match="'M' is not an assignee"):
        run(StepMode.SINGLE, record, Decision(Action.APPROVE, "M"))
    assert run(StepMode.SINGLE, record, Decision(Action.APPROVE, "W"))[1] is True


def test_add_signer_before_and_after() -> None:
    before, verdict = run(
        StepMode.SINGLE, StepRecord(), Decision(Action.ADD_SIGNER, "M", target="Z")
    )
    assert (before.assignees, verdict, awaiting(StepMode.SINGLE, before)) == (
        ("Z", "M"),
        None,
        ("Z",),
    )
    with pytest.raises(ActorNotAssigned, match=r"waits for \['Z'\]"):
        run(StepMode.SINGLE, before, Decision(Action.APPROVE, "M"))
    after_z, verdict = run(StepMode.SINGLE, before, Decision(Action.APPROVE, "Z"))
    assert (verdict, awaiting(StepMode.SINGLE, after_z)) == (None, ("M",))
    assert run(StepMode.SINGLE, after_z, Decision(Action.APPROVE, "M"))[1] is True

    after = Decision(Action.ADD_SIGNER, "M", target="Z", position=SignerPosition.AFTER)
    record, verdict = run(StepMode.SINGLE, StepRecord(), after)
    assert (record.assignees, verdict, awaiting(StepMode.SINGLE, record)) == (
        ("M", "Z"),
        None,
        ("Z",),
    )
    assert run(StepMode.SINGLE, record, Decision(Action.REJECT, "Z"))[1] is False


def test_add_signer_on_countersign_adds_an_assignee() -> None:
    record, _ = run(StepMode.ALL, StepRecord(("A",)), Decision(Action.ADD_SIGNER, "A", target="B"))
    assert awaiting(StepMode.ALL, record) == ("A", "B")
    record, verdict = run(StepMode.ALL, record, Decision(Action.APPROVE, "A"))
    assert verdict is None
    assert run(StepMode.ALL, record, Decision(Action.APPROVE, "B"))[1] is True


def test_a_person_already_on_the_step_cannot_be_added_again() -> None:
    record = StepRecord(("A", "B"))
    for action in (Action.TRANSFER, Action.ADD_SIGNER):
        with pytest.raises(ActorNotAssigned, match="already"):
            run(StepMode.ALL, record, Decision(action, "A", target="B"))


def test_decisions_with_a_target_round_trip_and_old_records_read_as_before() -> None:
    decision = Decision(Action.ADD_SIGNER, "M", "看一下", "Z", SignerPosition.AFTER)
    assert Decision.from_dict(decision.to_dict()) == decision
    assert Decision(Action.APPROVE, "M", "ok").to_dict() == {
        "action": "approve",
        "actor": "M",
        "comment": "ok",
    }
    with pytest.raises(ValueError, match="needs a target"):
        Decision(Action.TRANSFER, "M")


def test_return_to_an_earlier_step_and_to_the_applicant() -> None:
    engine = ApprovalEngine()
    started = engine.start(FACTS)
    manager = started.pending[0]
    with pytest.raises(CannotReturn, match="the applicant only"):
        engine.decide(
            started.state,
            manager.step_id,
            Decision(Action.RETURN, "M", "x", target="finance_director_approval"),
        )
    at_fd = engine.decide(started.state, manager.step_id, Decision(Action.APPROVE, "M"))
    fd = at_fd.pending[0]
    back = engine.decide(
        at_fd.state, fd.step_id, Decision(Action.RETURN, "F", "check", target="manager_approval")
    )
    assert back.returned_to == "manager_approval"
    assert [(p.name, p.step_id) for p in back.pending] == [("manager_approval", manager.step_id)]
    again = engine.decide(back.state, manager.step_id, Decision(Action.APPROVE, "M"))
    assert [p.name for p in again.pending] == ["finance_director_approval"]

    home = engine.decide(at_fd.state, fd.step_id, Decision(Action.RETURN, "F", "no invoice"))
    assert home.returned_to == RETURNED_TO_APPLICANT and home.outcome is None
    assert [p.name for p in home.pending] == ["manager_approval"]
    # the restored state (no live instance) continues the same way
    fresh = ApprovalEngine(live_instances=0)
    final = fresh.decide(home.state, home.pending[0].step_id, Decision(Action.APPROVE, "M"))
    assert [p.name for p in final.pending] == ["finance_director_approval"]
