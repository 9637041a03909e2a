"""Countersign (会签) and or-sign (或签) steps of several named people, over real HTTP on
SQLite and PostgreSQL: the hub, the OA and the ERP simulators as processes. A process is
deployed through the API whose first step names its people; each of them gets a task in the
hub and a todo in the OA, and decides through the REST API or the OA's signed `task.decided`
webhook.

The people: Zhou Jie (E0011) claims 1,810.50 元, which needs the first step only. Wu Lei
(E0012), Zheng Shuang (E0013) and Wang (E0001) are the step's people; Qian Jin (E0004) stands
in for Zheng while she is away.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from e2e.helpers import HubClient, StackFactory, assert_problem, claim_body
from support.processes import wait_for

from finoa.workflow.specs import DEFAULT_BPMN

ZHOU, WU, ZHENG, WANG, QIAN = "E0011", "E0012", "E0013", "E0001", "E0004"
MANAGER_ROLE = b'<camunda:property name="role" value="manager" />'


@pytest.fixture(scope="module")
def hub(start_stack: StackFactory) -> Iterator[HubClient]:
    """Nobody decides in the OA on their own."""
    with start_stack(auto_decide=False) as h:
        yield h


def deploy(hub: HubClient, mode: str, users: list[str]) -> None:
    """Deploy the claim process with its first step going to `users` in `mode`."""
    step = (
        b'<camunda:property name="role" value="users" />'
        + f'<camunda:property name="users" value="{",".join(users)}" />'.encode()
        + f'<camunda:property name="mode" value="{mode}" />'.encode()
    )
    bpmn = DEFAULT_BPMN.read_bytes().replace(MANAGER_ROLE, step)
    headers = {
        **hub.auth(hub.token_with("processes:manage processes:read")),
        "content-type": "application/xml",
    }
    url = f"{hub.url}/api/v1/processes"
    response = hub.http.post(url, content=bpmn, headers=headers)
    assert response.status_code in (200, 201), response.text
    assert hub.http.get(f"{url}/claim_approval/bpmn", headers=headers).content == bpmn


def open_tasks(hub: HubClient, claim_id: str) -> dict[str, dict[str, Any]]:
    """The claim's pending tasks by assignee."""
    tasks = hub.claim(claim_id)["tasks"]
    return {t["assignee_id"]: t for t in tasks if t["status"] == "pending"}


def statuses(hub: HubClient, claim_id: str) -> dict[str, str]:
    return {t["assignee_id"]: t["status"] for t in hub.claim(claim_id)["tasks"]}


def todo_states(hub: HubClient, claim_id: str) -> dict[str, str]:
    return {t["assignee_id"]: t["state"] for t in hub.oa_todos(claim_id) if t["assignee_id"]}


def wait_todos(hub: HubClient, claim_id: str, expected: dict[str, str]) -> None:
    wait_for(lambda: todo_states(hub, claim_id) == expected, what=f"OA todos {expected}")


def by_webhook(hub: HubClient, task_id: str, **data: Any) -> dict[str, Any]:
    response = hub.webhook({"type": "task.decided", "data": {"task_id": task_id, **data}})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def by_api(hub: HubClient, task_id: str, **data: Any) -> dict[str, Any]:
    response = hub.decide(task_id, data)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_countersign_of_three_named_people(hub: HubClient) -> None:
    """The first step is a countersign of Wu Lei, Zheng Shuang and Wang: Zhou Jie's claim
    opens three tasks and three OA todos at once. Wu approves in the OA, Zheng through the
    API: the claim is still in approval and only Wang's task is open; Wu may not decide
    Wang's task. Wang approves in the OA and the claim is approved and posted."""
    deploy(hub, "all", [WU, ZHENG, WANG])
    claim = hub.submit(claim_body())
    claim_id = claim["id"]
    assert sorted(t["assignee_id"] for t in claim["tasks"]) == sorted([WU, ZHENG, WANG])
    tasks = open_tasks(hub, claim_id)
    assert len({t["id"] for t in tasks.values()}) == 3
    wait_todos(hub, claim_id, {WU: "open", ZHENG: "open", WANG: "open"})

    first = by_webhook(hub, tasks[WU]["id"], approver_id=WU, decision="approve", comment="同意")
    assert first["claim_status"] == "in_approval"
    second = by_api(hub, tasks[ZHENG]["id"], approver_id=ZHENG, decision="approve")
    assert second["claim_status"] == "in_approval"
    assert list(open_tasks(hub, claim_id)) == [WANG]
    wait_todos(hub, claim_id, {WU: "closed", ZHENG: "closed", WANG: "open"})
    stranger = hub.decide(tasks[WANG]["id"], {"approver_id": WU, "decision": "approve"})
    assert_problem(stranger, 403, field="approver_id")

    last = by_webhook(hub, tasks[WANG]["id"], approver_id=WANG, decision="approve")
    assert last["claim_status"] == "approved"
    hub.wait_claim(claim_id, "posted")
    assert statuses(hub, claim_id) == {WU: "approved", ZHENG: "approved", WANG: "approved"}
    wait_todos(hub, claim_id, {WU: "closed", ZHENG: "closed", WANG: "closed"})


