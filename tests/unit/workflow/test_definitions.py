"""Process definitions: what the checks refuse (naming element and line), the approval table
at its edges, and the four shipped processes run by the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from finoa.workflow import Action, ApprovalEngine, Decision
from finoa.workflow.definitions import DefinitionRefused
from finoa.workflow.specs import DEFAULT_BPMN, DEFAULT_DMN, PROCESSES_DIR, parse_definitions

CLAIM = DEFAULT_BPMN.read_bytes()
DMN = DEFAULT_DMN.read_bytes()


def line_of(text: bytes, needle: str) -> int:
    """The 1-based line of the first occurrence of `needle`."""
    return text.decode("utf-8")[: text.decode("utf-8").index(needle)].count("\n") + 1


def refused(bpmn: bytes, dmn: bytes = DMN) -> DefinitionRefused:
    with pytest.raises(DefinitionRefused) as caught:
        parse_definitions(bpmn, dmn, "edited.bpmn", "edited.dmn")
    return caught.value


def test_malformed_xml_names_the_parsers_line() -> None:
    """An editor cuts the file short in the middle of the CFO's task."""
    cut = CLAIM[: CLAIM.index(b'<bpmn:userTask id="cfo_approval"') + 20]
    (problem,) = refused(cut).problems
    assert (problem.file, problem.element) == ("edited.bpmn", "xml")
    assert problem.line is not None and problem.line >= line_of(CLAIM, 'id="cfo_approval"')


def test_an_unknown_role_names_the_task_and_its_line() -> None:
    """The finance director's step is given to a "treasurer", a role the org model lacks."""
    edited = CLAIM.replace(b'value="finance_director"', b'value="treasurer"')
    (problem,) = refused(edited).problems
    assert problem.element == "finance_director_approval"
    assert problem.line == line_of(edited, '<bpmn:userTask id="finance_director_approval"')
    assert "unknown role 'treasurer'" in problem.message
    assert str(problem).startswith(f"edited.bpmn, line {problem.line}: finance_director_approval")


def test_a_missing_decision_names_the_business_rule_task() -> None:
    """The process asks a decision table "levels_2027" that was never deployed."""
    edited = CLAIM.replace(b'decisionRef="approval_levels"', b'decisionRef="levels_2027"')
    (problem,) = refused(edited).problems
    assert problem.element == "determine_levels"
    assert problem.line == line_of(edited, '<bpmn:businessRuleTask id="determine_levels"')
    assert "'levels_2027' is not deployed" in problem.message
    assert "approval_levels" in problem.message


def test_unsupported_elements_are_each_named() -> None:
    """A service task calling the bank and a timer are drawn in; the engine runs neither."""
    edited = CLAIM.replace(
        b'    <bpmn:endEvent id="approved"',
        b'    <bpmn:serviceTask id="pay_the_bank" />\n'
        b'    <bpmn:intermediateCatchEvent id="wait_a_day">\n'
        b"      <bpmn:timerEventDefinition />\n"
        b"    </bpmn:intermediateCatchEvent>\n"
        b'    <bpmn:endEvent id="approved"',
    )
    problems = refused(edited).problems
    found = {(p.element, p.line) for p in problems}
    assert ("pay_the_bank", line_of(edited, 'id="pay_the_bank"')) in found
    assert ("wait_a_day", line_of(edited, 'id="wait_a_day"')) in found
    assert ("timerEventDefinition", line_of(edited, "<bpmn:timerEventDefinition")) in found
    assert all("unsupported element" in p.message for p in problems)


def test_a_users_step_without_users_is_refused() -> None:
    edited = CLAIM.replace(b'value="cfo"', b'value="users"')
    (problem,) = refused(edited).problems
    assert problem.element == "cfo_approval" and "users" in problem.message


def test_no_executable_process_is_refused() -> None:
    edited = CLAIM.replace(b'isExecutable="true"', b'isExecutable="false"')
    (problem,) = refused(edited).problems
    assert "exactly one process" in problem.message


