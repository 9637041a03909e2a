"""Approval patterns as scenarios, on SQLite and PostgreSQL: each test tells a short story.

The company is the sample one: Zhou Jie (E0011, Sales) reports to Sun Qiang (E0010), whose
team also has Wu Lei (E0012) and Zheng Shuang (E0013); Zhao Min (E0003) is the finance
director, Qian Jin (E0004) works for her, Li Fang (E0002) is the CFO. A claim of 6,200 元 is
approved by the direct manager and then the finance director.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.claims import one_line_claim

from finoa.domain.errors import Conflict, Forbidden, InvalidInput
from finoa.services.approvals import decide_task, resubmission
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.delegations import revoke_delegation, set_delegation
from finoa.services.queries import get_claim
from finoa.store.tables import outbox
from finoa.workflow import ApprovalEngine
from finoa.workflow.specs import DEFAULT_BPMN, DEFAULT_DMN

ZHOU, SUN, WU, ZHENG = "E0011", "E0010", "E0012", "E0013"
ZHAO, QIAN, LI = "E0003", "E0004", "E0002"
FD_ROLE = '<camunda:property name="role" value="finance_director" />'


def submit(hub: Hub, external_id: str, amount: str = "6200.00") -> str:
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


def tasks(hub: Hub, claim_id: str) -> list[tuple[str, str, str]]:
    """(role, assignee, status) of every task of the claim, in the order they were opened."""
    return [(t.role, t.assignee_id, t.status) for t in get_claim(hub.db, claim_id).tasks]


def open_task(hub: Hub, claim_id: str, assignee: str) -> Any:
    found = [
        t
        for t in get_claim(hub.db, claim_id).tasks
        if t.status == "pending" and t.assignee_id == assignee
    ]
    assert len(found) == 1, tasks(hub, claim_id)
    return found[0]


def act(hub: Hub, claim_id: str, who: str, action: str, **kw: Any) -> str:
    task = open_task(hub, claim_id, who)
    comment = kw.pop("comment", f"{action} by {who}")
    result = decide_task(
        hub, task.id, who, action == "approve", comment, actor="t", action=action, **kw
    )
    return result.claim_status


def todos(hub: Hub, claim_id: str) -> list[tuple[str, str]]:
    """(op, assignee) of the todo messages queued for the claim's OA, in order."""
    with hub.db.engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.payload)
            .where(outbox.c.aggregate_id == claim_id, outbox.c.action == "todo.push")
            .order_by(outbox.c.id)
        ).all()
    return [(r.payload["op"], r.payload["assignee_id"]) for r in rows]


def with_finance_step(hub: Hub, tmp_path: Path, mode: str) -> None:
    """The hub runs a process whose finance-director step is a countersign or an or-sign."""
    text = DEFAULT_BPMN.read_text(encoding="utf-8")
    bpmn = tmp_path / f"claim_approval_{mode}.bpmn"
    extra = f'<camunda:property name="mode" value="{mode}" />'
    bpmn.write_text(text.replace(FD_ROLE, FD_ROLE + extra), encoding="utf-8")
    hub.engine = ApprovalEngine(bpmn, DEFAULT_DMN)


def test_sequential_levels(hub: Hub) -> None:
    """Zhou Jie claims a trip of 6,200 元: Sun Qiang approves, then Zhao Min; the claim is
    approved and each approver had a todo that was closed when they decided."""
    claim_id = submit(hub, "PAT-SEQ")
    assert act(hub, claim_id, SUN, "approve") == "in_approval"
    assert act(hub, claim_id, ZHAO, "approve") == "approved"
    assert tasks(hub, claim_id) == [
        ("manager", SUN, "approved"),
        ("finance_director", ZHAO, "approved"),
    ]
    assert todos(hub, claim_id) == [
        ("create", SUN),
        ("close", SUN),
        ("create", ZHAO),
        ("close", ZHAO),
    ]


def test_transfer(hub: Hub) -> None:
    """Sun Qiang is on a trade fair and transfers Zhou Jie's claim to Wu Lei: Sun's todo
    closes, Wu gets the task and a todo, Sun can no longer decide, Wu's approval counts."""
    claim_id = submit(hub, "PAT-TRANSFER")
    sun_task = open_task(hub, claim_id, SUN)
    assert act(hub, claim_id, SUN, "transfer", target=WU) == "in_approval"
    with pytest.raises(Conflict, match="already decided"):
        decide_task(hub, sun_task.id, SUN, True, None, actor="t")
    assert act(hub, claim_id, WU, "approve") == "in_approval"
    assert tasks(hub, claim_id) == [
        ("manager", SUN, "transferred"),
        ("manager", WU, "approved"),
        ("finance_director", ZHAO, "pending"),
    ]
    assert todos(hub, claim_id)[:4] == [
        ("create", SUN),
        ("close", SUN),
        ("create", WU),
        ("close", WU),
    ]


