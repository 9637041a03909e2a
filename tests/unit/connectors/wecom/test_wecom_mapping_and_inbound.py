"""WeCom wire formats against golden fixtures, and the inbound callback: callbacks sealed by
wechatpy's WeChatCrypto (WeCom's SDK) pass finoa's verification, tampered ones are refused
naming the field, and the URL check is answered with the echostr's plaintext."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import pytest
from support.wecom import CLAIM, TODO
from wechatpy.enterprise.crypto import WeChatCrypto

from finoa.api.json_body import parse_json
from finoa.connectors.base import (
    ApprovalRequestPayload,
    ApprovalResult,
    ConcludeApproval,
    InboundRefused,
    InboundRequest,
    SubmitClaim,
    TodoPayload,
)
from finoa.connectors.wecom.crypto import WeComCrypto, new_encoding_aes_key
from finoa.connectors.wecom.inbound import WeComInbound
from finoa.connectors.wecom.mapping import (
    WeComConfig,
    applyevent_body,
    approval_commands,
    task_applyevent_body,
)
from finoa.connectors.wecom.simulator import expense_template, task_template

FIXTURES = Path(__file__).parents[3] / "fixtures" / "wecom"
CORP_ID = "ww1234567890abcdef"
TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"  # WeCom's documented sample key
NOW = 1_795_143_600.0
EXPENSE_TEMPLATE = "C4NyFinoaExpenseClaim3WLJF6naF5jhnXvwisuPmE"
TASK_TEMPLATE = "C4NyFinoaApprovalTask9VWWyc2RZiNbWqRkp7mUvQ"
SETTINGS = {
    "corp_id": CORP_ID,
    "corp_secret": "secret",
    "token": TOKEN,
    "aes_key": AES_KEY,
    "template_id": EXPENSE_TEMPLATE,
    "task_template_id": TASK_TEMPLATE,
    "api_base_url": "http://127.0.0.1:9",
}


def golden(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def event_xml() -> str:
    return (FIXTURES / "sys_approval_change.xml").read_text(encoding="utf-8").strip()


def request(query: dict[str, str], body: bytes) -> InboundRequest:
    return InboundRequest("wecom", {"content-type": "text/xml"}, body, query, parse_json)


def sealed(
    plaintext: str, *, crypto: WeChatCrypto | None = None, timestamp: int = int(NOW)
) -> tuple[dict[str, str], bytes]:
    """A callback as WeCom posts it, sealed by wechatpy: the query and the XML body."""
    sdk = crypto or WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
    reply = sdk.encrypt_message(plaintext, "1372623149", timestamp)
    from lxml import etree

    root = etree.fromstring(reply.encode())
    query = {
        "msg_signature": str(root.findtext("MsgSignature")),
        "timestamp": str(root.findtext("TimeStamp")),
        "nonce": str(root.findtext("Nonce")),
    }
    body = (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA["
        f"{root.findtext('Encrypt')}]]></Encrypt><AgentID><![CDATA[3010040]]></AgentID></xml>"
    )
    return query, body.encode()


def inbound() -> WeComInbound:
    return WeComInbound(SETTINGS, clock=lambda: NOW)


def verify(query: dict[str, str], body: bytes) -> Any:
    return asyncio.run(inbound().verify(request(query, body)))


def refused(query: dict[str, str], body: bytes) -> InboundRefused:
    with pytest.raises(InboundRefused) as caught:
        verify(query, body)
    return caught.value


def test_the_applyevent_bodies_match_the_golden_payloads() -> None:
    config = WeComConfig.parse(SETTINGS)
    controls = expense_template()["template_content"]["controls"]
    claim = cast(ApprovalRequestPayload, CLAIM)
    assert applyevent_body(config, claim, controls) == golden("applyevent_expense_claim.json")
    task_controls = task_template()["template_content"]["controls"]
    todo = cast(TodoPayload, TODO)
    assert task_applyevent_body(config, todo, "E0004", task_controls) == golden(
        "applyevent_task.json"
    )


def test_the_golden_detail_is_a_claim_and_its_result() -> None:
    config = WeComConfig.parse(SETTINGS)
    detail = golden("approval_detail_expense.json")["info"]
    submitted, concluded = approval_commands(config, detail)
    assert isinstance(submitted, SubmitClaim) and submitted.message_id == "wecom-start:202611200001"
    claim = submitted.submission
    assert (claim.applicant_id, claim.department_id, claim.title) == (
        "E0031",
        "D04",
        "打车 客户拜访",
    )
    assert [(ln.category, str(ln.amount), ln.expense_date.isoformat()) for ln in claim.lines] == [
        ("transport", "66.00", "2026-11-20")
    ]
    assert concluded == ConcludeApproval(
        "wecom-result:202611200001",
        "202611200001",
        ApprovalResult.AGREE,
        actor_id="E0030",
        comment="同意",
    )
    assert approval_commands(config, {**detail, "template_id": "another"}) == []


def test_a_callback_sealed_by_wechatpy_passes_and_reads_as_the_event() -> None:
    query, body = sealed(event_xml())
    message = verify(query, body)
    assert message.body.decode() == event_xml()
    # an event of another template is followed with no command (and no call to WeCom)
    other = event_xml().replace(EXPENSE_TEMPLATE, "another-template")
    parsed = asyncio.run(inbound().parse(verify(*sealed(other))))
    assert parsed.commands == ()
    reply = inbound().reply(parsed, [])
    assert (reply.status, reply.body) == (200, b"")


def test_tampered_callbacks_are_refused_naming_the_field() -> None:
    query, body = sealed(event_xml())
    assert refused({**query, "msg_signature": "0" * 40}, body).field == "msg_signature"
    assert refused({**query, "nonce": "other"}, body).field == "msg_signature"
    stale = refused(*sealed(event_xml(), timestamp=int(NOW) - 3600))
    assert (stale.status, stale.field) == (401, "timestamp")
    other_corp = WeChatCrypto(TOKEN, AES_KEY, "wwfedcba0987654321")
    assert refused(*sealed(event_xml(), crypto=other_corp)).field == "encrypt"
    other_key = WeChatCrypto(TOKEN, new_encoding_aes_key(), CORP_ID)
    assert refused(*sealed(event_xml(), crypto=other_key)).field == "encrypt"
    for_other = event_xml().replace(CORP_ID, "wwfedcba0987654321", 1)
    assert refused(*sealed(for_other)).field == "ToUserName"
    missing = {k: v for k, v in query.items() if k != "nonce"}
    assert refused(missing, body).field == "nonce"


def test_malformed_or_hostile_xml_is_refused_before_anything_is_read() -> None:
    query, _ = sealed(event_xml())
    broken = refused(query, b"<xml><Encrypt>abc</Encrypt>")
    assert (broken.status, broken.field) == (400, "body")
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><xml><Encrypt>&b;</Encrypt></xml>'
    )
    assert refused(query, bomb).field == "body"
    assert refused(query, b"<xml><AgentID>1</AgentID></xml>").field == "Encrypt"
    assert refused(query, b"<other><Encrypt>x</Encrypt></other>").field == "body"


def test_the_url_check_is_answered_with_the_echostr_plaintext() -> None:
    crypto = WeComCrypto(TOKEN, AES_KEY, CORP_ID)
    echostr = crypto.encrypt("5927782489442352469")
    query = {
        "msg_signature": crypto.sign(str(int(NOW)), "nonce1", echostr),
        "timestamp": str(int(NOW)),
        "nonce": "nonce1",
        "echostr": echostr,
    }
    sdk = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)  # wechatpy agrees on the same check
    assert sdk.check_signature(query["msg_signature"], query["timestamp"], "nonce1", echostr) in (
        "5927782489442352469",
        b"5927782489442352469",
    )
    handler = inbound()
    message = asyncio.run(handler.verify(request(query, b"")))
    parsed = asyncio.run(handler.parse(message))
    reply = handler.reply(parsed, [])
    assert (reply.status, reply.body, reply.media_type) == (
        200,
        b"5927782489442352469",
        "text/plain",
    )
    assert refused({**query, "msg_signature": "f" * 40}, b"").field == "msg_signature"


def test_a_callback_answered_once_is_refused_when_it_comes_again() -> None:
    handler = inbound()
    query, body = sealed(event_xml().replace(EXPENSE_TEMPLATE, "another-template"))
    message = asyncio.run(handler.verify(request(query, body)))
    parsed = asyncio.run(handler.parse(message))
    assert handler.reply(parsed, []).status == 200
    with pytest.raises(InboundRefused) as caught:
        asyncio.run(handler.verify(request(query, body)))
    assert (caught.value.status, caught.value.kind, caught.value.field) == (
        409,
        "replay",
        "msg_signature",
    )
    # the same event sealed anew is not a replay of this request: the inbox settles it
    assert asyncio.run(handler.verify(request(*sealed(event_xml())))).message_id == "event"


def test_wecom_dates_are_epoch_seconds_read_in_company_time() -> None:
    from finoa.mapping.transforms import TRANSFORMS, TransformContext, TransformError

    ctx = TransformContext()
    millis = TRANSFORMS["epoch_seconds"]("1795104000", ctx)
    assert millis == 1_795_104_000_000 and TRANSFORMS["date"](millis, ctx) == "2026-11-20"
    for bad in ("1795104000.5", "", True, "17951040000000"):
        with pytest.raises(TransformError):
            TRANSFORMS["epoch_seconds"](bad, ctx)
