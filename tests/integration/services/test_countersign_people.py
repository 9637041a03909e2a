"""Countersign (会签) and or-sign (或签) steps naming several people, on SQLite and
PostgreSQL: each person is named in the engine when the step opens, on submission, after a
decision and on resubmission, with segregation of duties.

The company is the sample one: Zhou Jie (E0011) reports to Sun Qiang (E0010), who reports to
Wang (E0001); Wu Lei (E0012) and Zheng Shuang (E0013) are Sun's team; Zhao Min (E0003) is the
finance director. A claim of 6,200 元 is approved by the direct manager and then the finance
step; one of 1,200 元 by the first step only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from support.claims import one_line_claim

from finoa.domain.errors import Forbidden
from finoa.services.approvals import decide_task, resubmission
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.queries import get_claim
from finoa.store.tables import workflow_instances
from finoa.workflow import ApprovalEngine
from finoa.workflow.specs import DEFAULT_BPMN, DEFAULT_DMN

ZHOU, SUN, WANG, WU, ZHENG, ZHAO = "E0011", "E0010", "E0001", "E0012", "E0013", "E0003"
FD_ROLE = '<camunda:property name="role" value="finance_director" />'
MANAGER_ROLE = '<camunda:property name="role" value="manager" />'


def with_step(hub: Hub, tmp_path: Path, role: str, mode: str, users: list[str]) -> None:
    """The hub runs a process whose step of `role` goes to `users` in `mode`."""
    step = (
        '<camunda:property name="role" value="users" />'
        f'<camunda:property name="users" value="{",".join(users)}" />'
        f'<camunda:property name="mode" value="{mode}" />'
    )
    text = DEFAULT_BPMN.read_text(encoding="utf-8")
    bpmn = tmp_path / f"claim_approval_{mode}_{'_'.join(users)}.bpmn"
    bpmn.write_text(text.replace(role, step), encoding="utf-8")
    hub.engine = ApprovalEngine(bpmn, DEFAULT_DMN)


def submit(hub: Hub, external_id: str, amount: str) -> str:
    body = one_line_claim(
        external_id,
        applicant_id=ZHOU,
        department_id="D02",
        category="travel",
        amount=amount,
        title="北京出差 Beijing trip",
        project_id="P001",
    )
    return submit_claim(hub, body, source="test", actor="t").claim_id


def pending(hub: Hub, claim_id: str) -> dict[str, str]:
    """Task id by assignee, of the claim's pending tasks."""
    tasks = get_claim(hub.db, claim_id).tasks
    return {t.assignee_id: t.id for t in tasks if t.status == "pending"}


def decide(hub: Hub, claim_id: str, who: str, action: str) -> str:
    task_id = pending(hub, claim_id)[who]
    result = decide_task(hub, task_id, who, action == "approve", None, actor="t", action=action)
    return result.claim_status


def stored_assignees(hub: Hub, claim_id: str) -> list[list[str]]:
    """The assignees the stored engine state names, per pending step."""
    with hub.db.engine.connect() as conn:
        state = conn.execute(
            select(workflow_instances.c.state).where(workflow_instances.c.claim_id == claim_id)
        ).scalar_one()
    return [list(step.assignees) for step in hub.engine.upgrade(state).pending]


def test_the_people_are_named_in_the_stored_state(hub: Hub, tmp_path: Path) -> None:
    """The first step is a countersign of Wu Lei and Zheng Shuang: the saved workflow names
    both, so either may decide first; both approvals approve the claim."""
    with_step(hub, tmp_path, MANAGER_ROLE, "all", [WU, ZHENG])
    claim_id = submit(hub, "CS-STATE", "1200.00")
    assert stored_assignees(hub, claim_id) == [[WU, ZHENG]]
    assert decide(hub, claim_id, ZHENG, "approve") == "in_approval"
    assert decide(hub, claim_id, WU, "approve") == "approved"


def test_a_repeat_approver_is_replaced_up_the_chain(hub: Hub, tmp_path: Path) -> None:
    """The finance step is a countersign of Sun Qiang and Zhao Min. Sun approved as manager,
    so his place in the countersign goes to his manager Wang; with allow_repeat_approver on,
    Sun countersigns himself."""
    with_step(hub, tmp_path, FD_ROLE, "all", [SUN, ZHAO])
    claim_id = submit(hub, "CS-REPEAT", "6200.00")
    decide(hub, claim_id, SUN, "approve")
    assert sorted(pending(hub, claim_id)) == sorted([WANG, ZHAO])
    assert stored_assignees(hub, claim_id) == [[WANG, ZHAO]]

    hub.settings = replace(hub.settings, allow_repeat_approver=True)
    again = submit(hub, "CS-REPEAT-ALLOWED", "6200.00")
    decide(hub, again, SUN, "approve")
    assert sorted(pending(hub, again)) == sorted([SUN, ZHAO])
    assert decide(hub, again, SUN, "approve") == "in_approval"
    assert decide(hub, again, ZHAO, "approve") == "approved"


def test_the_applicant_is_never_one_of_the_people(hub: Hub, tmp_path: Path) -> None:
    """An or-sign names Zhou Jie and Wu Lei: Zhou's own claim goes to Wu alone, and Zhou
    may not decide it."""
    with_step(hub, tmp_path, MANAGER_ROLE, "any", [ZHOU, WU])
    claim_id = submit(hub, "CS-SELF", "1200.00")
    tasks = pending(hub, claim_id)
    assert list(tasks) == [WU]
    with pytest.raises(Forbidden):
        decide_task(hub, tasks[WU], ZHOU, True, None, actor="t")
    assert decide(hub, claim_id, WU, "approve") == "approved"


def test_resubmission_reopens_every_countersigner(hub: Hub, tmp_path: Path) -> None:
    """Wu Lei approves the countersign, Zheng Shuang returns it to Zhou Jie (退回); Zhou
    resubmits and round 2 opens a task for both again; both approve."""
    with_step(hub, tmp_path, MANAGER_ROLE, "all", [WU, ZHENG])
    claim_id = submit(hub, "CS-RETURN", "1200.00")
    decide(hub, claim_id, WU, "approve")
    assert decide(hub, claim_id, ZHENG, "return") == "returned"
    assert pending(hub, claim_id) == {}
    done = hub.db.perform(resubmission(hub, claim_id, ZHOU, "发票已补"), actor="t")
    assert done.claim_status == "in_approval"
    assert sorted(pending(hub, claim_id)) == sorted([WU, ZHENG])
    assert stored_assignees(hub, claim_id) == [[WU, ZHENG]]
    assert decide(hub, claim_id, WU, "approve") == "in_approval"
    assert decide(hub, claim_id, ZHENG, "approve") == "approved"
    rounds = [(t.assignee_id, t.status, t.round) for t in get_claim(hub.db, claim_id).tasks]
    assert rounds == [
        (WU, "approved", 1),
        (ZHENG, "returned", 1),
        (WU, "approved", 2),
        (ZHENG, "approved", 2),
    ]
