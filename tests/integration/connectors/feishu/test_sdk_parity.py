"""Parity with Feishu's official SDK (`lark-oapi`): its client works against the simulator
(tenant token, create and get an instance), events sealed the way Feishu seals them (with
the SDK's own crypto library) pass finoa's inbound while tampered ones are refused, and the
events the simulator sends pass the SDK's own event dispatcher."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from typing import Any

import lark_oapi as lark
import pytest
from Crypto.Cipher import AES
from Crypto.Util.Padding import pad
from fastapi import FastAPI, Request
from fastapi.responses import Response
from lark_oapi.api.approval.v4 import (
    CreateInstanceRequest,
    GetInstanceRequest,
    InstanceCreate,
)
from lark_oapi.core.exception import ObtainAccessTokenException
from lark_oapi.core.model import RawRequest
from lark_oapi.core.utils.decryptor import AESCipher
from support.feishu import FeishuSim, employee_form, start_feishu
from support.processes import wait_for
from support.threaded import serve_in_thread

from finoa.api.json_body import parse_json
from finoa.connectors.base import ApprovalResult, ConcludeApproval, InboundRefused, InboundRequest
from finoa.connectors.feishu.crypto import decrypt, encrypt
from finoa.connectors.feishu.inbound import FeishuInbound


def sdk_client(sim: FeishuSim, secret: str | None = None) -> lark.Client:
    c = sim.credentials
    return (
        lark.Client.builder()
        .app_id(c["app_id"])
        .app_secret(secret or c["app_secret"])
        .domain(sim.url)
        .build()
    )


def test_the_sdk_creates_and_gets_an_instance_with_its_own_token(sim: FeishuSim) -> None:
    client = sdk_client(sim)
    body = (
        InstanceCreate.builder()
        .approval_code(sim.credentials["approval_code"])
        .user_id("E0031")
        .department_id("fs-d04")
        .form(json.dumps(employee_form("交通费", 66.0), ensure_ascii=False))
        .uuid("7d0b5b3e-5a55-4c9a-8f3e-0a1b2c3d4e5f")
        .build()
    )
    request = CreateInstanceRequest.builder().request_body(body).build()
    created = client.approval.v4.instance.create(request)
    assert created.success(), (created.code, created.msg)
    code = created.data.instance_code
    again = client.approval.v4.instance.create(request)
    assert again.code == 60012  # the same uuid: Feishu's idempotency conflict
    got = client.approval.v4.instance.get(
        GetInstanceRequest.builder().instance_id(code).user_id_type("user_id").build()
    )
    assert got.success(), (got.code, got.msg)
    assert got.data.status == "PENDING" and got.data.user_id == "E0031"
    assert json.loads(got.data.form)[0]["id"] == "reason"
    assert sim.get("/_sim/stats")["tokens_issued"] == 1


def test_the_sdk_with_a_wrong_secret_is_refused(sim: FeishuSim) -> None:
    client = sdk_client(sim, secret="wrong")
    request = GetInstanceRequest.builder().instance_id("x").user_id_type("user_id").build()
    with pytest.raises(ObtainAccessTokenException) as caught:
        client.approval.v4.instance.get(request)
    assert caught.value.code == 10014 and sim.get("/_sim/stats")["tokens_issued"] == 0


def _seal(key: str, event: dict[str, Any]) -> bytes:
    """Encrypt as Feishu does, with the SDK's crypto library: AES-256-CBC under
    SHA-256(key), a random IV in front, PKCS#7."""
    iv = os.urandom(16)
    cipher = AES.new(hashlib.sha256(key.encode()).digest(), AES.MODE_CBC, iv)
    sealed = iv + cipher.encrypt(pad(json.dumps(event).encode(), AES.block_size))
    return json.dumps({"encrypt": base64.b64encode(sealed).decode()}).encode()


