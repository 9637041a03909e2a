"""Parity with WeCom's SDK (`wechatpy`, its `enterprise` client and crypto): its client works
against the simulator (token, contacts, the refresh after 42001), and the callbacks the
simulator sends decrypt and verify with wechatpy's WeChatCrypto, URL check included."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from lxml import etree
from support.processes import wait_for
from support.threaded import serve_in_thread
from support.wecom import WeComSim, employee_approval
from wechatpy.enterprise import WeChatClient
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import WeChatClientException


def sdk_client(sim: WeComSim, secret: str | None = None) -> WeChatClient:
    """wechatpy's WeCom client with its host pointed at the simulator (nothing else changed)."""
    base = sim.url + "/cgi-bin/"

    class SimulatedHost(WeChatClient):  # type: ignore[misc]
        API_BASE_URL = base

        def fetch_access_token(self) -> Any:
            return self._fetch_access_token(
                url=base + "gettoken", params={"corpid": self.corp_id, "corpsecret": self.secret}
            )

    return SimulatedHost(sim.credentials["corpid"], secret or sim.credentials["corpsecret"])


def test_wechatpys_client_gets_a_token_and_reads_the_contacts(sim: WeComSim) -> None:
    client = sdk_client(sim)
    departments = client.department.get()
    assert {d["id"] for d in departments} == {1, 2, 3, 4, 5, 6}
    sales = client.department.get_users(3)
    assert {u["userid"] for u in sales} == {"E0010", "E0011", "E0012", "E0013"}
    assert client.user.get("E0011")["direct_leader"] == ["E0010"]
    with pytest.raises(WeChatClientException) as unknown:
        client.user.get("E0099")
    assert unknown.value.errcode == 60111
    # an expired token: WeCom answers 42001, wechatpy fetches a new one and retries
    assert sim.post("/_sim/tokens:expire").json()["expired"] == 1
    assert client.department.get(3)[0]["id"] == 3
    stats = sim.get("/_sim/stats")
    assert stats["tokens_issued"] == 2 and stats["token_refusals"] == 1


def test_wechatpys_client_with_a_wrong_secret_is_refused(sim: WeComSim) -> None:
    with pytest.raises(WeChatClientException) as caught:
        sdk_client(sim, secret="wrong").department.get()
    assert caught.value.errcode == 40001


def receiver(sim: WeComSim, answers: list[int]) -> tuple[FastAPI, list[dict[str, Any]]]:
    """A callback URL that opens each event with wechatpy, answering `answers` in turn."""
    crypto = WeChatCrypto(
        sim.credentials["token"], sim.credentials["EncodingAESKey"], sim.credentials["corpid"]
    )
    got: list[dict[str, Any]] = []
    app = FastAPI()

    @app.get("/hook")
    async def url_check(request: Request) -> PlainTextResponse:
        q = request.query_params
        plain = crypto.check_signature(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
        return PlainTextResponse(plain.decode() if isinstance(plain, bytes) else plain)

    @app.post("/hook")
    async def event(request: Request) -> PlainTextResponse:
        q = request.query_params
        body = (await request.body()).decode()
        plain = crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
        text = plain.decode() if isinstance(plain, bytes) else plain
        got.append({"event": etree.fromstring(text.encode()), "envelope": body})
        status = answers.pop(0) if answers else 200
        return PlainTextResponse("", status_code=status)

    return app, got


def test_callbacks_and_the_url_check_open_with_wechatpy_and_a_wrong_reply_is_retried(
    tmp_path: Any,
) -> None:
    from support.wecom import start_wecom

    # the simulator's credentials are made when it first starts: make them, then point a
    # receiver holding them at a simulator started again on the same data
    first = start_wecom(tmp_path / "pushing", "--no-auto-decide")
    first.server.stop()
    app, got = receiver(first, [500])  # the first push is answered wrongly
    with serve_in_thread(app, "callback receiver") as url:
        sim = start_wecom(
            tmp_path / "pushing",
            "--no-auto-decide",
            "--callback-url",
            url + "/hook",
            "--retry-scale",
            "0.02",
        )
        try:
            assert sim.credentials == first.credentials
            check = sim.post("/_sim/callback:verify").json()
            assert check["verified"] is True, check
            answer = sim.post("/_sim/approvals", employee_approval("E0031", "option-4", "66.00"))
            assert answer.status_code == 200, answer.text
            sp_no = answer.json()["sp_no"]
            callbacks = wait_for(
                lambda: [c for c in sim.get("/_sim/callbacks") if c["state"] == "delivered"],
                10,
                "the callback delivered",
            )
        finally:
            sim.server.stop()
    assert callbacks[0]["attempts"] == 2  # answered 500 once, so sent again
    assert len(got) == 2
    event = got[0]["event"]
    assert event.findtext("Event") == "sys_approval_change"
    assert event.findtext("ToUserName") == first.credentials["corpid"]
    assert event.findtext("ApprovalInfo/SpNo") == sp_no
    assert event.findtext("ApprovalInfo/StatuChangeEvent") == "1"
    assert event.findtext("ApprovalInfo/Applyer/UserId") == "E0031"
    envelope = etree.fromstring(got[0]["envelope"].encode())
    assert [child.tag for child in envelope] == ["ToUserName", "Encrypt", "AgentID"]


def test_wechatpy_sends_the_application_message_finoa_sends_for_a_notice(sim: WeComSim) -> None:
    from finoa.connectors.wecom.mapping import WeComConfig, notice_message_body

    config = WeComConfig.parse(sim.config())
    ours = notice_message_body(
        config, {"notice_id": "n-1", "recipient_id": "E0011", "title": "凭证已归档",
                 "body": "档号 F001-2026-KJ·11-D30-记-0001"}
    )  # fmt: skip
    client = sdk_client(sim)
    sent = client.message.send_text(ours["agentid"], ["E0011", "E0099"], ours["text"]["content"])
    assert sent["errcode"] == 0 and sent["invaliduser"] == "E0099" and sent["msgid"]
    (kept,) = sim.get("/_sim/messages")
    assert (
        kept["touser"] == "E0011"
        and kept["content"] == "凭证已归档\n档号 F001-2026-KJ·11-D30-记-0001"
    )
    with pytest.raises(WeChatClientException) as nobody:
        client.message.send_text(ours["agentid"], ["E0099"], "x")
    assert nobody.value.errcode == 81013  # every receiver unknown or departed
    # finoa's own body carries the same fields wechatpy sends, plus WeCom's duplicate check
    extra = ("enable_duplicate_check", "duplicate_check_interval", "safe")
    body = {k: v for k, v in ours.items() if k not in extra}
    assert body == {"touser": "E0011", "msgtype": "text", "agentid": ours["agentid"],
                    "text": {"content": kept["content"]}}  # fmt: skip