def test_transfer_refuses_the_applicant_and_unknown_people(hub: Hub) -> None:
    """Sun Qiang tries to transfer the claim to Zhou Jie himself, then to nobody known: both
    are refused, naming target_id, and nothing changes."""
    claim_id = submit(hub, "PAT-TRANSFER-BAD")
    before = (tasks(hub, claim_id), todos(hub, claim_id))
    with pytest.raises(Forbidden) as own:
        act(hub, claim_id, SUN, "transfer", target=ZHOU)
    assert own.value.field == "target_id"
    with pytest.raises(InvalidInput) as unknown:
        act(hub, claim_id, SUN, "transfer", target="E9999")
    assert unknown.value.field == "target_id"
    assert (tasks(hub, claim_id), todos(hub, claim_id)) == before


def test_add_signer_before(hub: Hub) -> None:
    """Sun Qiang wants Zheng Shuang, who organised the trip, to look first (前加签): Zheng
    decides, then the task comes back to Sun, then it goes on to Zhao Min."""
    claim_id = submit(hub, "PAT-SIGN-BEFORE")
    act(hub, claim_id, SUN, "add_signer", target=ZHENG, position="before")
    assert tasks(hub, claim_id) == [("manager", SUN, "signer_added"), ("manager", ZHENG, "pending")]
    act(hub, claim_id, ZHENG, "approve")
    assert tasks(hub, claim_id)[-1] == ("manager", SUN, "pending")
    act(hub, claim_id, SUN, "approve")
    assert tasks(hub, claim_id)[-1] == ("finance_director", ZHAO, "pending")
    assert act(hub, claim_id, ZHAO, "approve") == "approved"


def test_add_signer_after(hub: Hub) -> None:
    """Sun Qiang approves and adds Zheng Shuang after himself (后加签): Zheng decides next, and
    her rejection rejects the claim."""
    claim_id = submit(hub, "PAT-SIGN-AFTER")
    act(hub, claim_id, SUN, "add_signer", target=ZHENG, position="after")
    assert tasks(hub, claim_id) == [("manager", SUN, "approved"), ("manager", ZHENG, "pending")]
    assert (
        act(hub, claim_id, ZHENG, "reject", comment="酒店超标 hotel over the limit") == "rejected"
    )
    claim = get_claim(hub.db, claim_id)
    assert claim.reason == "酒店超标 hotel over the limit"


def test_countersign_all_must_approve(hub: Hub, tmp_path: Path) -> None:
    """The finance step is a countersign (会签): Zhao Min adds Qian Jin; Zhao's approval alone
    does not decide it, both approvals do."""
    with_finance_step(hub, tmp_path, "all")
    claim_id = submit(hub, "PAT-ALL")
    act(hub, claim_id, SUN, "approve")
    act(hub, claim_id, ZHAO, "add_signer", target=QIAN)
    assert tasks(hub, claim_id)[1:] == [
        ("finance_director", ZHAO, "pending"),
        ("finance_director", QIAN, "pending"),
    ]
    assert act(hub, claim_id, ZHAO, "approve") == "in_approval"
    assert act(hub, claim_id, QIAN, "approve") == "approved"
    assert [status for _, _, status in tasks(hub, claim_id)] == ["approved"] * 3


def test_or_sign_first_decision_wins(hub: Hub, tmp_path: Path) -> None:
    """The finance step is an or-sign (或签) of Zhao Min and Qian Jin: Qian approves first, so
    the claim is approved and Zhao's task and todo are withdrawn."""
    with_finance_step(hub, tmp_path, "any")
    claim_id = submit(hub, "PAT-ANY")
    act(hub, claim_id, SUN, "approve")
    act(hub, claim_id, ZHAO, "add_signer", target=QIAN)
    assert act(hub, claim_id, QIAN, "approve") == "approved"
    assert tasks(hub, claim_id) == [
        ("manager", SUN, "approved"),
        ("finance_director", ZHAO, "withdrawn"),
        ("finance_director", QIAN, "approved"),
    ]
    assert todos(hub, claim_id)[2:] == [
        ("create", ZHAO),
        ("create", QIAN),
        ("close", QIAN),
        ("close", ZHAO),
    ]