def _request(
    key: str, body: bytes, timestamp: int | None = None, headers: dict[str, str] | None = None
) -> InboundRequest:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = "n0nce"
    signature = hashlib.sha256((ts + nonce + key).encode() + body).hexdigest()
    base = {
        "x-lark-request-timestamp": ts,
        "x-lark-request-nonce": nonce,
        "x-lark-signature": signature,
    }
    return InboundRequest("feishu", {**base, **(headers or {})}, body, {}, parse_json)


def _events(sim: FeishuSim) -> list[dict[str, Any]]:
    c = sim.credentials
    body = {
        "app_id": c["app_id"],
        "tenant_key": c["tenant_key"],
        "type": "approval_instance",
        "approval_code": c["approval_code"],
        "instance_code": "81D31358-93AF-92D6-7425-01A5D67C4E71",
        "status": "DELETED",
        "operate_time": "1666079207003",
    }
    v1 = {"uuid": "e-1", "token": c["verification_token"], "type": "event_callback", "event": body}
    v2 = {
        "schema": "2.0",
        "header": {
            "event_id": "e-2",
            "token": c["verification_token"],
            "event_type": "approval_instance",
            "create_time": "1666079207003",
        },
        "event": body,
    }
    return [v1, v2]


@pytest.mark.anyio
async def test_events_sealed_the_sdk_way_pass_and_tampered_ones_are_refused(
    sim: FeishuSim,
) -> None:
    c = sim.credentials
    key = c["encrypt_key"]
    inbound = FeishuInbound({k: v for k, v in _config(sim).items()})
    for event in _events(sim):
        body = _seal(key, event)
        message = await inbound.verify(_request(key, body))
        parsed = await inbound.parse(message)
        (command,) = parsed.commands
        assert isinstance(command, ConcludeApproval)
        assert command.result is ApprovalResult.TERMINATE and command.message_id in ("e-1", "e-2")
        refusals = {
            "x-lark-signature": _request(key, body, headers={"x-lark-signature": "0" * 64}),
            "x-lark-request-timestamp": _request(key, body, timestamp=int(time.time()) - 3600),
            "encrypt": _request(key, _seal("another-key", event)),
            "token": _request(key, _seal(key, {**event, "token": "forged"})),
        }
        if "header" in event:
            forged = {**event, "header": {**event["header"], "token": "forged"}}
            refusals["token"] = _request(key, _seal(key, forged))
        for field, request in refusals.items():
            with pytest.raises(InboundRefused) as caught:
                await inbound.verify(request)
            assert caught.value.field.lower() == field and caught.value.status == 401
    # A URL verification answers the challenge.
    challenge = {"challenge": "ch-1", "token": c["verification_token"], "type": "url_verification"}
    message = await inbound.verify(_request(key, _seal(key, challenge)))
    parsed = await inbound.parse(message)
    assert parsed.commands == () and json.loads(inbound.reply(parsed, []).body) == {
        "challenge": "ch-1"
    }


def test_finoa_and_the_sdk_read_each_others_encryption() -> None:
    key = "kYIDXxHHCPaPa0Ivx6yWQvLKXmXlYoiS"
    assert AESCipher(key).decrypt_str(encrypt(key, '{"a":"报销"}')) == '{"a":"报销"}'
    sealed = json.loads(_seal(key, {"a": "报销"}))["encrypt"]
    assert json.loads(decrypt(key, sealed)) == {"a": "报销"}


def _config(sim: FeishuSim) -> dict[str, Any]:
    return sim.config()


def _receiver(encrypt_key: str, token: str, seen: list[dict[str, Any]]) -> FastAPI:
    """An app receiving Feishu's pushes through the SDK's own event dispatcher."""
    lock = threading.Lock()

    def record(event: Any) -> None:
        with lock:
            seen.append(dict(event.event or {}))

    handler = (
        lark.EventDispatcherHandler.builder(encrypt_key, token)
        .register_p1_customized_event("approval_instance", record)
        .register_p1_customized_event("approval_task", record)
        .build()
    )
    app = FastAPI()

    @app.post("/events")
    async def events(request: Request) -> Response:
        raw = RawRequest()
        raw.uri = "/events"
        raw.body = await request.body()
        raw.headers = {
            name: request.headers.get(name.lower(), "")
            for name in ("X-Lark-Request-Timestamp", "X-Lark-Request-Nonce", "X-Lark-Signature")
        }
        answer = handler.do(raw)
        return Response(answer.content, status_code=answer.status_code or 200)

    return app


