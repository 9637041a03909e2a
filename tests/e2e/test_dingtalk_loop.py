"""The whole loop through DingTalk, in both approval modes, on SQLite and PostgreSQL: the
hub, the DingTalk simulator and the ERP simulator each a real process; every callback
encrypted and signed as DingTalk sends it, and retried until answered with the encrypted
success."""

from __future__ import annotations

import json
import uuid
from typing import Any

from e2e.helpers import claim_body, mode_fixtures
from support.dingtalk import DingTalkStack, dingtalk_stack, employee_form
from support.processes import wait_for

# oa_led: the approvals in the vendor decided by each test; hub_led: finoa runs them
oa_led, hub_led = mode_fixtures("dingtalk", dingtalk_stack)


def instance_of_claim(stack: DingTalkStack, claim_id: str) -> str:
    """The DingTalk instance finoa started for a claim (its 单号 in the form)."""

    def find() -> str | None:
        for callback in stack.dingtalk.get("/_sim/callbacks"):
            event = callback["event"]
            if event.get("EventType") == "bpms_instance_change" and event["type"] == "start":
                instance = stack.dingtalk.get(f"/_sim/instances/{event['processInstanceId']}")
                values = {c["name"]: c["value"] for c in instance["formComponentValues"]}
                if values.get("finoa单号") == claim_id:
                    return str(event["processInstanceId"])
        return None

    return str(wait_for(find, 30, f"DingTalk instance of {claim_id}"))


def employee_starts(
    stack: DingTalkStack, user: str, dept: int, amount: str
) -> tuple[str, dict[str, Any]]:
    """An employee starts the expense form in DingTalk; the claim finoa makes of it."""
    form = employee_form("交通费", amount)
    started = stack.dingtalk.post(
        "/_sim/instances", {"originatorUserId": user, "deptId": dept, "formComponentValues": form}
    )
    assert started.status_code == 200, started.text
    instance_id = str(started.json()["instanceId"])

    def claim() -> dict[str, Any] | None:
        return next((c for c in stack.claims_of(user) if c["external_id"] == instance_id), None)

    return instance_id, wait_for(claim, 30, "the DingTalk instance to become a claim")


def finish(stack: DingTalkStack, instance_id: str, result: str) -> None:
    answer = stack.dingtalk.post(f"/_sim/instances/{instance_id}/finish", {"result": result})
    assert answer.status_code == 200, answer.text


def all_callbacks_delivered(stack: DingTalkStack) -> None:
    stack.sim.wait_callbacks_delivered("the encrypted success")


def test_oa_led_a_claim_started_in_finoa_is_approved_in_dingtalk_and_posted(
    oa_led: DingTalkStack,
) -> None:
    claim = oa_led.submit(claim_body(external_id=f"OA-{uuid.uuid4().hex[:8]}"))
    assert claim["status"] == "in_approval" and claim["tasks"] == []  # DingTalk runs it
    instance_id = instance_of_claim(oa_led, claim["id"])
    finish(oa_led, instance_id, "agree")
    posted = oa_led.wait_status(claim["id"], "posted")
    assert posted["total_fen"] == 181050
    all_callbacks_delivered(oa_led)


def test_oa_led_a_claim_an_employee_starts_in_dingtalk_is_posted(oa_led: DingTalkStack) -> None:
    instance_id, claim = employee_starts(oa_led, "E0031", 5, "66.00")
    assert claim["status"] == "in_approval" and claim["total_fen"] == 6600
    finish(oa_led, instance_id, "agree")
    oa_led.wait_status(claim["id"], "posted")


def test_oa_led_refused_and_revoked_in_dingtalk(oa_led: DingTalkStack) -> None:
    refused_id, refused = employee_starts(oa_led, "E0032", 5, "12.00")
    revoked_id, revoked = employee_starts(oa_led, "E0032", 5, "13.00")
    finish(oa_led, refused_id, "refuse")
    finish(oa_led, revoked_id, "terminate")
    rejected = oa_led.wait_status(refused["id"], "rejected")
    assert rejected["reason"] == "预算不足 / over budget"
    withdrawn = oa_led.wait_status(revoked["id"], "withdrawn")
    assert withdrawn["reason"] == "撤销"
    all_callbacks_delivered(oa_led)


def test_hub_led_todos_in_dingtalk_decide_finoas_approval_and_the_claim_is_posted(
    hub_led: DingTalkStack,
) -> None:
    claim = hub_led.submit(claim_body(external_id=f"HL-{uuid.uuid4().hex[:8]}"))
    assert claim["tasks"] and claim["tasks"][0]["assignee_id"] == "E0010"
    hub_led.wait_status(claim["id"], "posted")
    task_ids = {task["id"] for task in hub_led.claim(claim["id"])["tasks"]}
    todos = [t for t in hub_led.dingtalk.get("/_sim/todos") if t["sourceId"] in task_ids]
    assert len(todos) == len(task_ids)
    wait_for(
        lambda: all(
            t["done"] for t in hub_led.dingtalk.get("/_sim/todos") if t["sourceId"] in task_ids
        ),
        30,
        "todos closed",
    )
    presses = hub_led.dingtalk.get("/_sim/presses")
    assert presses and all(p["status"] == 200 for p in presses)
    # each todo was closed by the id DingTalk gave it when it was made: one call, no look-up
    calls = hub_led.dingtalk.get("/_sim/stats")["api_calls"]
    assert not [path for path in calls if "/tasks/sources/" in path]