def test_return_to_the_applicant_and_resubmit(hub: Hub) -> None:
    """Zhao Min returns the claim to Zhou Jie for a missing invoice (退回); Zhou resubmits;
    the first round's tasks stay visible, Sun and Zhao approve again in round 2."""
    claim_id = submit(hub, "PAT-RETURN")
    act(hub, claim_id, SUN, "approve")
    status = act(hub, claim_id, ZHAO, "return", comment="缺少发票 an invoice is missing")
    assert status == "returned"
    claim = get_claim(hub.db, claim_id)
    assert (claim.status, claim.reason) == ("returned", "缺少发票 an invoice is missing")
    assert not [t for t in claim.tasks if t.status == "pending"]
    with pytest.raises(Forbidden):
        hub.db.perform(resubmission(hub, claim_id, SUN, None), actor="t")
    done = hub.db.perform(resubmission(hub, claim_id, ZHOU, "发票已补"), actor="t")
    assert done.claim_status == "in_approval"
    act(hub, claim_id, SUN, "approve")
    assert act(hub, claim_id, ZHAO, "approve") == "approved"
    rounds = [(t.role, t.assignee_id, t.status, t.round) for t in get_claim(hub.db, claim_id).tasks]
    assert rounds == [
        ("manager", SUN, "approved", 1),
        ("finance_director", ZHAO, "returned", 1),
        ("manager", SUN, "approved", 2),
        ("finance_director", ZHAO, "approved", 2),
    ]


def test_return_to_an_earlier_step(hub: Hub) -> None:
    """Zhao Min sends the claim back to the manager step (退回到直属上级): Sun decides again,
    then Zhao; a return to a step not yet passed is refused, naming to_step."""
    claim_id = submit(hub, "PAT-RETURN-STEP")
    with pytest.raises(InvalidInput) as early:
        act(hub, claim_id, SUN, "return", target="finance_director_approval", comment="x")
    assert early.value.field == "to_step"
    act(hub, claim_id, SUN, "approve")
    act(hub, claim_id, ZHAO, "return", target="manager_approval", comment="请核对 please check")
    assert tasks(hub, claim_id)[-1] == ("manager", SUN, "pending")
    act(hub, claim_id, SUN, "approve")
    assert act(hub, claim_id, ZHAO, "approve") == "approved"


def test_withdraw_before_the_first_decision_only(hub: Hub) -> None:
    """Zhou Jie withdraws one claim before Sun Qiang looked at it (撤回): withdrawn, the todo
    closed. On another, Sun has approved already: the withdrawal is refused, naming him."""
    claim_id = submit(hub, "PAT-WITHDRAW")
    assert act_as_applicant(hub, claim_id) == "withdrawn"
    assert tasks(hub, claim_id) == [("manager", SUN, "withdrawn")]
    assert todos(hub, claim_id) == [("create", SUN), ("close", SUN)]

    late = submit(hub, "PAT-WITHDRAW-LATE")
    act(hub, late, SUN, "approve")
    with pytest.raises(Conflict, match=f"{SUN} decided task"):
        act_as_applicant(hub, late)
    assert get_claim(hub.db, late).status == "in_approval"


def act_as_applicant(hub: Hub, claim_id: str) -> str:
    (task,) = [t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending"]
    result = decide_task(hub, task.id, ZHOU, False, "不报了", actor="t", action="withdraw")
    return result.claim_status


def test_segregation_of_duties(hub: Hub) -> None:
    """Sun Qiang approved as manager; Zhao Min transfers the finance step to him: he may not
    approve a second step of the same claim (allow_repeat_approver is off)."""
    claim_id = submit(hub, "PAT-SOD")
    act(hub, claim_id, SUN, "approve")
    act(hub, claim_id, ZHAO, "transfer", target=SUN)
    with pytest.raises(Forbidden, match="once per chain .*transfer the task to E0001"):
        act(hub, claim_id, SUN, "approve")
    hub.settings = replace(hub.settings, allow_repeat_approver=True)
    assert act(hub, claim_id, SUN, "approve") == "approved"


def test_delegation(hub: Hub) -> None:
    """Sun Qiang is on leave this week and delegates his approvals to Wu Lei (委托): Zhou
    Jie's new claim goes to Wu on Sun's behalf; once revoked, the next goes to Sun again."""
    today = hub.db.clock().astimezone(hub.settings.company_zone).date()
    made = set_delegation(hub.db, SUN, WU, today, today + timedelta(days=6), actor="t")
    claim_id = submit(hub, "PAT-DELEGATE")
    task = open_task(hub, claim_id, WU)
    assert task.on_behalf_of == SUN
    act(hub, claim_id, WU, "approve")
    revoke_delegation(hub.db, made.id, actor="t")
    after = submit(hub, "PAT-DELEGATE-2")
    assert open_task(hub, after, SUN).on_behalf_of is None
    other_type = set_delegation(hub.db, SUN, WU, today, today, "purchase_request", actor="t")
    assert other_type.document_type == "purchase_request"
    assert open_task(hub, submit(hub, "PAT-DELEGATE-3"), SUN).on_behalf_of is None
