"""The Weaver connector against the e-cology simulator running as a real process: the RSA
token handshake and re-auth on expiry, workflow requests by REST and by SOAP (zeep), HRM
master data, unified todos, and e-cology's error shapes classed for the retry table."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import zeep
from support.claims import one_line_claim
from support.notices import NOTICE
from support.processes import Server
from support.weaver import weaver_config, weaver_simulator

from finoa.connectors.base import ApprovalResult, ConcludeApproval, OutboundMessage, SubmitClaim
from finoa.connectors.weaver import crypto
from finoa.connectors.weaver.client import WeaverConnector, register
from finoa.connectors.weaver.wsdl import WORKFLOW_NS
from finoa.messaging.retry import DeliveryError, ErrorClass


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    with weaver_simulator(tmp_path_factory.mktemp("weaver"), auto_decide=False) as running:
        yield running


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def with_connector(sim: tuple[Server, dict[str, str]], work: Any, **overrides: Any) -> Any:
    server, credentials = sim
    async with httpx.AsyncClient() as http:
        connector = WeaverConnector(weaver_config(server.url, credentials, **overrides), http)
        try:
            return await work(connector)
        finally:
            await connector.aclose()


def get(server: Server, path: str) -> Any:
    return httpx.get(server.url + path).json()


CLAIM = one_line_claim(
    "OA-W1", applicant_id="E0011", department_id="D02", category="travel", amount="1280.50"
)


def test_regist_hands_out_the_secret_and_spk_the_console_shows(sim: Any) -> None:
    server, credentials = sim
    client_key = crypto.new_private_key()

    async def work() -> tuple[str, str]:
        async with httpx.AsyncClient() as http:
            return await register(
                http, server.url, credentials["appid"], crypto.public_key_text(client_key)
            )

    secret, spk = run(work())
    assert (secret, spk) == (credentials["secret"], credentials["spk"])

    async def refused() -> None:
        async with httpx.AsyncClient() as http:
            await register(http, server.url, "NOT-AN-APPID")

    with pytest.raises(DeliveryError) as error:
        run(refused())
    assert error.value.error_class is ErrorClass.AUTH


def test_token_handshake_and_reauth_after_expiry(sim: Any) -> None:
    server, _ = sim

    async def work(connector: WeaverConnector) -> tuple[int, int, int]:
        health = await connector.health()
        assert health.ok, health.detail
        users = await connector.users()
        status = {user["loginid"]: user["status"] for user in users}
        assert status["E0099"] == "5" and status["E0011"] == "1"  # 离职 / 正式
        httpx.post(server.url + "/_sim/expire-tokens")  # every token e-cology issued expires
        departments = await connector.departments()
        assert connector.auth is not None
        return len(users), len(departments), connector.auth.tokens.fetches

    users, departments, fetches = run(with_connector(sim, work))
    assert (users, departments) == (18, 6)
    assert fetches == 2  # the expired token was refused once, fetched again, and the call went


def test_a_wrong_secret_is_an_auth_failure_and_creates_nothing(sim: Any) -> None:
    server, _ = sim
    before = len(get(server, "/_sim/requests"))

    async def work(connector: WeaverConnector) -> None:
        await connector.create_request(CLAIM, 128050)

    with pytest.raises(DeliveryError) as error:
        run(with_connector(sim, work, secret="not-the-secret"))
    assert error.value.error_class is ErrorClass.AUTH
    assert "applytoken" in error.value.reason
    assert len(get(server, "/_sim/requests")) == before


def test_requests_by_rest_and_soap_without_idempotency(sim: Any) -> None:
    server, _ = sim

    async def work(connector: WeaverConnector) -> tuple[int, int, int, dict[str, Any]]:
        first = await connector.create_request(CLAIM, 128050)
        second = await connector.create_request(CLAIM, 128050)
        by_soap = await connector.create_request_soap(CLAIM, 128050)
        return first, second, by_soap, await connector.request_status(first)

    first, second, by_soap, status = run(with_connector(sim, work))
    assert len({first, second, by_soap}) == 3  # e-cology keeps no idempotency key
    assert status["requestId"] == first and status["currentNodeName"] == "部门经理审批"
    stored = {r["requestid"]: r for r in get(server, "/_sim/requests")}
    assert stored[first]["mainData"]["je"] == "1280.50"
    assert stored[first]["mainData"]["sqr"] == "E0011"
    assert stored[by_soap]["channel"] == "soap"
    assert stored[by_soap]["mainData"]["wbdh"] == "OA-W1"


def test_refusals_are_classed_and_create_nothing(sim: Any) -> None:
    server, _ = sim
    before = len(get(server, "/_sim/requests"))
    departed = one_line_claim(
        "OA-W2", applicant_id="E0099", department_id="D02", category="travel", amount="10"
    )

    async def rest(connector: WeaverConnector) -> None:
        await connector.create_request(departed, 1000)

    with pytest.raises(DeliveryError) as error:
        run(with_connector(sim, rest))
    assert error.value.error_class is ErrorClass.PERMANENT
    assert "USER_EXCEPTION" in error.value.reason and "E0099" in error.value.reason

    async def soap(connector: WeaverConnector) -> None:
        await connector.create_request_soap(CLAIM, 128050)

    with pytest.raises(DeliveryError) as error:
        run(with_connector(sim, soap, user_id="999"))  # no such e-cology user
    assert error.value.error_class is ErrorClass.CONFIG and "-2" in error.value.reason

    nowhere = one_line_claim(
        "OA-W3", applicant_id="E0011", department_id="D99", category="travel", amount="10"
    )

    async def unknown_department(connector: WeaverConnector) -> None:
        await connector.create_request(nowhere, 1000)

    with pytest.raises(DeliveryError) as error:
        run(with_connector(sim, unknown_department))
    assert error.value.error_class is ErrorClass.PERMANENT and "D99" in error.value.reason

    async def unknown_workflow(connector: WeaverConnector) -> None:
        await connector.create_request(CLAIM, 128050)

    with pytest.raises(DeliveryError) as error:
        run(with_connector(sim, unknown_workflow, workflow_id="404"))
    assert error.value.error_class is ErrorClass.PERMANENT and "PARAM_ERROR" in error.value.reason
    assert len(get(server, "/_sim/requests")) == before


def test_zeep_reads_the_simulators_workflow_service_wsdl(sim: Any) -> None:
    server, _ = sim
    client = zeep.Client(server.url + "/services/WorkflowService?wsdl")
    info_type = client.get_type(f"{{{WORKFLOW_NS}}}WorkflowRequestInfo")
    info = info_type(
        creatorId="11",
        requestName="差旅报销-周杰",
        workflowBaseInfo={"workflowId": "6"},
        workflowMainTableInfo={
            "requestRecords": {
                "WorkflowRequestTableRecord": [
                    {
                        "workflowRequestTableFields": {
                            "WorkflowRequestTableField": [
                                {"fieldName": "je", "fieldValue": "100.00", "view": True},
                                {"fieldName": "sqr", "fieldValue": "E0011"},
                            ]
                        }
                    }
                ]
            }
        },
    )
    request_id = client.service.doCreateWorkflowRequest(in0=info, in1=11)
    assert int(request_id) > 0
    assert client.service.doCreateWorkflowRequest(in0=info, in1=18) == "-2"  # E0099 left


def todo(message_id: int, op: str, task_id: str, assignee: str = "E0010") -> OutboundMessage:
    payload = {
        "op": op, "task_id": task_id, "claim_id": "CL1", "external_id": "OA-1",
        "assignee_id": assignee, "role": "manager", "title": "报销 1,280.50 CNY",
        "amount_fen": 128050, "currency": "CNY",
    }  # fmt: skip
    return OutboundMessage(message_id, "todo.push", "CL1", f"todo:{task_id}:{op}", payload)


def test_unified_todos_open_close_and_replays_change_nothing(sim: Any) -> None:
    server, _ = sim

    async def deliver(connector: WeaverConnector, *messages: OutboundMessage) -> list[Any]:
        return await connector.deliver(messages)

    async def work(connector: WeaverConnector) -> list[list[Any]]:
        return [
            await deliver(connector, todo(10, "create", "T-W1")),
            await deliver(connector, todo(11, "close", "T-W1")),
            await deliver(connector, todo(10, "create", "T-W1")),  # a late replay of the create
            await deliver(connector, todo(12, "create", "T-W2", assignee="E0099")),
        ]

    opened, closed, replayed, departed = run(with_connector(sim, work))
    assert opened[0].ok and closed[0].ok and replayed[0].ok
    (row,) = get(server, "/_sim/todos?flowid=T-W1")
    assert row["isremark"] == "2" and row["history"] == ["0", "2"]
    assert row["record"]["receiver"] == "E0010" and row["record"]["syscode"] == "finoa"
    assert not departed[0].ok
    assert departed[0].error.error_class is ErrorClass.PERMANENT
    assert "E0099" in departed[0].error.reason
    assert get(server, "/_sim/todos?flowid=T-W2") == []


def test_status_writebacks_are_acknowledged_without_a_call(sim: Any) -> None:
    server, _ = sim
    before = get(server, "/_sim/stats")["todo_records"]
    status = OutboundMessage(20, "status.writeback", "CL1", "status:CL1:1", {"status": "posted"})

    async def work(connector: WeaverConnector) -> list[Any]:
        return await connector.deliver([status])

    (result,) = run(with_connector(sim, work))
    assert result.ok and result.response["status"] == "not_sent"
    assert get(server, "/_sim/stats")["todo_records"] == before


def notice(number: int, recipient: str = "E0011") -> OutboundMessage:
    payload = {**NOTICE, "notice_id": f"archived:PK-{number}", "recipient_id": recipient}
    return OutboundMessage(number, "notice.send", "PK-1", f"notice:archived:PK-{number}", payload)


def test_a_notice_is_a_message_of_the_hubs_message_source_to_the_recipient(sim: Any) -> None:
    server, credentials = sim

    async def work(connector: WeaverConnector) -> list[Any]:
        return await connector.deliver([notice(50)])

    (sent,) = run(with_connector(sim, work))
    assert sent.ok, sent.error
    code = credentials["message_code"]
    assert sent.response == {"status": "sent", "target_id": f"{code}|archived:PK-50"}
    (kept,) = get(server, "/_sim/messages?receiver=E0011")
    assert kept["code"] == code and kept["receivers"] == ["E0011"] and kept["userids"] == ["6"]
    assert (kept["title"], kept["context"]) == (NOTICE["title"], NOTICE["body"])
    assert kept["targetId"] == f"{code}|archived:PK-50" and kept["creater"] == "1"


def test_a_notice_to_a_departed_or_unknown_employee_is_refused_naming_them(sim: Any) -> None:
    server, _ = sim
    before = get(server, "/_sim/stats")["messages"]

    async def work(connector: WeaverConnector) -> list[Any]:
        return await connector.deliver([notice(51, "E0099"), notice(52, "E7777")])

    departed, unknown = run(with_connector(sim, work))
    for result, who in ((departed, "E0099"), (unknown, "E7777")):
        assert result.error is not None and result.error.error_class is ErrorClass.PERMANENT
        assert f"USER_EXCEPTION: 接收人[{who}]不存在或已离职" in result.error.reason
    assert get(server, "/_sim/stats")["messages"] == before


def test_a_notice_needs_the_message_source_e_cology_knows(sim: Any) -> None:
    server, credentials = sim
    before = get(server, "/_sim/stats")["messages"]
    config = weaver_config(server.url, credentials)
    del config["message_code"]

    async def without() -> list[Any]:
        async with httpx.AsyncClient() as http:
            return await WeaverConnector(config, http).deliver([notice(53)])

    (missing,) = run(without())
    assert missing.error is not None and missing.error.error_class is ErrorClass.CONFIG
    assert missing.error.reason.startswith("weaver config: message_code: required for notices")

    async def work(connector: WeaverConnector) -> list[Any]:
        return await connector.deliver([notice(54)])

    (wrong,) = run(with_connector(sim, work, message_code="999"))
    assert wrong.error is not None and wrong.error.error_class is ErrorClass.CONFIG
    assert "NO_PERMISSION: 消息来源[999]不存在或未启用" in wrong.error.reason
    assert get(server, "/_sim/stats")["messages"] == before
    with pytest.raises(ValueError, match="^message_code: the message source's code, a number"):
        WeaverConnector.check_config(weaver_config(server.url, credentials, message_code="abc"))


def test_the_message_centre_enforces_its_token_headers_and_fields(sim: Any) -> None:
    server, credentials = sim
    url = server.url + "/api/ec/dev/message/sendCustomMessageSingle"
    form = {"code": credentials["message_code"], "loginIdList": "E0011", "title": "t"}
    assert httpx.post(url, data=form).json()["msg"] == "appid不存在或未授权"
    no_token = httpx.post(url, data=form, headers={"appid": credentials["appid"]}).json()
    assert no_token == {"code": -1, "msg": "token不存在或者超时！", "msgShowType": "none",
                        "status": False}  # fmt: skip

    async def work(connector: WeaverConnector) -> list[dict[str, Any]]:
        assert connector.auth is not None
        headers = await connector.auth.headers()
        bad = [
            {**form, "code": ""},
            {**form, "userIdList": "6"},  # two receiver lists
            {k: v for k, v in form.items() if k != "title"},  # neither title nor context
            {**form, "targetId": "1|x"},  # not this source's code
        ]
        async with httpx.AsyncClient() as http:
            answers = [(await http.post(url, data=f, headers=headers)).json() for f in bad]
            by_hrm_id = {"code": form["code"], "userIdList": "6,7", "context": "c"}
            answers.append((await http.post(url, data=by_hrm_id, headers=headers)).json())
        return answers

    *refused, sent = run(with_connector(sim, work))
    assert [(a["code"], a["status"]) for a in refused] == [("PARAM_ERROR", False)] * 4
    assert "code(消息来源) 不能为空" in refused[0]["msg"]
    assert sent["status"] is True
    assert get(server, "/_sim/messages")[-1]["receivers"] == ["E0011", "E0012"]


def test_a_bad_config_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^spk: "):
        WeaverConnector.check_config(
            weaver_config(
                "http://x",
                {
                    "appid": "a",
                    "secret": "s",
                    "spk": "nope",
                    "syscode": "s",
                    "callback_secret": "c" * 20,
                },
            )  # fmt: skip
        )
    with pytest.raises(ValueError, match="^colour: "):
        WeaverConnector.check_config({"colour": "red"})


def test_an_approval_create_whose_answer_was_lost_is_found_not_made_again(sim: Any) -> None:
    server, _ = sim
    payload = {
        "id": "CL-LOOKUP-1", "external_id": "OA-L1", "applicant_id": "E0011",
        "department_id": "D02", "cost_center_id": None, "project_id": None,
        "title": "差旅 lookup", "currency": "CNY", "total_fen": 128050,
        "lines": [{"category": "travel", "amount_fen": 128050, "tax_fen": 0,
                   "expense_date": "2026-11-30", "description": "高铁"}],
    }  # fmt: skip
    create = OutboundMessage(30, "approval.create", "CL-LOOKUP-1", "approval:CL-LOOKUP-1:create",
                             payload)  # fmt: skip
    other = OutboundMessage(31, "approval.create", "CL-LOOKUP-2", "approval:CL-LOOKUP-2:create",
                            {**payload, "id": "CL-LOOKUP-2"})  # fmt: skip

    async def work(connector: WeaverConnector) -> tuple[Any, list[Any]]:
        (created,) = await connector.deliver([create])
        return created, await connector.lookup([create, other])

    created, (found, missing) = run(with_connector(sim, work))
    assert created.ok, created.error
    request_id = created.response["oa_approval_id"]
    assert found is not None and found.response == {"oa_approval_id": request_id}
    assert missing is None  # the other claim has no request: it is sent
    made = [r for r in get(server, "/_sim/requests") if r["mainData"].get("finoadh")]
    assert [r["requestid"] for r in made if r["mainData"]["finoadh"] == "CL-LOOKUP-1"] == [
        int(request_id)
    ]


def test_approval_changes_keep_ended_requests_in_the_window_with_their_claim(sim: Any) -> None:
    server, _ = sim
    payload = {
        "id": "CL-SWEEP-1", "external_id": "OA-S1", "applicant_id": "E0011",
        "department_id": "D02", "cost_center_id": None, "project_id": None,
        "title": "差旅 sweep", "currency": "CNY", "total_fen": 5000,
        "lines": [{"category": "travel", "amount_fen": 5000, "tax_fen": 0,
                   "expense_date": "2026-11-30", "description": "地铁"}],
    }  # fmt: skip
    running = {**payload, "id": "CL-SWEEP-2"}
    messages = [
        OutboundMessage(40, "approval.create", "CL-SWEEP-1", "approval:CL-SWEEP-1:create", payload),
        OutboundMessage(41, "approval.create", "CL-SWEEP-2", "approval:CL-SWEEP-2:create", running),
    ]

    async def create(connector: WeaverConnector) -> list[Any]:
        return await connector.deliver(messages)

    ended, _ = run(with_connector(sim, create))
    request_id = ended.response["oa_approval_id"]
    end = {"result": "reject", "remark": "重复报销", "callback": False}
    answer = httpx.post(f"{server.url}/_sim/requests/{request_id}/end", json=end)
    assert answer.status_code == 200
    now = datetime.now(UTC)

    async def sweep(connector: WeaverConnector) -> tuple[Any, Any]:
        hour = timedelta(hours=1)
        inside = await connector.approval_changes(now - hour, now + timedelta(minutes=1))
        later = await connector.approval_changes(now + hour, now + 2 * hour)
        return inside, later

    inside, later = run(with_connector(sim, sweep))
    mine = [c for c in inside.commands if c.claim_id in ("CL-SWEEP-1", "CL-SWEEP-2")]
    assert mine == [
        ConcludeApproval(f"weaver-request-{request_id}-reject", request_id, ApprovalResult.REFUSE,
                         actor_id="E0010", comment="重复报销", claim_id="CL-SWEEP-1")
    ]  # fmt: skip
    assert not [p for p in inside.problems if request_id in p] and later.commands == ()


def test_a_sweep_lists_employees_requests_acting_as_each_unless_told_not_to(sim: Any) -> None:
    server, _ = sim
    form = {
        "creator": "E0031", "callback": False, "requestName": "交通费",
        "mainData": [{"fieldName": n, "fieldValue": v} for n, v in
                     (("sqr", "E0031"), ("sqbm", "D04"), ("sy", "交通费"), ("je", "9.00"))],
        "detailData": [{"tableDBName": "formtable_main_214_dt1",
                        "workflowRequestTableRecords": [{"recordOrder": 0,
                         "workflowRequestTableFields": [
                             {"fieldName": k, "fieldValue": v} for k, v in
                             (("fylb", "transport"), ("je", "9.00"), ("se", "0.00"),
                              ("fyrq", "2025-11-03"), ("sm", "地铁"))]}]}],
    }  # fmt: skip
    answer = httpx.post(f"{server.url}/_sim/requests", json=form)
    assert answer.status_code == 200, answer.text
    request_id = str(answer.json()["data"]["requestid"])
    now = datetime.now(UTC)
    window = (now - timedelta(hours=1), now + timedelta(minutes=1))

    async def sweep(connector: WeaverConnector) -> Any:
        return await connector.approval_changes(*window)

    found = run(with_connector(sim, sweep))
    (started,) = [c for c in found.commands if getattr(c, "oa_approval_id", None) == request_id]
    assert isinstance(started, SubmitClaim)
    assert started.message_id == f"weaver-request-{request_id}-create"  # as its callback's
    assert (
        started.submission.applicant_id == "E0031" and started.submission.external_id == request_id
    )
    alone = run(with_connector(sim, sweep, sweep_employees=False))
    assert not [c for c in alone.commands if getattr(c, "oa_approval_id", None) == request_id]
