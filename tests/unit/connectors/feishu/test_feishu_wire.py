"""Feishu's wire format against golden payloads (tests/fixtures/feishu/): the create body
finoa sends, an instance read as a claim, events and quick actions through the inbound."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support.dingtalk import CLAIM

from finoa.api.json_body import parse_json
from finoa.connectors.base import (
    ApprovalResult,
    ConcludeApproval,
    DecideTask,
    InboundInvalid,
    InboundRefused,
    InboundRequest,
)
from finoa.connectors.feishu.crypto import encrypt, signed_headers
from finoa.connectors.feishu.inbound import FeishuInbound
from finoa.connectors.feishu.mapping import FeishuConfig, claim_from_instance, create_instance_body

FIXTURES = Path(__file__).parents[3] / "fixtures" / "feishu"
KEY = "kYIDXxHHCPaPa0Ivx6yWQvLKXmXlYoiS"
TOKEN = "VERIFICATION-TOKEN"
CONFIG = {
    "app_id": "cli_a1b2c3d4e5f60708",
    "app_secret": "secret",
    "verification_token": TOKEN,
    "encrypt_key": KEY,
    "approval_code": "7C468A54-8745-2245-9675-08B7C63E7A85",
}
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def request(event: Any, *, sign: bool = True, sealed: bool = True) -> InboundRequest:
    text = json.dumps(event, ensure_ascii=False)
    body = json.dumps({"encrypt": encrypt(KEY, text)} if sealed else event).encode()
    headers = signed_headers(KEY, body, str(int(time.time()))) if sign else {}
    return InboundRequest(
        "feishu", {k.lower(): v for k, v in headers.items()}, body, {}, parse_json
    )


def test_the_create_body_is_the_golden_one() -> None:
    body = create_instance_body(FeishuConfig.parse(CONFIG), CLAIM)  # type: ignore[arg-type]
    assert body == fixture("create_instance_body.json")
    widgets = json.loads(body["form"])
    assert [w["id"] for w in widgets] == ["reason", "claim_no", "total", "details"]
    assert widgets[2] == {"id": "total", "type": "amount", "value": 1234.5, "currency": "CNY"}


def test_an_instance_an_employee_started_is_a_claim() -> None:
    data = fixture("instance_expense_claim.json")["data"]
    claim = claim_from_instance(FeishuConfig.parse(CONFIG), data["instance_code"], data)
    assert (claim.applicant_id, claim.department_id, claim.project_id) == ("E0031", "D04", "P003")
    assert claim.external_id == "81D31358-93AF-92D6-7425-01A5D67C4E71"
    lines = [(ln.category, ln.amount, ln.tax, str(ln.expense_date)) for ln in claim.lines]
    assert lines == [
        ("transport", Decimal("80.00"), Decimal("0.00"), "2026-11-20"),
        ("communication", Decimal("8.50"), Decimal("0.48"), "2026-11-21"),
    ]
    assert claim.lines[1].description == "流量包"


def test_a_form_that_does_not_map_names_the_field() -> None:
    data = fixture("instance_expense_claim.json")["data"]
    form = json.loads(data["form"])
    form[3]["value"][0][0]["value"] = "火箭票"  # not an option finoa knows
    with pytest.raises(InboundInvalid) as caught:
        claim_from_instance(FeishuConfig.parse(CONFIG), "X", {**data, "form": json.dumps(form)})
    assert caught.value.errors[0]["loc"][:3] == ("instance", "lines", 0)


async def test_a_schema_1_event_concludes_and_a_schema_2_task_event_is_followed() -> None:
    inbound = FeishuInbound(CONFIG)
    message = await inbound.verify(request(fixture("event_approval_instance_v1.json")))
    assert message.message_id == "bc447199585340d1f3728d26b1c0297a"
    (command,) = (await inbound.parse(message)).commands
    assert isinstance(command, ConcludeApproval) and command.result is ApprovalResult.TERMINATE
    message = await inbound.verify(request(fixture("event_approval_task_v2.json")))
    assert message.message_id == "5e3702a84e847582be8db7fb73283c02"
    parsed = await inbound.parse(message)
    assert parsed.commands == () and inbound.reply(parsed, []).body == b'{"msg":"success"}'


async def test_another_approvals_events_are_ignored() -> None:
    inbound = FeishuInbound(CONFIG)
    event = fixture("event_approval_instance_v1.json")
    event["event"]["approval_code"] = "SOMETHING-ELSE"
    assert (await inbound.parse(await inbound.verify(request(event)))).commands == ()


async def test_a_quick_action_is_a_decision_of_the_tasks_approver() -> None:
    inbound = FeishuInbound(CONFIG)
    action = fixture("quick_action.json")
    (decision,) = (await inbound.parse(await inbound.verify(request(action, sign=False)))).commands
    assert decision == DecideTask("feishu-action-T-1", "T-1", "E0010", False, "发票抬头不对")
    someone_else = {**action, "user_id": "E0011"}
    with pytest.raises(InboundInvalid) as caught:
        await inbound.parse(await inbound.verify(request(someone_else, sign=False)))
    assert caught.value.errors[0]["loc"] == ("user_id",)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e, "encrypt"),  # sent in the clear
        (lambda e: {**e, "token": "forged"}, "token"),
    ],
)
async def test_unsealed_or_forged_requests_are_refused(change: Any, field: str) -> None:
    inbound = FeishuInbound(CONFIG)
    event = change(fixture("event_approval_instance_v1.json"))
    with pytest.raises(InboundRefused) as caught:
        await inbound.verify(request(event, sealed=field != "encrypt"))
    assert caught.value.field == field and caught.value.status == 401


async def test_an_event_without_its_signature_headers_is_refused() -> None:
    inbound = FeishuInbound(CONFIG)
    with pytest.raises(InboundRefused) as caught:
        await inbound.verify(request(fixture("event_approval_instance_v1.json"), sign=False))
    assert caught.value.field == "x-lark-request-timestamp"
