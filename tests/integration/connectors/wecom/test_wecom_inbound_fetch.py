"""The hub's WeCom callback handler against the simulator in its own process: a task
approval's submission is followed with no call to WeCom, nor is a decision on one this
process applied (its sp_no was kept), and a decision whose detail meets
WeCom's rate limit (45009) waits the limit out instead of asking WeCom to send again."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from support.wecom import CLAIM, TODO, WeComSim, message

from finoa.api.json_body import parse_json
from finoa.connectors.base import (
    ApprovalResult,
    ConcludeApproval,
    DecideTask,
    InboundMessage,
    InboundRefused,
    InboundRequest,
)
from finoa.connectors.created_here import created_here
from finoa.connectors.wecom.client import WeComConnector
from finoa.connectors.wecom.inbound import EVENT, WeComInbound
from finoa.connectors.wecom.mapping import WeComConfig, task_key

pytestmark = pytest.mark.anyio


def event(
    sim: WeComSim, sp_no: str, change: int, record: str = "", template: str = "task_template_id"
) -> InboundMessage:
    """The decrypted `sys_approval_change` of a task approval (or of the claim `template`),
    as `verify` hands it on; the hub keeps no sp_no against any claim yet."""
    template = sim.credentials[template]
    xml = (
        "<xml><ToUserName><![CDATA[c]]></ToUserName><Event><![CDATA[sys_approval_change]]>"
        f"</Event><ApprovalInfo><SpNo>{sp_no}</SpNo><TemplateId><![CDATA[{template}]]>"
        f"</TemplateId>{record}<StatuChangeEvent>{change}</StatuChangeEvent></ApprovalInfo>"
        "</xml>"
    )
    request = InboundRequest("wecom", {}, b"", {}, parse_json)
    return InboundMessage(request, EVENT, xml.encode())


def detail_fetches(sim: WeComSim) -> int:
    return int(sim.get("/_sim/stats")["api_calls"].get("/cgi-bin/oa/getapprovaldetail", 0))


async def applied_task(sim: WeComSim, *, elsewhere: bool = False) -> str:
    """A task approval applied by the connector: in this process, or (`elsewhere`) in
    another one, whose applications this process's handler does not know."""
    async with httpx.AsyncClient() as http:
        (created,) = await WeComConnector(sim.config(), http).deliver([message("todo.push", TODO)])
    assert created.ok, created.error
    sp_no = str(created.response["todo_id"])
    if elsewhere:
        created_here(*task_key(WeComConfig.parse(sim.config()))).pop(sp_no)
    return sp_no


PASSED_BY_E0010 = (
    "<SpStatus>2</SpStatus><SpRecord><SpStatus>2</SpStatus><Details><Approver><UserId>"
    "<![CDATA[E0010]]></UserId></Approver><Speech><![CDATA[同意]]></Speech><SpStatus>2"
    "</SpStatus></Details></SpRecord>"
)


async def test_a_decision_on_a_task_approval_this_process_applied_needs_no_call_to_wecom(
    start_sim: Any,
) -> None:
    sim = start_sim("--no-auto-decide")
    sp_no = await applied_task(sim)
    parsed = await WeComInbound(sim.config()).parse(event(sim, sp_no, 2, PASSED_BY_E0010))
    (decision,) = parsed.commands
    assert isinstance(decision, DecideTask) and decision.task_id == TODO["task_id"]
    assert decision.approve is True and decision.approver_id == "E0010"
    assert decision.comment == "同意" and decision.message_id == f"wecom-task:{sp_no}"
    assert detail_fetches(sim) == 0


async def test_a_task_approvals_submission_needs_no_call_to_wecom(start_sim: Any) -> None:
    sim = start_sim("--no-auto-decide")
    sp_no = await applied_task(sim)
    parsed = await WeComInbound(sim.config()).parse(event(sim, sp_no, 1))
    assert parsed.commands == () and detail_fetches(sim) == 0


async def test_the_result_of_a_claims_approval_this_process_applied_needs_no_call(
    start_sim: Any,
) -> None:
    sim = start_sim("--no-auto-decide")
    async with httpx.AsyncClient() as http:
        (created,) = await WeComConnector(sim.config(), http).deliver(
            [message("approval.create", CLAIM)]
        )
    assert created.ok, created.error
    sp_no = str(created.response["oa_approval_id"])
    handler = WeComInbound(sim.config())
    submitted = await handler.parse(event(sim, sp_no, 1, template="template_id"))
    assert submitted.commands == ()
    passed = await handler.parse(event(sim, sp_no, 2, PASSED_BY_E0010, template="template_id"))
    (conclusion,) = passed.commands
    assert isinstance(conclusion, ConcludeApproval) and conclusion.claim_id == CLAIM["id"]
    assert conclusion.result is ApprovalResult.AGREE and conclusion.oa_approval_id == sp_no
    assert detail_fetches(sim) == 0
    await handler.aclose()


async def test_a_rate_limited_detail_is_waited_out_within_the_reply(start_sim: Any) -> None:
    sim = start_sim("--qps", "4", "--no-auto-decide")
    sp_no = await applied_task(sim, elsewhere=True)
    answer = sim.post(f"/_sim/approvals/{sp_no}/decide", {"result": "agree"})
    assert answer.status_code == 200, answer.text
    handler = WeComInbound(sim.config())
    async with httpx.AsyncClient() as http:  # use up this second's calls
        for _ in range(5):
            await http.get(f"{sim.url}/cgi-bin/gettoken", params={"corpid": "x"})
    parsed = await handler.parse(event(sim, sp_no, 2))
    (decision,) = parsed.commands
    assert isinstance(decision, DecideTask) and decision.task_id == TODO["task_id"]
    assert decision.approve is True and decision.approver_id == "E0010"
    assert sim.get("/_sim/stats")["rate_limited"] >= 1  # the limit was met, and waited out


async def test_a_detail_wecom_cannot_give_is_answered_503_for_a_retry(start_sim: Any) -> None:
    sim = start_sim("--no-auto-decide")
    sim.server.stop()  # WeCom is down
    with pytest.raises(InboundRefused) as refused:
        await WeComInbound(sim.config()).parse(event(sim, "202612010001", 2))
    assert refused.value.status == 503 and refused.value.field == "SpNo"