def test_one_rejection_rejects_a_countersign(hub: HubClient) -> None:
    """Same countersign: Wu Lei approves through the API, Zheng Shuang rejects in the OA.
    The claim is rejected at once; Wang's task is withdrawn and his OA todo closed."""
    deploy(hub, "all", [WU, ZHENG, WANG])
    claim_id = hub.submit(claim_body())["id"]
    tasks = open_tasks(hub, claim_id)
    assert sorted(tasks) == sorted([WU, ZHENG, WANG])
    by_api(hub, tasks[WU]["id"], approver_id=WU, decision="approve")
    result = by_webhook(
        hub, tasks[ZHENG]["id"], approver_id=ZHENG, decision="reject", comment="超标 over budget"
    )
    assert result["claim_status"] == "rejected"
    assert hub.claim(claim_id)["status"] == "rejected"
    assert statuses(hub, claim_id) == {WU: "approved", ZHENG: "rejected", WANG: "withdrawn"}
    wait_todos(hub, claim_id, {WU: "closed", ZHENG: "closed", WANG: "closed"})
    late = hub.decide(tasks[WANG]["id"], {"approver_id": WANG, "decision": "approve"})
    assert_problem(late, 409, field="task_id")


def test_or_sign_first_decision_wins(hub: HubClient) -> None:
    """The first step is an or-sign naming Zhou Jie, Wu Lei, Zheng Shuang and Wang; Zheng
    has delegated to Qian Jin this week. Zhou's own claim opens three tasks -- never one for
    him -- and Zheng's goes to Qian on her behalf. Qian approves in the OA first: the claim
    is approved and posted, Wu's and Wang's tasks are withdrawn and their todos closed."""
    today = date.today()
    delegation = hub.http.post(
        f"{hub.url}/api/v1/delegations",
        json={
            "delegator_id": ZHENG,
            "delegate_id": QIAN,
            "starts_on": (today - timedelta(days=1)).isoformat(),
            "ends_on": (today + timedelta(days=6)).isoformat(),
        },
        headers=hub.auth(),
    )
    assert delegation.status_code == 201, delegation.text
    deploy(hub, "any", [ZHOU, WU, ZHENG, WANG])
    claim_id = hub.submit(claim_body())["id"]
    tasks = open_tasks(hub, claim_id)
    assert sorted(tasks) == sorted([WU, QIAN, WANG])
    assert tasks[QIAN]["on_behalf_of"] == ZHENG
    assert tasks[WU]["on_behalf_of"] is None
    wait_todos(hub, claim_id, {WU: "open", QIAN: "open", WANG: "open"})

    result = by_webhook(hub, tasks[QIAN]["id"], approver_id=QIAN, decision="approve")
    assert result["claim_status"] == "approved"
    hub.wait_claim(claim_id, "posted")
    assert statuses(hub, claim_id) == {WU: "withdrawn", QIAN: "approved", WANG: "withdrawn"}
    wait_todos(hub, claim_id, {WU: "closed", QIAN: "closed", WANG: "closed"})
    late = hub.decide(tasks[WU]["id"], {"approver_id": WU, "decision": "approve"})
    assert_problem(late, 409, field="task_id")
