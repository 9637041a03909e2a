"""The hub's DingTalk callback handler against the simulator in its own process: the events
about an instance this process started are read with no call to DingTalk, even before the
instance's id is kept against its claim; another process's instance is asked about."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from support.dingtalk import CLAIM, DingTalkSim, message

from finoa.api.json_body import parse_json
from finoa.connectors.base import ApprovalResult, ConcludeApproval, InboundMessage, InboundRequest
from finoa.connectors.created_here import created_here
from finoa.connectors.dingtalk.client import DingTalkConnector
from finoa.connectors.dingtalk.inbound import DingTalkInbound
from finoa.connectors.dingtalk.mapping import DingTalkConfig, instance_key

pytestmark = pytest.mark.anyio
INSTANCE_PATH = "/v1.0/workflow/processInstances"


def event(sim: DingTalkSim, instance_id: str, change: str, **extra: str) -> InboundMessage:
    """A decrypted `bpms_instance_change` as `verify` hands it on; the hub keeps no
    instance id against any claim yet (no `known_approval`)."""
    body = {
        "EventType": "bpms_instance_change",
        "processCode": sim.credentials["processCode"],
        "processInstanceId": instance_id,
        "type": change,
        "eventId": f"ev-{instance_id}-{change}",
        **extra,
    }
    request = InboundRequest("dingtalk", {}, b"", {}, parse_json)
    return InboundMessage(request, None, json.dumps(body).encode())


async def started(sim: DingTalkSim, *, elsewhere: bool = False) -> str:
    """An instance the connector started for CLAIM: in this process, or (`elsewhere`) in
    another one, whose instances this process's handler does not know."""
    async with httpx.AsyncClient() as http:
        (created,) = await DingTalkConnector(sim.config(), http).deliver(
            [message("approval.create", CLAIM)]
        )
    assert created.ok, created.error
    instance_id = str(created.response["oa_approval_id"])
    if elsewhere:
        created_here(*instance_key(DingTalkConfig.parse(sim.config()))).pop(instance_id)
    return instance_id


def fetches(sim: DingTalkSim) -> int:
    calls = sim.get("/_sim/stats")["api_calls"]
    return int(calls.get(INSTANCE_PATH, 0)) - 1  # less the POST that started it


async def test_the_events_of_an_instance_this_process_started_need_no_call(sim: Any) -> None:
    instance_id = await started(sim)
    handler = DingTalkInbound(sim.config())
    start = await handler.parse(event(sim, instance_id, "start"))
    assert start.commands == ()
    finish = await handler.parse(
        event(sim, instance_id, "finish", result="agree", staffId="E0010", remark="同意")
    )
    (conclusion,) = finish.commands
    assert isinstance(conclusion, ConcludeApproval)
    assert conclusion.claim_id == CLAIM["id"] and conclusion.oa_approval_id == instance_id
    assert conclusion.result is ApprovalResult.AGREE and conclusion.actor_id == "E0010"
    assert fetches(sim) == 0
    await handler.aclose()


async def test_the_result_of_another_processs_instance_is_asked_for_its_claim(sim: Any) -> None:
    instance_id = await started(sim, elsewhere=True)
    handler = DingTalkInbound(sim.config())
    finish = await handler.parse(event(sim, instance_id, "finish", result="refuse"))
    (conclusion,) = finish.commands
    assert isinstance(conclusion, ConcludeApproval) and conclusion.claim_id == CLAIM["id"]
    assert conclusion.result is ApprovalResult.REFUSE
    assert fetches(sim) == 1  # its form names the claim
    await handler.aclose()
