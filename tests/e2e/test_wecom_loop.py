"""The whole loop through WeCom, in both approval modes, on SQLite and PostgreSQL: the hub,
the WeCom simulator and the ERP simulator each a real process; every callback encrypted XML
signed as WeCom sends it, and sent again until answered with HTTP 200."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from e2e.helpers import claim_body, mode_fixtures
from support.processes import wait_for
from support.wecom import WeComStack, employee_approval, wecom_stack

from finoa.connectors.wecom.crypto import WeComCrypto, new_encoding_aes_key

# oa_led: the approvals in the vendor decided by each test; hub_led: finoa runs them
oa_led, hub_led = mode_fixtures("wecom", wecom_stack)


def form(approval: dict[str, Any]) -> dict[str, Any]:
    from finoa.connectors.wecom.mapping import detail_form

    return detail_form(approval)


def approval_of_claim(stack: WeComStack, claim_id: str) -> str:
    """The WeCom approval finoa applied for a claim (its finoa单号)."""

    def find() -> str | None:
        for approval in stack.wecom.get("/_sim/approvals"):
            if approval["template_id"] == stack.wecom.credentials["template_id"] and (
                form(approval).get("finoa单号") == claim_id
            ):
                return str(approval["sp_no"])
        return None

    return str(wait_for(find, 30, f"WeCom approval of {claim_id}"))


def employee_applies(stack: WeComStack, userid: str, amount: str) -> tuple[str, dict[str, Any]]:
    """An employee submits the expense template in WeCom; the claim finoa makes of it."""
    started = stack.wecom.post("/_sim/approvals", employee_approval(userid, "option-4", amount))
    assert started.status_code == 200, started.text
    sp_no = str(started.json()["sp_no"])

    def claim() -> dict[str, Any] | None:
        return next((c for c in stack.claims_of(userid) if c["external_id"] == sp_no), None)

    return sp_no, wait_for(claim, 30, "the WeCom approval to become a claim")


def decide(stack: WeComStack, sp_no: str, result: str, speech: str | None = None) -> None:
    body: dict[str, Any] = {"result": result}
    if speech is not None:
        body["speech"] = speech
    answer = stack.wecom.post(f"/_sim/approvals/{sp_no}/decide", body)
    assert answer.status_code == 200, answer.text


def all_callbacks_delivered(stack: WeComStack) -> None:
    stack.sim.wait_callbacks_delivered("HTTP 200")


def test_the_url_check_is_answered_by_the_hub(oa_led: WeComStack) -> None:
    check = oa_led.wecom.post("/_sim/callback:verify").json()
    assert check["verified"] is True, check


def test_oa_led_a_claim_started_in_finoa_is_approved_in_wecom_and_posted(
    oa_led: WeComStack,
) -> None:
    claim = oa_led.submit(claim_body(external_id=f"OA-{uuid.uuid4().hex[:8]}"))
    assert claim["status"] == "in_approval" and claim["tasks"] == []  # WeCom runs it
    sp_no = approval_of_claim(oa_led, claim["id"])
    decide(oa_led, sp_no, "agree")
    posted = oa_led.wait_status(claim["id"], "posted")
    assert posted["total_fen"] == 181050
    all_callbacks_delivered(oa_led)


def test_oa_led_a_claim_an_employee_submits_in_wecom_is_posted(oa_led: WeComStack) -> None:
    sp_no, claim = employee_applies(oa_led, "E0031", "66.00")
    assert claim["status"] == "in_approval" and claim["total_fen"] == 6600
    decide(oa_led, sp_no, "agree")
    oa_led.wait_status(claim["id"], "posted")


def test_oa_led_rejected_and_revoked_in_wecom(oa_led: WeComStack) -> None:
    rejected_no, rejected = employee_applies(oa_led, "E0032", "12.00")
    revoked_no, revoked = employee_applies(oa_led, "E0032", "13.00")
    decide(oa_led, rejected_no, "reject")
    decide(oa_led, revoked_no, "revoke")
    done = oa_led.wait_status(rejected["id"], "rejected")
    assert done["reason"] == "预算不足 / over budget"
    oa_led.wait_status(revoked["id"], "withdrawn")
    all_callbacks_delivered(oa_led)


def test_hub_led_approvals_per_task_in_wecom_decide_finoas_approval_and_it_is_posted(
    hub_led: WeComStack,
) -> None:
    claim = hub_led.submit(claim_body(external_id=f"HL-{uuid.uuid4().hex[:8]}"))
    assert claim["tasks"] and claim["tasks"][0]["assignee_id"] == "E0010"
    hub_led.wait_status(claim["id"], "posted")
    tasks = {task["id"]: task for task in hub_led.claim(claim["id"])["tasks"]}
    task_approvals = [
        a for a in hub_led.wecom.get("/_sim/approvals") if form(a).get("finoa任务") in tasks
    ]
    assert len(task_approvals) == len(tasks)
    for approval in task_approvals:
        task = tasks[form(approval)["finoa任务"]]
        assert approval["sp_status"] == 2
        assert approval["sp_record"][0]["details"][0]["approver"]["userid"] == task["assignee_id"]
    all_callbacks_delivered(hub_led)
    # finoa applied each task's approval and kept its sp_no: each decision was read from its
    # callback alone, with no getapprovaldetail
    calls = hub_led.wecom.get("/_sim/stats")["api_calls"]
    assert calls.get("/cgi-bin/oa/applyevent", 0) >= len(tasks)
    assert calls.get("/cgi-bin/oa/getapprovaldetail", 0) == 0


def post_event(stack: WeComStack, crypto: WeComCrypto, event: str, **query: str) -> httpx.Response:
    timestamp = query.pop("timestamp", str(int(time.time())))
    c = stack.wecom.credentials
    body = crypto.event_xml(event, to_user=c["corpid"], agent_id=c["agentid"])
    from lxml import etree

    encrypt = str(etree.fromstring(body.encode()).findtext("Encrypt"))
    params = {
        "msg_signature": crypto.sign(timestamp, "n0nce", encrypt),
        "timestamp": timestamp,
        "nonce": "n0nce",
    }
    params.update(query)
    return httpx.post(
        f"{stack.hub.url}/api/v1/webhooks/wecom", params=params, content=body, timeout=10
    )


def test_bad_callbacks_are_refused_with_nothing_written_and_a_replay_changes_nothing(
    oa_led: WeComStack,
) -> None:
    c = oa_led.wecom.credentials
    good = WeComCrypto(c["token"], c["EncodingAESKey"], c["corpid"])
    sp_no, claim = employee_applies(oa_led, "E0041", "20.00")
    submitted = next(
        cb["event"]
        for cb in oa_led.wecom.get("/_sim/callbacks")
        if cb["sp_no"] == sp_no and cb["change"] == 1
    )
    event = submitted.replace(
        "<StatuChangeEvent>1</StatuChangeEvent>", "<StatuChangeEvent>3</StatuChangeEvent>"
    )
    stale = str(int(time.time()) - 3600)
    refusals = {
        "msg_signature": post_event(oa_led, good, event, msg_signature="0" * 40),
        "timestamp": post_event(oa_led, good, event, timestamp=stale),
        "encrypt": post_event(
            oa_led, WeComCrypto(c["token"], c["EncodingAESKey"], "wwnotthiscorp"), event
        ),
    }
    for field, answer in refusals.items():
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["field"] == field
    other_key = post_event(
        oa_led, WeComCrypto(c["token"], new_encoding_aes_key(), c["corpid"]), event
    )
    assert other_key.status_code == 401
    malformed = httpx.post(
        f"{oa_led.hub.url}/api/v1/webhooks/wecom",
        params={"msg_signature": "x", "timestamp": str(int(time.time())), "nonce": "n"},
        content=b"<xml><Encrypt>",
        timeout=10,
    )
    assert malformed.status_code == 400 and malformed.json()["field"] == "body"

    assert oa_led.claim(claim["id"])["status"] == "in_approval"  # nothing was applied

    decide(oa_led, sp_no, "reject", "重复报销")  # WeCom's own callback rejects it
    rejected = oa_led.wait_status(claim["id"], "rejected")
    assert rejected["reason"] == "重复报销"
    all_callbacks_delivered(oa_led)
    resealed = post_event(oa_led, good, event)  # the same event sealed anew: a duplicate
    assert resealed.status_code == 200 and resealed.content == b""
    replay = httpx.post(
        str(resealed.request.url), content=resealed.request.content, timeout=10
    )  # the very same request again: refused before anything is read
    assert replay.status_code == 409 and replay.json()["type"].endswith("/replay"), replay.text
    again = oa_led.claim(claim["id"])
    assert again["status"] == "rejected" and again["updated_at"] == rejected["updated_at"]


def detail_fetches(stack: WeComStack) -> int:
    """How often the hub has asked WeCom for an approval's detail."""
    calls = stack.wecom.get("/_sim/stats")["api_calls"]
    return int(calls.get("/cgi-bin/oa/getapprovaldetail", 0))


def test_the_result_of_an_approval_finoa_knows_is_taken_from_the_callback_alone(
    oa_led: WeComStack,
) -> None:
    before = detail_fetches(oa_led)
    sp_no, claim = employee_applies(oa_led, "E0032", "14.00")
    fetched = detail_fetches(oa_led)
    assert fetched == before + 1  # an approval finoa never saw: its form is fetched, once
    decide(oa_led, sp_no, "reject", speech="发票不全")
    done = oa_led.wait_status(claim["id"], "rejected")
    assert done["reason"] == "发票不全"  # the approver's speech, read from the event's SpRecord
    all_callbacks_delivered(oa_led)
    assert detail_fetches(oa_led) == fetched  # the result callback did not ask WeCom
