"""Approval patterns over real HTTP, on SQLite and PostgreSQL: the hub, the OA and the ERP
simulators as processes. Each pattern goes through the REST API or the OA's signed
`task.decided` webhook (the same command either way), and the OA's todo list follows.

The people: Zhou Jie (E0011) claims; his manager Sun Qiang (E0010) approves first, Wu Lei
(E0012) and Zheng Shuang (E0013) are Sun's team, Wang (E0001) is Sun's manager.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e.helpers import HubClient, StackFactory, assert_problem, claim_body
from support.processes import wait_for

ZHOU, SUN, WU, ZHENG, WANG = "E0011", "E0010", "E0012", "E0013", "E0001"


@pytest.fixture(scope="module")
def clock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clock") / "offset"
    path.write_text("0", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def manual(start_stack: StackFactory, clock_file: Path) -> Iterator[HubClient]:
    """Nobody decides in the OA on their own; the hub's clock can be moved."""
    env = {
        "FINOA_CLOCK_OFFSET_FILE": str(clock_file),
        "FINOA_TIMER_EVERY_SECONDS": "0.2",
    }
    with start_stack(auto_decide=False, extra_env=env) as hub:
        yield hub


def pending(hub: HubClient, claim_id: str, assignee: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for task in hub.claim(claim_id)["tasks"]:
            if task["status"] == "pending" and task["assignee_id"] == assignee:
                return task  # type: ignore[no-any-return]
        return None

    task: dict[str, Any] = wait_for(find, what=f"a task for {assignee}")
    return task


def todo_states(hub: HubClient, claim_id: str) -> dict[str, str]:
    return {t["assignee_id"]: t["state"] for t in hub.oa_todos(claim_id) if t["assignee_id"]}


def wait_todos(hub: HubClient, claim_id: str, expected: dict[str, str]) -> None:
    wait_for(lambda: todo_states(hub, claim_id) == expected, what=f"OA todos {expected}")


def by_webhook(hub: HubClient, task_id: str, **data: Any) -> dict[str, Any]:
    response = hub.webhook({"type": "task.decided", "data": {"task_id": task_id, **data}})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def new_claim(hub: HubClient) -> str:
    claim_id: str = hub.submit(claim_body())["id"]
    return claim_id


def test_transfer_through_the_api_then_approval_through_the_oa(manual: HubClient) -> None:
    """Sun Qiang transfers the claim to Wu Lei in the hub's API (转交); Sun's OA todo closes
    and Wu gets one; Wu approves in the OA and the claim is approved."""
    claim_id = new_claim(manual)
    task = pending(manual, claim_id, SUN)
    wait_todos(manual, claim_id, {SUN: "open"})
    answer = manual.decide(
        task["id"], {"approver_id": SUN, "decision": "transfer", "target_id": WU}
    )
    assert answer.status_code == 200, answer.text
    wu_task = pending(manual, claim_id, WU)
    wait_todos(manual, claim_id, {SUN: "closed", WU: "open"})
    by_webhook(manual, wu_task["id"], approver_id=WU, decision="approve", comment="同意")
    manual.wait_claim(claim_id, "posted")
    wait_todos(manual, claim_id, {SUN: "closed", WU: "closed"})


def test_add_signer_through_the_oa_and_bad_patterns_named(manual: HubClient) -> None:
    """Sun Qiang asks Zheng Shuang first (前加签) from his OA; Zheng approves, Sun approves.
    A transfer without a target, and a transfer to Zhou Jie himself, are refused naming
    target_id, over the API and in the webhook's answer."""
    claim_id = new_claim(manual)
    task = pending(manual, claim_id, SUN)
    missing = manual.decide(task["id"], {"approver_id": SUN, "decision": "transfer"})
    assert_problem(missing, 422, field="target_id")
    own = manual.decide(task["id"], {"approver_id": SUN, "decision": "transfer", "target_id": ZHOU})
    assert_problem(own, 403, field="target_id")
    by_webhook(
        manual,
        task["id"],
        approver_id=SUN,
        decision="add_signer",
        target_id=ZHENG,
        position="before",
    )
    zheng = pending(manual, claim_id, ZHENG)
    by_webhook(manual, zheng["id"], approver_id=ZHENG, decision="approve")
    again = pending(manual, claim_id, SUN)
    assert again["id"] != task["id"]
    by_webhook(manual, again["id"], approver_id=SUN, decision="approve")
    manual.wait_claim(claim_id, "posted")
    statuses = [(t["assignee_id"], t["status"]) for t in manual.claim(claim_id)["tasks"]]
    assert statuses == [(SUN, "signer_added"), (ZHENG, "approved"), (SUN, "approved")]


def test_return_resubmit_and_withdraw(manual: HubClient) -> None:
    """Sun Qiang returns Zhou Jie's claim from the OA (退回); the OA hears `returned`; Zhou
    resubmits through the API; then withdraws it from the OA before anyone decides (撤回)."""
    claim_id = new_claim(manual)
    task = pending(manual, claim_id, SUN)
    result = by_webhook(
        manual, task["id"], approver_id=SUN, decision="return", comment="缺少发票 no invoice"
    )
    assert result["claim_status"] == "returned"
    external_id = manual.claim(claim_id)["external_id"]
    wait_for(
        lambda: "returned" in [h["status"] for h in manual.oa_history(external_id)],
        what="the returned status written back",
    )
    resubmitted = manual.http.post(
        f"{manual.url}/api/v1/claims/{claim_id}/resubmission",
        json={"applicant_id": ZHOU, "comment": "发票已补"},
        headers=manual.auth(),
    )
    assert resubmitted.status_code == 200, resubmitted.text
    assert resubmitted.json()["claim_status"] == "in_approval"
    second = pending(manual, claim_id, SUN)
    assert second["round"] == 2
    by_webhook(manual, second["id"], approver_id=ZHOU, decision="withdraw", comment="不报了")
    claim = manual.claim(claim_id)
    assert claim["status"] == "withdrawn"
    assert [(t["status"], t["round"]) for t in claim["tasks"]] == [
        ("returned", 1),
        ("withdrawn", 2),
    ]
    again = manual.http.post(
        f"{manual.url}/api/v1/claims/{claim_id}/resubmission",
        json={"applicant_id": ZHOU},
        headers=manual.auth(),
    )
    assert_problem(again, 409, field="claim_id")


def test_delegation_through_the_api(manual: HubClient) -> None:
    """Sun Qiang delegates to Wu Lei for a week (委托); a new claim's first task and todo go to
    Wu on Sun's behalf. A window ending before it starts is refused, naming ends_on."""
    bad = manual.http.post(
        f"{manual.url}/api/v1/delegations",
        json={
            "delegator_id": SUN,
            "delegate_id": WU,
            "starts_on": "2026-12-09",
            "ends_on": "2026-12-01",
        },
        headers=manual.auth(),
    )
    assert_problem(bad, 422, field="ends_on")
    made = manual.http.post(
        f"{manual.url}/api/v1/delegations",
        json={
            "delegator_id": SUN,
            "delegate_id": WU,
            "starts_on": "2020-01-01",
            "ends_on": "2020-12-31",
        },
        headers=manual.auth(),
    )
    assert made.status_code == 201, made.text
    past = new_claim(manual)
    assert pending(manual, past, SUN)["on_behalf_of"] is None  # that window is over
    today = date.today()
    current = manual.http.post(
        f"{manual.url}/api/v1/delegations",
        json={
            "delegator_id": SUN,
            "delegate_id": WU,
            "starts_on": (today - timedelta(days=1)).isoformat(),
            "ends_on": (today + timedelta(days=6)).isoformat(),
        },
        headers=manual.auth(),
    )
    assert current.status_code == 201, current.text
    claim_id = new_claim(manual)
    task = pending(manual, claim_id, WU)
    assert task["on_behalf_of"] == SUN
    wait_todos(manual, claim_id, {WU: "open"})
    revoked = manual.http.delete(
        f"{manual.url}/api/v1/delegations/{current.json()['id']}", headers=manual.auth()
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text


def test_a_todo_the_oa_refuses_is_a_dead_letter_with_its_reason(manual: HubClient) -> None:
    """Zheng Shuang has left the company in the OA; Sun Qiang transfers a claim to her, which
    finoa still allows, but the OA refuses her todo: it ends in the dead letters, saying why."""
    departed = manual.http.put(f"{manual.oa_url}/_sim/users/{ZHENG}/departed")
    assert departed.status_code == 200
    claim_id = new_claim(manual)
    task = pending(manual, claim_id, SUN)
    manual.decide(task["id"], {"approver_id": SUN, "decision": "transfer", "target_id": ZHENG})

    def letter() -> dict[str, Any] | None:
        for item in manual.dead_letters():
            if item.get("aggregate_id") == claim_id and item.get("action") == "todo.push":
                return item
        return None

    found = wait_for(letter, what="the refused todo as a dead letter")
    assert "has left the organisation" in str(found), found


def test_reminder_and_escalation_when_the_clock_moves(manual: HubClient, clock_file: Path) -> None:
    """Nobody decides Zhou Jie's claim: a week later (the clock moved) Sun Qiang's OA todo
    has been reminded once and the task has gone on to Wang, with a todo of his own."""
    claim_id = new_claim(manual)
    task = pending(manual, claim_id, SUN)
    wait_todos(manual, claim_id, {SUN: "open"})
    clock_file.write_text(str(7 * 86_400), encoding="utf-8")
    try:
        pending(manual, claim_id, WANG)
        wait_todos(manual, claim_id, {SUN: "closed", WANG: "open"})
        reminded = manual._get(f"{manual.oa_url}/_sim/reminders")
        assert [r["task_id"] for r in reminded].count(task["id"]) == 1
        statuses = [(t["assignee_id"], t["status"]) for t in manual.claim(claim_id)["tasks"]]
        assert statuses == [(SUN, "escalated"), (WANG, "pending")]
    finally:
        clock_file.write_text("0", encoding="utf-8")
