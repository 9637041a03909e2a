"""finoa's WeCom client against the simulator in its own process: tokens and their expiry,
approvals by control type, the per-task approvals, sweeps, contacts, base data and rate
limits as WeCom enforces them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from support.notices import NOTICE
from support.pacing import check_paced_at_quota
from support.processes import wait_for
from support.wecom import CLAIM, TODO, WeComSim, employee_approval, message

from finoa.connectors.base import ApprovalResult, ConcludeApproval, DecideTask, SubmitClaim
from finoa.connectors.wecom.client import WeComConnector
from finoa.connectors.wecom.mapping import form_of
from finoa.connectors.wecom.simulator import TASK_CREATOR
from finoa.messaging.retry import DeliveryError, ErrorClass

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http() -> Any:
    async with httpx.AsyncClient() as client:
        yield client


def only_approval(sim: WeComSim) -> dict[str, Any]:
    (approval,) = sim.get("/_sim/approvals")
    return dict(approval)


async def test_a_claim_becomes_an_approval_with_each_control_as_its_type_takes_it(
    sim: WeComSim, http: httpx.AsyncClient
) -> None:
    connector = WeComConnector(sim.config(), http)
    (result,) = await connector.deliver([message("approval.create", CLAIM)])
    assert result.ok, result.error
    sp_no = result.response["oa_approval_id"]
    approval = only_approval(sim)
    assert approval["sp_no"] == sp_no and approval["applyer"] == {"userid": "E0011", "partyid": "3"}
    assert approval["sp_record"][0]["details"][0]["approver"]["userid"] == "E0010"  # the manager
    controls = {c["id"]: c for c in approval["apply_data"]["contents"]}
    assert controls["Money-1004"]["value"] == {"new_money": "1234.50"}
    (first, second) = controls["Table-1008"]["value"]["children"]
    cells = {c["id"]: c["value"] for c in first["list"]}
    assert cells["Selector-1009"]["selector"]["options"][0]["key"] == "option-1"  # 差旅费
    assert cells["Date-1012"] == {"date": {"type": "day", "s_timestamp": "1795104000"}}
    assert form_of(second["list"])["金额（元）"] == "234.50"
    assert form_of(approval["apply_data"]["contents"])["finoa单号"] == "CL0001"
    # The posted-lookup finds it by the claim id in the approval; another claim is not there.
    (found,) = await connector.lookup([message("approval.create", CLAIM)])
    assert found is not None and found.response == {"oa_approval_id": sp_no}
    (absent,) = await connector.lookup([message("approval.create", {**CLAIM, "id": "CL9999"})])
    assert absent is None


async def test_departed_or_unknown_people_and_departments_are_refused(
    sim: WeComSim, http: httpx.AsyncClient
) -> None:
    connector = WeComConnector(sim.config(), http)
    departed = {**CLAIM, "applicant_id": "E0099"}
    elsewhere = {**CLAIM, "department_id": "D03"}
    results = await connector.deliver(
        [message("approval.create", departed), message("approval.create", elsewhere, 2)]
    )
    errors = [r.error for r in results]
    assert [e.error_class if e else None for e in errors] == [
        ErrorClass.PERMANENT,
        ErrorClass.PERMANENT,
    ]
    assert "60111" in errors[0].reason and "已离职" in errors[0].reason  # type: ignore[union-attr]
    assert "301055" in errors[1].reason  # type: ignore[union-attr]
    assert sim.get("/_sim/stats")["approvals"] == {}


async def test_an_expired_token_is_refused_with_42001_and_refreshed_once(
    sim: WeComSim, http: httpx.AsyncClient
) -> None:
    connector = WeComConnector(sim.config(), http)
    assert (await connector.deliver([message("approval.create", CLAIM)]))[0].ok
    assert sim.post("/_sim/tokens:expire").json()["expired"] == 1
    (again,) = await connector.deliver([message("approval.create", {**CLAIM, "id": "CL0002"}, 2)])
    assert again.ok, again.error
    stats = sim.get("/_sim/stats")
    assert stats["tokens_issued"] == 2 and stats["token_refusals"] == 1
    raw = httpx.get(f"{sim.url}/cgi-bin/department/list", params={"access_token": "forged"})
    assert raw.status_code == 200 and raw.json()["errcode"] == 40014


async def test_a_token_is_fetched_again_before_it_expires(
    start_sim: Any, http: httpx.AsyncClient
) -> None:
    sim = start_sim("--token-ttl", "200", "--no-auto-decide")  # inside the 5-minute margin
    api = WeComConnector(sim.config(), http).api
    assert api is not None
    for _ in range(3):
        await api.departments()
    stats = sim.get("/_sim/stats")
    assert stats["tokens_issued"] == 3 and stats["token_refusals"] == 0


async def test_a_wrong_secret_is_an_auth_failure_and_a_wrong_corpid_a_config_one(
    sim: WeComSim, http: httpx.AsyncClient
) -> None:
    connector = WeComConnector(sim.config(corp_secret="wrong"), http)
    (result,) = await connector.deliver([message("approval.create", CLAIM)])
    assert result.error is not None and result.error.error_class is ErrorClass.AUTH
    assert "40001" in result.error.reason
    health = await connector.health()
    assert not health.ok and "refused the corpid/corpsecret" in health.detail
    other = WeComConnector(sim.config(corp_id="ww0000"), http)
    (wrong,) = await other.deliver([message("approval.create", CLAIM)])
    assert wrong.error is not None and wrong.error.error_class is ErrorClass.CONFIG
    assert (await WeComConnector(sim.config(), http).health()).ok


async def test_a_claim_the_template_cannot_take_is_a_config_error(
    sim: WeComSim, http: httpx.AsyncClient
) -> None:
    connector = WeComConnector(sim.config(), http)
    results = await connector.deliver(
        [
            message("approval.create", {**CLAIM, "lines": []}),
            message("approval.create", {**CLAIM, "title": ""}, 2),
        ]
    )
    assert [r.error.error_class if r.error else None for r in results] == [ErrorClass.CONFIG] * 2
    assert "费用明细" in results[0].error.reason  # type: ignore[union-attr]
    assert sim.get("/_sim/stats")["approvals"] == {}


async def test_a_task_is_an_approval_for_its_assignee_and_its_decision_comes_back(
    sim: WeComSim, http: httpx.AsyncClient
) -> None:
    connector = WeComConnector(sim.config(), http)
    (created,) = await connector.deliver([message("todo.push", TODO)])
    assert created.ok, created.error
    approval = only_approval(sim)
    assert approval["template_id"] == sim.credentials["task_template_id"]
    assert approval["applyer"]["userid"] == TASK_CREATOR
    assert approval["sp_record"][0]["details"][0]["approver"]["userid"] == "E0010"
    (found,) = await connector.lookup([message("todo.push", TODO)])
    assert found is not None and found.response["todo_id"] == created.response["todo_id"]
    (absent,) = await connector.lookup([message("todo.push", {**TODO, "task_id": "T-404"})])
    assert absent is None
    (closed,) = await connector.deliver([message("todo.push", {**TODO, "op": "close"}, 2)])
    assert closed.ok and closed.response == {"status": "closed"}
    answer = sim.post(f"/_sim/approvals/{approval['sp_no']}/decide", {"result": "reject"})
    assert answer.status_code == 200, answer.text
    now = datetime.now(UTC)
    changes = await connector.approval_changes(now - timedelta(hours=1), now)
    assert changes.commands == (
        DecideTask(
            f"wecom-task:{approval['sp_no']}", "T-1", "E0010", False, "预算不足 / over budget"
        ),
    )
    config = sim.config()
    del config["task_creator_userid"]
    without = WeComConnector(config, http)
    (refused,) = await without.deliver([message("todo.push", TODO, 3)])
    assert refused.error is not None and refused.error.error_class is ErrorClass.CONFIG
    assert "task_creator_userid" in refused.error.reason


async def test_a_sweep_finds_employee_approvals_and_results_page_by_page(
    sim: WeComSim, http: httpx.AsyncClient
) -> None:
    connector = WeComConnector(sim.config(), http)
    sp_nos = []
    for n in range(3):
        body = employee_approval("E0031", "option-4", f"{60 + n}.00")
        answer = sim.post("/_sim/approvals", body)
        assert answer.status_code == 200, answer.text
        sp_nos.append(answer.json()["sp_no"])
    sim.post(f"/_sim/approvals/{sp_nos[0]}/decide", {"result": "agree"})
    sim.post(f"/_sim/approvals/{sp_nos[1]}/decide", {"result": "revoke"})
    api = connector.api
    assert api is not None
    now = datetime.now(UTC)
    assert await api.list_sp_nos(now - timedelta(days=40), now) == sp_nos  # two windows
    changes = await connector.approval_changes(now - timedelta(hours=1), now)
    kinds = [(type(c).__name__, getattr(c, "oa_approval_id", None)) for c in changes.commands]
    assert kinds == [
        ("SubmitClaim", sp_nos[0]),
        ("ConcludeApproval", sp_nos[0]),
        ("SubmitClaim", sp_nos[1]),
        ("ConcludeApproval", sp_nos[1]),
        ("SubmitClaim", sp_nos[2]),
    ]
    submitted = changes.commands[0]
    assert isinstance(submitted, SubmitClaim)
    claim = submitted.submission
    assert (claim.applicant_id, claim.department_id, claim.external_id) == (
        "E0031",
        "D04",
        sp_nos[0],
    )
    assert claim.lines[0].category == "transport" and str(claim.lines[0].amount) == "60.00"
    assert claim.lines[0].expense_date.isoformat() == "2026-11-20"
    concluded = changes.commands[3]
    assert isinstance(concluded, ConcludeApproval) and concluded.result is ApprovalResult.REVOKE


async def test_contacts_are_read_as_master_data(sim: WeComSim, http: httpx.AsyncClient) -> None:
    api = WeComConnector(sim.config(), http).api
    assert api is not None
    departments = await api.departments()
    assert {d["id"] for d in departments} == {1, 2, 3, 4, 5, 6}
    assert {d["id"] for d in await api.departments(3)} == {3}
    sales = await api.users(3)
    assert "E0010" in {u["userid"] for u in sales} and "E0099" not in {u["userid"] for u in sales}
    everyone = await api.users(1, fetch_child=True, simple=False)
    assert len(everyone) == 17 and all(u["status"] == 1 for u in everyone)
    with pytest.raises(DeliveryError, match="60111"):
        await api.user("E0099")
    with pytest.raises(DeliveryError, match="60123"):
        await api.users(99)


async def test_rate_limits_are_errcode_45009_classed_rate_limited(
    start_sim: Any, http: httpx.AsyncClient
) -> None:
    sim = start_sim("--qps", "3", "--no-auto-decide")
    connector = WeComConnector(sim.config(), http)
    results = await connector.deliver(
        [message("approval.create", {**CLAIM, "id": f"CL{n}"}, n) for n in range(4)]
    )
    limited = [r.error for r in results if r.error]
    assert limited and all(e.error_class is ErrorClass.RATE_LIMITED for e in limited)
    assert "45009" in limited[0].reason and limited[0].retry_after is not None
    wait_for(lambda: sim.get("/_sim/stats")["rate_limited"] >= 1, 5, "a refusal counted")


async def test_calls_are_paced_at_the_apps_quota(start_sim: Any, http: httpx.AsyncClient) -> None:
    claims = [message("approval.create", {**CLAIM, "id": f"CL{n}"}, n) for n in range(4)]
    await check_paced_at_quota(start_sim, WeComConnector, claims, http)


async def test_task_reports_tell_the_sweeper_what_wecom_holds_on_each_task(
    sim: WeComSim, http: httpx.AsyncClient
) -> None:
    from finoa.connectors.base import ApprovalSource, TaskReport

    connector = WeComConnector(sim.config(), http)
    assert isinstance(connector, ApprovalSource)
    todos = [
        {**TODO, "task_id": "T-1"},
        {**TODO, "task_id": "T-2"},
        {**TODO, "task_id": "T-3", "assignee_id": "E0003", "role": "finance_director"},
    ]
    created = await connector.deliver([message("todo.push", t, n) for n, t in enumerate(todos)])
    assert all(r.ok for r in created), [r.error for r in created]
    sp = {t["task_id"]: r.response["todo_id"] for t, r in zip(todos, created, strict=True)}
    sim.post(f"/_sim/approvals/{sp['T-1']}/decide", {"result": "agree"})
    sim.post(f"/_sim/approvals/{sp['T-3']}/decide", {"result": "reject", "speech": "超标"})
    reports = await connector.task_reports(["T-1", "T-2", "T-3", "T-404"])
    by_task = {r.task_id: r for r in reports}
    assert [r.task_id for r in reports] == ["T-1", "T-2", "T-3", "T-404"]
    assert (by_task["T-1"].state, by_task["T-1"].approver_id) == ("approved", "E0010")
    assert by_task["T-1"].message_id == f"wecom-task:{sp['T-1']}"
    assert by_task["T-1"].decided_at is not None
    assert by_task["T-2"] == TaskReport("T-2", "pending")
    assert (by_task["T-3"].state, by_task["T-3"].approver_id, by_task["T-3"].comment) == (
        "rejected",
        "E0003",
        "超标",
    )
    assert by_task["T-404"] == TaskReport("T-404", "unknown")


async def test_a_notice_is_an_application_message_sent_once_within_the_duplicate_check(
    sim: WeComSim, http: httpx.AsyncClient
) -> None:
    connector = WeComConnector(sim.config(), http)
    (sent,) = await connector.deliver([message("notice.send", NOTICE)])
    assert sent.ok, sent.error
    (again,) = await connector.deliver([message("notice.send", NOTICE, 2)])  # a re-send
    assert again.ok and again.response["msgid"] == sent.response["msgid"]
    (kept,) = sim.get("/_sim/messages")
    assert kept["touser"] == "E0011"
    assert kept["content"].splitlines() == [NOTICE["title"], NOTICE["body"]]
    assert sim.get("/_sim/stats")["messages_deduplicated"] == 1
    departed = {**NOTICE, "notice_id": "n-2", "recipient_id": "E0099"}
    (refused,) = await connector.deliver([message("notice.send", departed, 3)])
    assert refused.error is not None and refused.error.error_class is ErrorClass.PERMANENT
    assert "81013" in refused.error.reason
