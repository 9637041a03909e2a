"""Tests for the SpiffWorkflow-based claim approval engine (finoa.workflow.engine)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finoa.workflow import (
    Action,
    ApprovalEngine,
    Decision,
    EngineState,
    PendingStep,
    StepNotPending,
)
from finoa.workflow import engine as engine_module
from finoa.workflow import specs as specs_module
from finoa.workflow.decisions import PATTERN_ACTIONS
from finoa.workflow.serialization import load_state
from finoa.workflow.specs import DEFAULT_BPMN, DEFAULT_DMN

MANAGER = "manager"
FINANCE_DIRECTOR = "finance_director"
CFO = "cfo"

LABELS = {
    "manager_approval": "Direct manager approval (直属上级审批)",
    "finance_director_approval": "Finance director approval (财务总监审批)",
    "cfo_approval": "CFO approval (首席财务官审批)",
}
ROLE_OF = {
    "manager_approval": MANAGER,
    "finance_director_approval": FINANCE_DIRECTOR,
    "cfo_approval": CFO,
}


def facts(amount_fen: int, claim_id: str = "CLM-1") -> dict[str, object]:
    return {
        "claim_id": claim_id,
        "amount_fen": amount_fen,
        "department": "D-OPS",
        "category": "travel",
    }


def expected_roles(amount_fen: int) -> list[str]:
    """Oracle for the DMN table, written independently of it."""
    roles = [MANAGER]
    if amount_fen >= 500_000:  # 5,000 元
        roles.append(FINANCE_DIRECTOR)
    if amount_fen >= 5_000_000:  # 50,000 元
        roles.append(CFO)
    return roles


def verdict(approved: bool, comment: str | None = None) -> Decision:
    """An approve or reject decision, as the approval service makes them."""
    return Decision(Action.APPROVE if approved else Action.REJECT, actor="E-1", comment=comment)


def only_pending(state: EngineState) -> PendingStep:
    assert state.outcome is None
    assert len(state.pending) == 1, state.pending
    return state.pending[0]


def run(
    engine: ApprovalEngine, amount_fen: int, decisions: Sequence[bool] = ()
) -> tuple[list[str], EngineState]:
    """Start a claim and decide each pending step (approve once ``decisions`` runs out)."""
    state = engine.start(facts(amount_fen))
    visited: list[str] = []
    remaining = list(decisions)
    while state.outcome is None:
        step = only_pending(state)
        visited.append(step.role)
        state = engine.decide(
            state.state, step.step_id, verdict(remaining.pop(0) if remaining else True)
        )
        assert len(visited) <= 3, "process did not terminate"
    return visited, state


def copy_definitions(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    bpmn = directory / "claim_approval.bpmn"
    dmn = directory / "approval_levels.dmn"
    shutil.copyfile(DEFAULT_BPMN, bpmn)
    shutil.copyfile(DEFAULT_DMN, dmn)
    return bpmn, dmn


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} not found exactly once in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def task_id_of(state: str, spec_name: str) -> str:
    """Id of a (possibly not yet ready) task in a serialized state."""
    tasks = json.loads(state)["workflow"]["tasks"]
    (task_id,) = [t["id"] for t in tasks if t["task_spec"] == spec_name]
    return str(task_id)


@pytest.fixture(scope="module")
def engine() -> ApprovalEngine:
    return ApprovalEngine()


@pytest.fixture
def fresh_process() -> Iterator[None]:
    """Forget parsed specs before and after the test, as a newly started process would."""
    specs_module.clear_spec_caches()
    yield
    specs_module.clear_spec_caches()


# --------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("amount_fen", "roles"),
    [
        (1, [MANAGER]),
        (499_999, [MANAGER]),
        (500_000, [MANAGER, FINANCE_DIRECTOR]),
        (500_001, [MANAGER, FINANCE_DIRECTOR]),
        (4_999_999, [MANAGER, FINANCE_DIRECTOR]),
        (5_000_000, [MANAGER, FINANCE_DIRECTOR, CFO]),
        (10**12, [MANAGER, FINANCE_DIRECTOR, CFO]),
    ],
)
def test_dmn_routes_edge_amounts(engine: ApprovalEngine, amount_fen: int, roles: list[str]) -> None:
    visited, final = run(engine, amount_fen)
    assert visited == roles
    assert final.outcome == "approved"
    assert final.pending == ()


def test_start_waits_for_the_direct_manager(engine: ApprovalEngine) -> None:
    state = engine.start(facts(123_456))
    step = only_pending(state)
    assert step == PendingStep(
        step_id=step.step_id,
        role=MANAGER,
        name="manager_approval",
        label=LABELS["manager_approval"],
        actions=PATTERN_ACTIONS,
    )
    assert str(uuid.UUID(step.step_id)) == step.step_id
    assert state.spec_version == engine.spec_version
    assert len(state.spec_version) == 64
    int(state.spec_version, 16)
    assert isinstance(state.state, str)


def test_each_start_is_a_new_instance(engine: ApprovalEngine) -> None:
    first = only_pending(engine.start(facts(100)))
    second = only_pending(engine.start(facts(100)))
    assert first.step_id != second.step_id


def test_approval_path_through_all_three_levels(engine: ApprovalEngine) -> None:
    state = engine.start(facts(8_800_000))
    seen: list[PendingStep] = []
    for expected_name in ("manager_approval", "finance_director_approval", "cfo_approval"):
        step = only_pending(state)
        assert step.name == expected_name
        assert step.role == ROLE_OF[expected_name]
        assert step.label == LABELS[expected_name]
        seen.append(step)
        state = engine.decide(state.state, step.step_id, verdict(True, f"ok from {step.role}"))
    assert state.outcome == "approved"
    assert state.pending == ()
    assert len({s.step_id for s in seen}) == 3
    assert state.spec_version == engine.spec_version


@pytest.mark.parametrize("reject_at", [0, 1, 2])
def test_rejection_at_each_level_ends_the_process(engine: ApprovalEngine, reject_at: int) -> None:
    decisions = [True] * reject_at + [False]
    visited, final = run(engine, 5_000_000, decisions)
    assert visited == [MANAGER, FINANCE_DIRECTOR, CFO][: reject_at + 1]
    assert final.outcome == "rejected"
    assert final.pending == ()


def test_rejection_by_manager_skips_higher_levels_even_for_large_amounts(
    engine: ApprovalEngine,
) -> None:
    state = engine.start(facts(10**10))
    final = engine.decide(state.state, only_pending(state).step_id, verdict(False, "no receipt"))
    assert final.outcome == "rejected"
    assert final.pending == ()


# --------------------------------------------------------------------------- StepNotPending


def test_unknown_step_ids_are_not_pending(engine: ApprovalEngine) -> None:
    state = engine.start(facts(600_000))
    for bogus in (str(uuid.uuid4()), "not-a-uuid", ""):
        with pytest.raises(StepNotPending) as raised:
            engine.decide(state.state, bogus, verdict(True))
        assert raised.value.step_id == bogus
        assert isinstance(raised.value, LookupError)
        assert repr(bogus) in str(raised.value)


def test_step_of_another_instance_is_not_pending(engine: ApprovalEngine) -> None:
    mine = engine.start(facts(600_000, "CLM-A"))
    other = only_pending(engine.start(facts(600_000, "CLM-B")))
    with pytest.raises(StepNotPending):
        engine.decide(mine.state, other.step_id, verdict(True))


def test_already_decided_step_is_not_pending(engine: ApprovalEngine) -> None:
    state = engine.start(facts(600_000))
    manager = only_pending(state)
    after = engine.decide(state.state, manager.step_id, verdict(True))
    assert only_pending(after).role == FINANCE_DIRECTOR
    with pytest.raises(StepNotPending):
        engine.decide(after.state, manager.step_id, verdict(True))


def test_future_step_is_not_pending_yet(engine: ApprovalEngine) -> None:
    state = engine.start(facts(600_000))
    future = task_id_of(state.state, "finance_director_approval")
    assert future not in {p.step_id for p in state.pending}
    with pytest.raises(StepNotPending):
        engine.decide(state.state, future, verdict(True))


def test_nothing_is_pending_once_the_process_completed(engine: ApprovalEngine) -> None:
    state = engine.start(facts(100))
    step = only_pending(state)
    final = engine.decide(state.state, step.step_id, verdict(True))
    assert final.outcome == "approved"
    with pytest.raises(StepNotPending):
        engine.decide(final.state, step.step_id, verdict(False))


# --------------------------------------------------------------------------- serialization


def test_state_round_trips_through_json_and_a_fresh_engine(engine: ApprovalEngine) -> None:
    result = engine.start(facts(5_000_000))
    roles: list[str] = []
    for _ in range(3):
        step = only_pending(result)
        roles.append(step.role)
        stored = json.loads(result.state)  # persisted in a JSON column ...
        assert stored["spec_version"] == result.spec_version
        reloaded = json.dumps(stored, sort_keys=True)  # ... that may reorder keys (jsonb)
        result = ApprovalEngine().decide(
            reloaded, step.step_id, verdict(True)
        )  # e.g. another worker
    assert roles == [MANAGER, FINANCE_DIRECTOR, CFO]
    assert result.outcome == "approved"
    assert result.pending == ()


def test_restore_then_serialize_reproduces_the_state_exactly(engine: ApprovalEngine) -> None:
    state = engine.start(facts(700_000))
    state = engine.decide(state.state, only_pending(state).step_id, verdict(True, "looks fine 好"))
    workflow, loaded = load_state(state.state)
    again = engine_module._snapshot(workflow, loaded)
    assert again.state == state.state
    assert again.pending == state.pending


def test_restore_does_not_depend_on_task_order(engine: ApprovalEngine) -> None:
    state = engine.start(facts(700_000))
    state = engine.decide(state.state, only_pending(state).step_id, verdict(True, "first"))
    envelope = json.loads(state.state)
    envelope["workflow"]["tasks"].reverse()
    shuffled = json.dumps(envelope)
    original, _ = load_state(state.state)
    restored, _ = load_state(shuffled)
    assert {t.id: t.data for t in restored.tasks.values()} == {
        t.id: t.data for t in original.tasks.values()
    }
    step = only_pending(state)
    assert engine.decide(shuffled, step.step_id, verdict(True)).outcome == "approved"


def test_state_holds_only_facts_and_decisions(engine: ApprovalEngine) -> None:
    state = engine.start(facts(700_000, "CLM-XYZ"))
    state = engine.decide(state.state, only_pending(state).step_id, verdict(False, "duplicate"))
    workflow, _ = load_state(state.state)
    data = workflow.last_task.data
    assert data["claim_id"] == "CLM-XYZ"
    assert data["amount_fen"] == 700_000
    assert data["approved"] is False
    assert data["comment"] == "duplicate"
    assert set(data) == {
        "claim_id",
        "amount_fen",
        "department",
        "category",
        "budget_exceeded",
        "policy_breached",
        "project",
        "cost_center",
        "document_type",
        "needs_finance_director",
        "needs_cfo",
        "approved",
        "comment",
    }


def test_corrupt_states_are_rejected(engine: ApprovalEngine) -> None:
    good = json.loads(engine.start(facts(100)).state)
    step_id = str(uuid.uuid4())
    wrong_format = dict(good, format="something-else")
    no_workflow = {k: v for k, v in good.items() if k != "workflow"}
    for bad in ("not json", "[]", json.dumps(wrong_format), json.dumps(no_workflow)):
        with pytest.raises(ValueError):
            engine.decide(bad, step_id, verdict(True))


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize("new_process", [False, True], ids=["same-process", "after-restart"])
def test_running_instance_keeps_its_definition(
    tmp_path: Path, fresh_process: None, new_process: bool
) -> None:
    v1_bpmn, v1_dmn = copy_definitions(tmp_path / "v1")
    v1 = ApprovalEngine(v1_bpmn, v1_dmn)
    running = v1.start(facts(600_000))  # v1: manager, then finance director

    # v2 drops the finance director level and renames the manager step.
    v2_bpmn, v2_dmn = copy_definitions(tmp_path / "v2")
    replace_once(
        v2_bpmn,
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
        "approved and needs_finance_director</bpmn:conditionExpression>",
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
        "false</bpmn:conditionExpression>",
    )
    replace_once(
        v2_bpmn,
        "approved and not needs_finance_director</bpmn:conditionExpression>",
        "approved</bpmn:conditionExpression>",
    )
    replace_once(v2_bpmn, 'name="Direct manager approval (直属上级审批)"', 'name="Manager v2"')
    if new_process:
        specs_module.clear_spec_caches()
    v2 = ApprovalEngine(v2_bpmn, v2_dmn)
    assert v2.spec_version != v1.spec_version == running.spec_version

    # New instances follow v2.
    fresh = v2.start(facts(600_000))
    assert only_pending(fresh).label == "Manager v2"
    done = v2.decide(fresh.state, only_pending(fresh).step_id, verdict(True))
    assert done.outcome == "approved"
    assert done.spec_version == v2.spec_version

    # The running instance continues on v1, although decided through the v2 engine.
    assert only_pending(running).label == LABELS["manager_approval"]
    after = v2.decide(running.state, only_pending(running).step_id, verdict(True))
    assert after.spec_version == v1.spec_version
    assert only_pending(after).role == FINANCE_DIRECTOR
    final = v2.decide(after.state, only_pending(after).step_id, verdict(True))
    assert final.outcome == "approved"
    assert final.spec_version == v1.spec_version


def test_state_with_tampered_definitions_is_refused(tmp_path: Path, fresh_process: None) -> None:
    bpmn, dmn = copy_definitions(tmp_path / "v1")
    v1 = ApprovalEngine(bpmn, dmn)
    running = v1.start(facts(600_000))
    replace_once(bpmn, 'value="finance_director"', 'value="cfo"')
    v2 = ApprovalEngine(bpmn, dmn)
    envelope = json.loads(running.state)
    envelope["definitions"] = json.loads(v2.start(facts(1)).state)["definitions"]
    specs_module.clear_spec_caches()  # a new process that has never seen v1
    with pytest.raises(ValueError, match="do not match"):
        v2.decide(json.dumps(envelope), only_pending(running).step_id, verdict(True))


def test_definitions_are_parsed_once_per_version(
    tmp_path: Path, fresh_process: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_parse = specs_module.parse_definitions

    def counting_parse(
        bpmn: bytes, dmn: bytes, bpmn_name: str, dmn_name: str
    ) -> specs_module.LoadedSpec:
        calls.append(bpmn_name)
        return real_parse(bpmn, dmn, bpmn_name, dmn_name)

    monkeypatch.setattr(specs_module, "parse_definitions", counting_parse)
    bpmn, dmn = copy_definitions(tmp_path / "a")
    engines = [ApprovalEngine(bpmn, dmn) for _ in range(5)]
    assert len(calls) == 1
    assert len({e.spec_version for e in engines}) == 1
    # Same bytes at another path: same version, no new parse.
    copy_bpmn, copy_dmn = copy_definitions(tmp_path / "b")
    assert ApprovalEngine(copy_bpmn, copy_dmn).spec_version == engines[0].spec_version
    assert len(calls) == 1
    # Changed file at the same path: detected, parsed once more.
    replace_once(bpmn, 'name="Claim submitted"', 'name="Claim submitted (v2)"')
    changed = ApprovalEngine(bpmn, dmn)
    assert changed.spec_version != engines[0].spec_version
    assert len(calls) == 2


@pytest.mark.parametrize(
    "edits",
    [
        pytest.param([('value="cfo"', 'value="ceo"')], id="unknown-role"),
        pytest.param(
            [('id="rejected"', 'id="declined"'), ('="rejected"', '="declined"')],
            id="no-rejected-end-event",
        ),
        pytest.param(
            [('camunda:decisionRef="approval_levels"', 'camunda:decisionRef="missing"')],
            id="unknown-decision",
        ),
        pytest.param([("</bpmn:process>", "")], id="malformed-xml"),
    ],
)
def test_invalid_definitions_fail_at_load(
    tmp_path: Path, fresh_process: None, edits: list[tuple[str, str]]
) -> None:
    bpmn, dmn = copy_definitions(tmp_path)
    text = bpmn.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    bpmn.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError):
        ApprovalEngine(bpmn, dmn)


# --------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    ("bad_facts", "error"),
    [
        ({**facts(100), "amount_fen": 0}, ValueError),
        ({**facts(100), "amount_fen": -5}, ValueError),
        ({**facts(100), "amount_fen": 2**53}, ValueError),
        ({**facts(100), "amount_fen": "100"}, TypeError),
        ({**facts(100), "amount_fen": 100.0}, TypeError),
        ({**facts(100), "amount_fen": True}, TypeError),
        ({**facts(100), "claim_id": 7}, TypeError),
        ({k: v for k, v in facts(100).items() if k != "department"}, ValueError),
        ({**facts(100), "invoice_pdf": "JVBERi0xLjQK"}, ValueError),
    ],
)
def test_start_rejects_bad_facts(
    engine: ApprovalEngine, bad_facts: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        engine.start(bad_facts)


def test_decide_requires_a_decision(engine: ApprovalEngine) -> None:
    state = engine.start(facts(100))
    step_id = only_pending(state).step_id
    for not_a_decision in ("yes", True, {"action": "approve"}):
        with pytest.raises(TypeError):
            engine.decide(state.state, step_id, not_a_decision)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Decision(Action.APPROVE, comment=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Decision(Action.APPROVE, actor=7)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Decision(True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown action 'maybe'"):
        Decision("maybe")  # type: ignore[arg-type]
    assert Decision("approve").action is Action.APPROVE  # type: ignore[arg-type]
    assert engine.decide(state.state, step_id, verdict(True)).outcome == "approved"


# --------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(amount_fen=st.integers(min_value=1, max_value=10**10))
def test_property_roles_visited_match_the_dmn_rule(engine: ApprovalEngine, amount_fen: int) -> None:
    visited, final = run(engine, amount_fen)
    assert visited == expected_roles(amount_fen)
    assert final.outcome == "approved"
    assert final.pending == ()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amount_fen=st.integers(min_value=1, max_value=10**10),
    decisions=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_property_any_decisions_visit_a_prefix_of_the_dmn_rule(
    engine: ApprovalEngine, amount_fen: int, decisions: list[bool]
) -> None:
    visited, final = run(engine, amount_fen, decisions)
    required = expected_roles(amount_fen)
    made = decisions[: len(visited)]
    if all(made):
        assert visited == required
        assert final.outcome == "approved"
    else:
        first_rejection = made.index(False)
        assert visited == required[: first_rejection + 1]
        assert final.outcome == "rejected"
    assert final.pending == ()
