"""The DingTalk inbound handler: encrypted events, check_url, todo buttons, and every kind
of bad callback refused before anything is parsed."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from finoa.api.json_body import parse_json
from finoa.connectors.base import (
    ApprovalResult,
    CommandOutcome,
    ConcludeApproval,
    DecideTask,
    InboundRefused,
    InboundRequest,
)
from finoa.connectors.dingtalk.crypto import CallbackCrypto, new_encoding_aes_key
from finoa.connectors.dingtalk.inbound import DingTalkInbound
from finoa.connectors.dingtalk.mapping import (
    TODO_SIGNATURE_HEADER,
    DingTalkConfig,
    create_todo_body,
)

pytestmark = pytest.mark.anyio
AES_KEY = new_encoding_aes_key()
CONFIG = {
    "app_key": "dingapp",
    "app_secret": "secret",
    "token": "tok",
    "aes_key": AES_KEY,
    "process_code": "PROC-1",
    "callback_url": "http://hub.example/api/v1/webhooks/dingtalk",
}
CRYPTO = CallbackCrypto("tok", AES_KEY, "dingapp")


def request(
    event: Any, *, crypto: CallbackCrypto = CRYPTO, ts_ms: int | None = None, **query: str
) -> InboundRequest:
    sealed = crypto.envelope(
        json.dumps(event, ensure_ascii=False), timestamp=str(ts_ms or int(time.time() * 1000))
    )
    params = {
        "msg_signature": sealed["msg_signature"],
        "timestamp": sealed["timeStamp"],
        "nonce": sealed["nonce"],
    }
    params.update(query)
    body = json.dumps({"encrypt": sealed["encrypt"]}).encode()
    return InboundRequest(
        "dingtalk", {"content-type": "application/json"}, body, params, parse_json
    )


async def test_check_url_is_answered_with_the_encrypted_success() -> None:
    handler = DingTalkInbound(CONFIG)
    message = await handler.verify(request({"EventType": "check_url"}))
    parsed = await handler.parse(message)
    assert parsed.commands == ()
    reply = handler.reply(parsed, [])
    assert reply.status == 200
    answer = json.loads(reply.body)
    assert (
        CRYPTO.open(
            answer["msg_signature"], answer["timeStamp"], answer["nonce"], answer["encrypt"]
        )
        == "success"
    )


async def test_a_finished_instance_concludes_its_claim() -> None:
    handler = DingTalkInbound(CONFIG)
    event = {
        "EventType": "bpms_instance_change",
        "eventId": "ev1",
        "processCode": "PROC-1",
        "processInstanceId": "PI-1",
        "type": "finish",
        "result": "refuse",
        "staffId": "E0002",
        "remark": "超标",
    }
    parsed = await handler.parse(await handler.verify(request(event)))
    assert parsed.commands == (
        ConcludeApproval("ev1", "PI-1", ApprovalResult.REFUSE, actor_id="E0002", comment="超标"),
    )


@pytest.mark.parametrize(
    ("change", "result", "expected"),
    [
        ("terminate", None, ApprovalResult.REVOKE),
        ("delete", None, ApprovalResult.TERMINATE),
        ("finish", "agree", ApprovalResult.AGREE),
    ],
)
async def test_instance_results(change: str, result: str | None, expected: ApprovalResult) -> None:
    handler = DingTalkInbound(CONFIG)
    event = {
        "EventType": "bpms_instance_change",
        "processCode": "PROC-1",
        "processInstanceId": "PI-2",
        "type": change,
    }
    if result:
        event["result"] = result
    (command,) = (await handler.parse(await handler.verify(request(event)))).commands
    assert isinstance(command, ConcludeApproval) and command.result is expected
    assert command.message_id == f"bpms_instance_change:PI-2:{change}"


async def test_events_of_other_forms_and_task_changes_carry_no_command() -> None:
    handler = DingTalkInbound(CONFIG)
    other = {
        "EventType": "bpms_instance_change",
        "processCode": "PROC-OTHER",
        "processInstanceId": "X",
        "type": "finish",
        "result": "agree",
    }
    task = {
        "EventType": "bpms_task_change",
        "processCode": "PROC-1",
        "processInstanceId": "X",
        "type": "start",
        "taskId": 1,
    }
    for event in (other, task):
        assert (await handler.parse(await handler.verify(request(event)))).commands == ()


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: request({"EventType": "check_url"}, msg_signature="0" * 40), "msg_signature"),
        (
            lambda: request({"EventType": "check_url"}, ts_ms=int(time.time() * 1000) - 3_600_000),
            "timestamp",
        ),
        (
            lambda: request(
                {"EventType": "check_url"},
                crypto=CallbackCrypto("tok", new_encoding_aes_key(), "dingapp"),
            ),
            "encrypt",
        ),
        (
            lambda: request(
                {"EventType": "check_url"}, crypto=CallbackCrypto("other-token", AES_KEY, "dingapp")
            ),
            "msg_signature",
        ),
        (
            lambda: request(
                {"EventType": "check_url"}, crypto=CallbackCrypto("tok", AES_KEY, "dingother")
            ),
            "encrypt",
        ),
        (lambda: request({"EventType": "check_url"}, timestamp="soon"), "timestamp"),
    ],
)
async def test_bad_callbacks_are_refused_naming_the_field(make: Any, field: str) -> None:
    handler = DingTalkInbound(CONFIG)
    with pytest.raises(InboundRefused) as caught:
        await handler.verify(make())
    assert caught.value.field == field and caught.value.status == 401


async def test_a_request_without_signature_is_refused() -> None:
    handler = DingTalkInbound(CONFIG)
    req = InboundRequest("dingtalk", {}, b'{"encrypt": "x"}', {}, parse_json)
    with pytest.raises(InboundRefused) as caught:
        await handler.verify(req)
    assert caught.value.field == "msg_signature"


async def test_a_malformed_body_is_invalid() -> None:
    handler = DingTalkInbound(CONFIG)
    good = request({"EventType": "check_url"})
    for body in (b'{"nothing": 1}', b"[]"):
        req = InboundRequest("dingtalk", {}, body, good.query, parse_json)
        with pytest.raises(InboundRefused) as caught:
            await handler.verify(req)
        assert (caught.value.status, caught.value.field) == (400, "encrypt")


def _todo(decision: str) -> tuple[bytes, dict[str, str]]:
    config = DingTalkConfig.parse(CONFIG)
    todo = {
        "op": "create",
        "task_id": "T1",
        "claim_id": "CL1",
        "external_id": "X",
        "assignee_id": "E0002",
        "role": "manager",
        "title": "报销审批",
        "amount_fen": 12345,
        "currency": "CNY",
    }
    body = create_todo_body(config, todo, "union-E0002")  # type: ignore[arg-type]
    action = next(a for a in body["actionList"] if a["actionKey"] == decision)
    return action["param"]["body"].encode(), dict(action["param"]["header"])


async def test_a_todo_button_becomes_a_decision_under_the_task_id() -> None:
    handler = DingTalkInbound(CONFIG)
    body, headers = _todo("reject")
    req = InboundRequest("dingtalk", headers, body, {}, parse_json)
    parsed = await handler.parse(await handler.verify(req))
    (command,) = parsed.commands
    assert isinstance(command, DecideTask)
    assert (command.message_id, command.task_id, command.approver_id, command.approve) == (
        "dingtalk-todo-T1",
        "T1",
        "E0002",
        False,
    )
    assert json.loads(
        handler.reply(parsed, [CommandOutcome("dingtalk-todo-T1", 200, result={})]).body
    )["success"]


async def test_a_forged_todo_button_is_refused() -> None:
    handler = DingTalkInbound(CONFIG)
    body, headers = _todo("reject")
    forged = body.replace(b'"reject"', b'"approve"')
    with pytest.raises(InboundRefused) as caught:
        await handler.verify(InboundRequest("dingtalk", headers, forged, {}, parse_json))
    assert caught.value.field == TODO_SIGNATURE_HEADER


async def test_a_transient_failure_asks_dingtalk_to_send_again() -> None:
    handler = DingTalkInbound(CONFIG)
    event = {
        "EventType": "bpms_instance_change",
        "processCode": "PROC-1",
        "processInstanceId": "PI",
        "type": "terminate",
    }
    parsed = await handler.parse(await handler.verify(request(event)))
    reply = handler.reply(
        parsed, [CommandOutcome("m", 404, problem={"detail": "oa_approval_id: no claim"})]
    )
    assert reply.status == 503
    done = handler.reply(parsed, [CommandOutcome("m", 409, problem={"detail": "already ended"})])
    assert done.status == 200 and "encrypt" in json.loads(done.body)
