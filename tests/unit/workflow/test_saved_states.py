"""States saved by the previous release (format 1) are read, upgraded and finished correctly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from finoa.workflow import Action, ApprovalEngine, Decision, EngineState, specs
from finoa.workflow.serialization import (
    SPIFF_SERIALIZER_VERSION,
    STATE_FORMAT,
    STATE_FORMAT_VERSION,
    UnsupportedStateFormat,
    load_state,
    step_record,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "workflow_states_fe7b504.json"
SAVED: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
ROUTE = ["manager_approval", "finance_director_approval", "cfo_approval"]
EARLIER_COMMENTS = {
    "manager_approval": "ok from the manager",
    "finance_director_approval": "ok from the finance director",
}
STAGES = [entry["pending_step"] for entry in SAVED["states"]]


def saved(stage: str) -> dict[str, Any]:
    (entry,) = [e for e in SAVED["states"] if e["pending_step"] == stage]
    return entry


@pytest.fixture
def fresh_process() -> Iterator[ApprovalEngine]:
    """A newly started process: no parsed spec, no live instance of the saved states."""
    specs.clear_spec_caches()
    yield ApprovalEngine()
    specs.clear_spec_caches()


def test_fixture_holds_a_claim_at_each_stage_in_the_previous_format() -> None:
    assert STAGES == ROUTE
    assert SAVED["state_format"] == "finoa.workflow/1" != STATE_FORMAT
    assert SAVED["spiff_serializer_version"] == SPIFF_SERIALIZER_VERSION
    for entry in SAVED["states"]:
        assert orjson.loads(entry["state"])["format"] == "finoa.workflow/1"


@pytest.mark.parametrize("stage", STAGES)
def test_saved_state_is_upgraded_with_its_pending_step(
    fresh_process: ApprovalEngine, stage: str
) -> None:
    entry = saved(stage)
    upgraded = fresh_process.upgrade(entry["state"])
    assert upgraded.state_format_version == STATE_FORMAT_VERSION
    assert orjson.loads(upgraded.state)["format"] == STATE_FORMAT
    assert upgraded.outcome is None
    assert upgraded.spec_version == entry["spec_version"]
    (step,) = upgraded.pending
    assert (step.step_id, step.name, step.role) == (
        entry["pending_step_id"],
        stage,
        entry["pending_role"],
    )
    assert step.actions == (Action.APPROVE, Action.REJECT)
    # the upgraded state reads back as itself
    assert ApprovalEngine(live_instances=0).upgrade(upgraded.state).state == upgraded.state


@pytest.mark.parametrize("stage", STAGES)
def test_saved_state_is_approved_to_the_end(fresh_process: ApprovalEngine, stage: str) -> None:
    entry = saved(stage)
    state = EngineState(entry["state"], (), None, entry["spec_version"], 1)
    step_id = entry["pending_step_id"]
    visited: list[str] = []
    while True:
        state = fresh_process.decide(
            state.state, step_id, Decision(Action.APPROVE, actor="E-9", comment="fine")
        )
        assert state.state_format_version == STATE_FORMAT_VERSION
        visited.append(step_id)
        if state.outcome is not None:
            break
        (pending,) = state.pending
        step_id = pending.step_id
    assert state.outcome == "approved"
    assert state.pending == ()
    assert len(visited) == len(ROUTE) - ROUTE.index(stage)

    # Decisions taken before the upgrade are on record with an unknown actor; later ones named.
    workflow, loaded = load_state(state.state)
    records = {
        t.task_spec.name: step_record(t)
        for t in workflow.tasks.values()
        if t.task_spec.name in loaded.steps
    }
    for name in ROUTE[: ROUTE.index(stage)]:
        (earlier,) = records[name].decisions
        assert earlier == Decision(Action.APPROVE, None, EARLIER_COMMENTS[name])
    for name in ROUTE[ROUTE.index(stage) :]:
        (later,) = records[name].decisions
        assert later == Decision(Action.APPROVE, "E-9", "fine")


@pytest.mark.parametrize("stage", STAGES)
def test_saved_state_is_rejected_at_its_pending_step(
    fresh_process: ApprovalEngine, stage: str
) -> None:
    entry = saved(stage)
    final = fresh_process.decide(
        entry["state"],
        entry["pending_step_id"],
        Decision(Action.REJECT, actor="E-9", comment="no receipt"),
    )
    assert final.outcome == "rejected"
    assert final.pending == ()
    workflow, _ = load_state(final.state)
    assert workflow.last_task.data["comment"] == "no receipt"
    assert workflow.last_task.data["approved"] is False


def _with(state: str, **changes: object) -> str:
    envelope = orjson.loads(state)
    envelope.update(changes)
    return orjson.dumps(envelope).decode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"format": "finoa.workflow/3"}, "newer than this release", id="newer"),
        pytest.param({"format": "finoa.workflow/999"}, "newer than this release", id="far-newer"),
        pytest.param({"serializer_version": "9.9"}, "serializer '9.9'", id="other-spiff"),
    ],
)
def test_too_new_states_are_refused(
    fresh_process: ApprovalEngine, changes: dict[str, object], message: str
) -> None:
    entry = saved("manager_approval")
    newer = _with(fresh_process.upgrade(entry["state"]).state, **changes)
    for call in (
        lambda: fresh_process.upgrade(newer),
        lambda: fresh_process.decide(newer, entry["pending_step_id"], Decision(Action.APPROVE)),
    ):
        with pytest.raises(UnsupportedStateFormat, match=message):
            call()


@pytest.mark.parametrize(
    "declared", ["finoa.workflow/0", "finoa.workflow/1.5", "finoa.workflow", "other/2", 2, None]
)
def test_unknown_formats_are_refused(fresh_process: ApprovalEngine, declared: object) -> None:
    entry = saved("manager_approval")
    unknown = _with(entry["state"], format=declared)
    with pytest.raises(ValueError, match="not in format 'finoa.workflow'"):
        fresh_process.upgrade(unknown)
