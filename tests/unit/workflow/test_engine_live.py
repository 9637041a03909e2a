"""The live-instance shortcut gives exactly what restoring from the stored state gives."""

from __future__ import annotations

import orjson
import pytest

from finoa.workflow import Action, ApprovalEngine, Decision, StepNotPending


def decision(approved: bool) -> Decision:
    return Decision(Action.APPROVE if approved else Action.REJECT, actor="E-1", comment="ok")


def _decisions(engine: ApprovalEngine, amount_fen: int, verdicts: list[bool]) -> list[str]:
    state = engine.start(
        {"claim_id": "CL-1", "amount_fen": amount_fen, "department": "D01", "category": "travel"}
    )
    states = [state.state]
    for verdict in verdicts:
        if state.outcome is not None:
            break
        # a fresh engine per step forces the restore path; the same engine takes the live one
        state = engine.decide(state.state, state.pending[0].step_id, decision(verdict))
        states.append(state.state)
    return states


def _comparable(state: str) -> dict[str, object]:
    envelope = orjson.loads(state)
    return {k: v for k, v in envelope.items() if k != "workflow"} | {
        "tasks": sorted(
            (t["task_spec"], t["state"], orjson.dumps(t.get("data"), option=orjson.OPT_SORT_KEYS))
            for t in envelope["workflow"]["tasks"]
        )
        if isinstance(envelope["workflow"].get("tasks"), list)
        else envelope["workflow"]
    }


@pytest.mark.parametrize(
    ("amount_fen", "verdicts"),
    [(100_000, [True]), (600_000, [True, False]), (6_000_000, [True, True, True])],
)
def test_live_and_restored_instances_agree(amount_fen: int, verdicts: list[bool]) -> None:
    live = ApprovalEngine()
    restored = ApprovalEngine(live_instances=0)
    live_states = _decisions(live, amount_fen, verdicts)
    restored_states = _decisions(restored, amount_fen, verdicts)
    assert len(live_states) == len(restored_states)
    for a, b in zip(live_states, restored_states, strict=True):
        assert _comparable(a) == _comparable(b)


def test_a_live_instance_is_used_once() -> None:
    engine = ApprovalEngine()
    state = engine.start(
        {"claim_id": "CL-2", "amount_fen": 600_000, "department": "D01", "category": "travel"}
    )
    step = state.pending[0].step_id
    engine.decide(state.state, step, decision(True))
    # the old state again (as after a rolled-back transaction): restored, and the step is done
    # in neither the live object nor the stored state, so it is still pending there
    again = engine.decide(state.state, step, decision(True))
    assert [p.role for p in again.pending] == ["finance_director"]
    with pytest.raises(StepNotPending):
        engine.decide(again.state, step, decision(True))
