"""The whole loop through Feishu, in both approval modes, on SQLite and PostgreSQL: the hub,
the Feishu simulator and the ERP simulator each a real process; every event encrypted and
signed as Feishu sends it and retried until answered with HTTP 200; quick actions from the
Approval Center decide finoa's own approvals."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
from e2e.helpers import claim_body, mode_fixtures
from support.feishu import FeishuStack, employee_form, feishu_stack
from support.processes import wait_for

from finoa.connectors.feishu.crypto import encrypt, new_secret, signed_headers

# oa_led: the approvals in the vendor decided by each test; hub_led: finoa runs them
oa_led, hub_led = mode_fixtures("feishu", feishu_stack)


def instance_of_claim(stack: FeishuStack, claim_id: str) -> str:
    """The Feishu instance finoa started for a claim (its 单号 widget)."""

    def find() -> str | None:
        for callback in stack.feishu.get("/_sim/callbacks"):
            event = callback["event"]["event"]
            if event["type"] == "approval_instance" and event["status"] == "PENDING":
                instance = stack.feishu.get(f"/_sim/instances/{event['instance_code']}")
                values = {w["id"]: w["value"] for w in json.loads(instance["form"])}
                if values.get("claim_no") == claim_id:
                    return str(event["instance_code"])
        return None

    return str(wait_for(find, 30, f"Feishu instance of {claim_id}"))


def employee_starts(
    stack: FeishuStack, user: str, dept: str, amount: float
) -> tuple[str, dict[str, Any]]:
    """An employee starts the expense form in Feishu; the claim finoa makes of it."""
    started = stack.feishu.post(
        "/_sim/instances",
        {"user_id": user, "department_id": dept, "form": employee_form("交通费", amount)},
    )
    assert started.status_code == 200, started.text
    code = str(started.json()["instance_code"])

    def claim() -> dict[str, Any] | None:
        return next((c for c in stack.claims_of(user) if c["external_id"] == code), None)

    return code, wait_for(claim, 30, "the Feishu instance to become a claim")


def finish(stack: FeishuStack, code: str, status: str, comment: str | None = None) -> None:
    body: dict[str, Any] = {"status": status}
    if comment is not None:
        body["comment"] = comment
    answer = stack.feishu.post(f"/_sim/instances/{code}/finish", body)
    assert answer.status_code == 200, answer.text


def all_callbacks_delivered(stack: FeishuStack) -> None:
    stack.sim.wait_callbacks_delivered("HTTP 200")


def test_oa_led_a_claim_started_in_finoa_is_approved_in_feishu_and_posted(
    oa_led: FeishuStack,
) -> None:
    claim = oa_led.submit(claim_body(external_id=f"OA-{uuid.uuid4().hex[:8]}"))
    assert claim["status"] == "in_approval" and claim["tasks"] == []  # Feishu runs it
    code = instance_of_claim(oa_led, claim["id"])
    finish(oa_led, code, "APPROVED")
    posted = oa_led.wait_status(claim["id"], "posted")
    assert posted["total_fen"] == 181050
    all_callbacks_delivered(oa_led)


def test_oa_led_a_claim_an_employee_starts_in_feishu_is_posted(oa_led: FeishuStack) -> None:
    code, claim = employee_starts(oa_led, "E0031", "fs-d04", 66.0)
    assert claim["status"] == "in_approval" and claim["total_fen"] == 6600
    finish(oa_led, code, "APPROVED")
    oa_led.wait_status(claim["id"], "posted")


def test_oa_led_rejected_and_canceled_in_feishu(oa_led: FeishuStack) -> None:
    rejected_code, rejected = employee_starts(oa_led, "E0032", "fs-d04", 12.0)
    canceled_code, canceled = employee_starts(oa_led, "E0032", "fs-d04", 13.0)
    finish(oa_led, rejected_code, "REJECTED")
    finish(oa_led, canceled_code, "CANCELED")
    refused = oa_led.wait_status(rejected["id"], "rejected")
    assert refused["reason"] == "预算不足 / over budget"
    withdrawn = oa_led.wait_status(canceled["id"], "withdrawn")
    assert withdrawn["reason"] == "撤回"
    all_callbacks_delivered(oa_led)


def test_hub_led_external_instances_decide_finoas_approval_and_the_claim_is_posted(
    hub_led: FeishuStack,
) -> None:
    claim = hub_led.submit(claim_body(external_id=f"HL-{uuid.uuid4().hex[:8]}"))
    assert claim["tasks"] and claim["tasks"][0]["assignee_id"] == "E0010"
    hub_led.wait_status(claim["id"], "posted")
    task_ids = {task["id"] for task in hub_led.claim(claim["id"])["tasks"]}

    def closed() -> bool:
        mine = [
            e
            for e in hub_led.feishu.get("/_sim/external_instances")
            if e["instance_id"] in task_ids
        ]
        return len(mine) == len(task_ids) and all(e["status"] == "TERMINATED" for e in mine)

    wait_for(closed, 30, "every task's external instance sent again when decided")
    presses = [p for p in hub_led.feishu.get("/_sim/presses") if p["task_id"] in task_ids]
    assert len(presses) == len(task_ids)
    assert all(p["status"] == 200 and json.loads(p["answer"])["code"] == 0 for p in presses)


def _post(stack: FeishuStack, key: str, event: dict[str, Any], **headers: str) -> httpx.Response:
    body = json.dumps({"encrypt": encrypt(key, json.dumps(event, ensure_ascii=False))}).encode()
    signed = signed_headers(key, body, headers.pop("timestamp", str(int(time.time()))))
    return httpx.post(
        f"{stack.hub.url}/api/v1/webhooks/feishu",
        content=body,
        headers={**signed, "content-type": "application/json", **headers},
        timeout=10,
    )


def test_bad_events_are_refused_with_nothing_written_and_a_replay_changes_nothing(
    oa_led: FeishuStack,
) -> None:
    c = oa_led.feishu.credentials
    key = c["encrypt_key"]
    code, claim = employee_starts(oa_led, "E0041", "fs-d05", 20.0)
    finish_event = {
        "uuid": f"replayed-{uuid.uuid4().hex}",
        "token": c["verification_token"],
        "type": "event_callback",
        "event": {
            "type": "approval_instance",
            "approval_code": c["approval_code"],
            "instance_code": code,
            "status": "DELETED",
        },
    }
    stale = str(int(time.time()) - 3600)
    refusals = {
        "x-lark-signature": _post(oa_led, key, finish_event, **{"X-Lark-Signature": "0" * 64}),
        "x-lark-request-timestamp": _post(oa_led, key, finish_event, timestamp=stale),
        "encrypt": _post(oa_led, new_secret(), finish_event),
        "token": _post(oa_led, key, {**finish_event, "token": "forged"}),
    }
    for field, answer in refusals.items():
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["field"].lower() == field
    malformed = httpx.post(
        f"{oa_led.hub.url}/api/v1/webhooks/feishu", content=b'{"encrypt": ', timeout=10
    )
    assert 400 <= malformed.status_code < 500
    assert oa_led.claim(claim["id"])["status"] == "in_approval"  # nothing was applied

    first = _post(oa_led, key, finish_event)
    assert first.status_code == 200 and first.json() == {"msg": "success"}
    ended = oa_led.claim(claim["id"])
    assert ended["status"] != "in_approval"
    replay = _post(oa_led, key, finish_event)
    assert replay.status_code == 200
    again = oa_led.claim(claim["id"])
    assert again["status"] == ended["status"] and again["updated_at"] == ended["updated_at"]

    # The request URL check of the developer console gets its challenge back.
    challenge = {"challenge": "abc", "token": c["verification_token"], "type": "url_verification"}
    answer = _post(oa_led, key, challenge)
    assert answer.status_code == 200 and answer.json() == {"challenge": "abc"}