def _post_event(stack: DingTalkStack, crypto: Any, event: dict[str, Any], **query: str) -> Any:
    import time

    import httpx

    timestamp = query.pop("timestamp", str(int(time.time() * 1000)))
    sealed = crypto.envelope(json.dumps(event, ensure_ascii=False), timestamp=timestamp)
    params = {
        "msg_signature": sealed["msg_signature"],
        "timestamp": timestamp,
        "nonce": sealed["nonce"],
    }
    params.update(query)
    return httpx.post(
        f"{stack.hub.url}/api/v1/webhooks/dingtalk",
        params=params,
        json={"encrypt": sealed["encrypt"]},
        timeout=10,
    )


def test_bad_callbacks_are_refused_with_nothing_written_and_a_replay_changes_nothing(
    oa_led: DingTalkStack,
) -> None:
    import time

    import httpx

    from finoa.connectors.dingtalk.crypto import CallbackCrypto, new_encoding_aes_key

    c = oa_led.dingtalk.credentials
    good = CallbackCrypto(c["token"], c["aesKey"], c["appKey"])
    instance_id, claim = employee_starts(oa_led, "E0041", 6, "20.00")
    event = {
        "EventType": "bpms_instance_change",
        "eventId": f"replayed-{uuid.uuid4().hex}",
        "processCode": c["processCode"],
        "processInstanceId": instance_id,
        "type": "finish",
        "result": "refuse",
        "staffId": "E0040",
        "remark": "重复报销",
    }
    stale = str(int((time.time() - 3600) * 1000))
    refusals = {
        "msg_signature": _post_event(oa_led, good, event, msg_signature="0" * 40),
        "timestamp": _post_event(oa_led, good, event, timestamp=stale),
        "encrypt": _post_event(
            oa_led, CallbackCrypto(c["token"], new_encoding_aes_key(), c["appKey"]), event
        ),
    }
    for field, answer in refusals.items():
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["field"] == field
    malformed = httpx.post(
        f"{oa_led.hub.url}/api/v1/webhooks/dingtalk",
        params={"msg_signature": "x", "timestamp": str(int(time.time() * 1000)), "nonce": "n"},
        content=b'{"encrypt": ',
        timeout=10,
    )
    assert malformed.status_code in (400, 422) and malformed.status_code < 500
    assert oa_led.claim(claim["id"])["status"] == "in_approval"  # nothing was applied

    first = _post_event(oa_led, good, event)
    assert first.status_code == 200
    reply = first.json()
    assert (
        good.open(reply["msg_signature"], reply["timeStamp"], reply["nonce"], reply["encrypt"])
        == "success"
    )
    rejected = oa_led.claim(claim["id"])
    assert (rejected["status"], rejected["reason"]) == ("rejected", "重复报销")
    replay = _post_event(oa_led, good, event)
    assert replay.status_code == 200
    again = oa_led.claim(claim["id"])
    assert again["status"] == "rejected" and again["updated_at"] == rejected["updated_at"]


def instance_fetches(stack: DingTalkStack) -> int:
    """How often the hub has asked DingTalk for a process instance."""
    calls = stack.dingtalk.get("/_sim/stats")["api_calls"]
    return int(calls.get("/v1.0/workflow/processInstances", 0))


def test_callbacks_about_an_instance_finoa_knows_are_taken_without_asking_dingtalk(
    oa_led: DingTalkStack,
) -> None:
    from finoa.connectors.dingtalk.crypto import CallbackCrypto

    c = oa_led.dingtalk.credentials
    crypto = CallbackCrypto(c["token"], c["aesKey"], c["appKey"])
    before = instance_fetches(oa_led)
    instance_id, claim = employee_starts(oa_led, "E0041", 6, "31.00")
    fetched = instance_fetches(oa_led)
    assert fetched == before + 1  # an instance finoa never saw: its form is fetched, once
    event = {
        "EventType": "bpms_instance_change",
        "processCode": c["processCode"],
        "processInstanceId": instance_id,
        "staffId": "E0041",
    }
    again = _post_event(oa_led, crypto, {**event, "eventId": uuid.uuid4().hex, "type": "start"})
    assert again.status_code == 200, again.text
    reply = again.json()
    assert crypto.open(reply["msg_signature"], reply["timeStamp"], reply["nonce"],
                       reply["encrypt"]) == "success"  # fmt: skip
    finish(oa_led, instance_id, "agree")
    oa_led.wait_status(claim["id"], "posted")
    all_callbacks_delivered(oa_led)
    assert instance_fetches(oa_led) == fetched  # known: neither callback asked DingTalk
    assert len([c for c in oa_led.claims_of("E0041") if c["external_id"] == instance_id]) == 1