def test_the_simulators_events_pass_the_sdks_dispatcher(tmp_path: Any) -> None:
    from finoa.connectors.feishu.simulator import Credentials

    creds = Credentials.load_or_create(tmp_path / "sim" / "sim-feishu")  # the simulator reads these
    seen: list[dict[str, Any]] = []
    wrong: list[dict[str, Any]] = []
    with (
        serve_in_thread(_receiver(creds.encrypt_key, creds.verification_token, seen)) as good,
        serve_in_thread(_receiver("not-the-key", creds.verification_token, wrong)) as bad,
    ):
        sims = [
            start_feishu(tmp_path / "sim", "--callback-url", good + "/events"),
            start_feishu(tmp_path / "sim2", "--callback-url", bad + "/events"),
        ]
        try:
            for sim in sims:
                started = sim.post(
                    "/_sim/instances",
                    {
                        "user_id": "E0031",
                        "department_id": "fs-d04",
                        "form": employee_form("交通费", 8.0),
                    },
                )
                assert started.status_code == 200, started.text
            wait_for(
                lambda: (
                    {e.get("status") for e in seen if e["type"] == "approval_instance"}
                    >= {"PENDING", "APPROVED"}
                ),
                30,
                "the SDK dispatcher to accept the instance's events",
            )
            assert {e["type"] for e in seen} == {"approval_instance", "approval_task"}
            assert set(sims[0].get("/_sim/stats")["callbacks"]) == {"delivered"}
            # Under another key the SDK refuses them (HTTP 500) and Feishu sends them again.
            wait_for(
                lambda: (
                    all(
                        cb["state"] == "retrying" and cb["last_status"] == 500
                        for cb in sims[1].get("/_sim/callbacks")
                    )
                    and len(sims[1].get("/_sim/callbacks")) >= 2
                ),
                30,
                "the refused events to be retried",
            )
            assert wrong == []
        finally:
            for sim in sims:
                sim.server.stop()


def test_the_sdk_sends_the_message_finoa_sends_for_a_notice(sim: FeishuSim) -> None:
    from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

    from finoa.connectors.feishu.mapping import notice_message_body

    ours = notice_message_body(
        {"notice_id": "archived:PK-9", "recipient_id": "E0031", "title": "凭证已归档",
         "body": "档号 F001-2026-KJ·11-D30-记-0009"}
    )  # fmt: skip
    body = (
        CreateMessageRequestBody.builder()
        .receive_id(ours["receive_id"])
        .msg_type(ours["msg_type"])
        .content(ours["content"])
        .uuid(ours["uuid"])
        .build()
    )
    assert json.loads(lark.JSON.marshal(body)) == ours  # the SDK's model holds exactly finoa's body
    request = CreateMessageRequest.builder().receive_id_type("user_id").request_body(body).build()
    client = sdk_client(sim)
    sent = client.im.v1.message.create(request)
    assert sent.success(), (sent.code, sent.msg)
    assert sent.data.message_id.startswith("om_") and sent.data.msg_type == "text"
    assert (
        json.loads(sent.data.body.content)["text"] == "凭证已归档\n档号 F001-2026-KJ·11-D30-记-0009"
    )
    again = client.im.v1.message.create(request)  # the same uuid: the same message
    assert again.success() and again.data.message_id == sent.data.message_id
    wrong = (
        CreateMessageRequest.builder()
        .receive_id_type("user_id")
        .request_body(
            CreateMessageRequestBody.builder()
            .receive_id("E7777")
            .msg_type("text")
            .content(ours["content"])
            .build()
        )
        .build()
    )
    refused = client.im.v1.message.create(wrong)
    assert refused.code == 230001 and "receive_id" in refused.msg