def test_a_deployed_process_may_have_its_own_key() -> None:
    """The executable process's id is the key; the engine runs it like the default."""
    edited = CLAIM.replace(b'id="claim_approval"', b'id="claim_approval_2027"').replace(
        b'bpmnElement="claim_approval"', b'bpmnElement="claim_approval_2027"'
    )
    loaded = parse_definitions(edited, DMN, "edited.bpmn", "edited.dmn")
    assert loaded.process_id == "claim_approval_2027"
    state = ApprovalEngine().start(facts(100_000), definition=loaded)
    assert [s.role for s in state.pending] == ["manager"]
    assert state.spec_version == loaded.version != ApprovalEngine().spec_version


def facts(amount_fen: int, **more: object) -> dict[str, object]:
    return {
        "claim_id": "CL-T",
        "amount_fen": amount_fen,
        "department": "D02",
        "category": "travel",
        **more,
    }


def levels(engine: ApprovalEngine, amount_fen: int, **more: object) -> list[str]:
    """The roles that approve, in order, when everyone approves."""
    state = engine.start(facts(amount_fen, **more))
    roles = []
    while state.outcome is None:
        (step,) = state.pending
        roles.append(step.role)
        state = engine.decide(state.state, step.step_id, Decision(Action.APPROVE, "E-X"))
    assert state.outcome == "approved"
    return roles


MANAGER, FD, CFO = "manager", "finance_director", "cfo"


@pytest.mark.parametrize(
    ("amount_fen", "more", "roles"),
    [
        (499_999, {}, [MANAGER]),
        (500_000, {}, [MANAGER, FD]),
        (4_999_999, {}, [MANAGER, FD]),
        (5_000_000, {}, [MANAGER, FD, CFO]),
        # business entertainment: the finance director from 2,000 元
        (199_999, {"category": "entertainment"}, [MANAGER]),
        (200_000, {"category": "entertainment"}, [MANAGER, FD]),
        # meetings booked to a project: the CFO from 20,000 元; without a project they do not
        (1_999_999, {"category": "meeting", "project": "P001"}, [MANAGER, FD]),
        (2_000_000, {"category": "meeting", "project": "P001"}, [MANAGER, FD, CFO]),
        (2_000_000, {"category": "meeting"}, [MANAGER, FD]),
        (2_000_000, {"category": "travel", "project": "P001"}, [MANAGER, FD]),
        # the executive office: the CFO from 5,000 元
        (499_999, {"department": "D00"}, [MANAGER]),
        (500_000, {"department": "D00"}, [MANAGER, FD, CFO]),
    ],
)
def test_the_approval_table_at_its_edges(
    amount_fen: int, more: dict[str, object], roles: list[str]
) -> None:
    assert levels(ApprovalEngine(), amount_fen, **more) == roles


@pytest.mark.parametrize(
    ("bpmn", "amount_fen", "roles"),
    [
        ("advance_approval.bpmn", 300_000, [MANAGER, "department_head"]),
        ("advance_approval.bpmn", 600_000, [MANAGER, "department_head", FD]),
        ("advance_approval.bpmn", 5_000_000, [MANAGER, "department_head", FD, CFO]),
        ("payment_approval.bpmn", 100_000, ["department_head", "cost_center_owner", FD]),
        ("payment_approval.bpmn", 5_000_000, ["department_head", "cost_center_owner", FD, CFO]),
        ("requisition_approval.bpmn", 100_000, [MANAGER]),
        ("requisition_approval.bpmn", 500_000, [MANAGER, FD]),
    ],
)
def test_the_shipped_processes_route_by_the_table(
    bpmn: str, amount_fen: int, roles: list[str]
) -> None:
    engine = ApprovalEngine(PROCESSES_DIR / bpmn, DEFAULT_DMN)
    assert levels(engine, amount_fen) == roles


@pytest.mark.parametrize(
    "bpmn", sorted(p.name for p in Path(PROCESSES_DIR).glob("*.bpmn")), ids=str
)
def test_a_rejection_at_the_first_step_ends_every_shipped_process(bpmn: str) -> None:
    engine = ApprovalEngine(PROCESSES_DIR / bpmn, DEFAULT_DMN)
    state = engine.start(facts(9_000_000))
    (step,) = state.pending
    state = engine.decide(state.state, step.step_id, Decision(Action.REJECT, "E-X", "no"))
    assert state.outcome == "rejected"
