"""Weaver e-cology wire formats against golden fixtures, the RSA round trip, and the inbound
decision callback: verified, parsed into a canonical DecideTask, or refused naming the field."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from support.claims import one_line_claim

from finoa.api.json_body import parse_json
from finoa.connectors.base import (
    ApprovalResult,
    ConcludeApproval,
    DecideTask,
    InboundInvalid,
    InboundRefused,
    InboundRequest,
    TodoPayload,
)
from finoa.connectors.weaver import crypto
from finoa.connectors.weaver.inbound import WeaverInbound, callback_signature
from finoa.connectors.weaver.mapping import (
    approval_request_form,
    create_request_form,
    todo_record,
)

FIXTURES = Path(__file__).parents[3] / "fixtures" / "weaver"
SECRET = "callback-secret-0123456789"
APPID = "EEAA5436-7577-4BE0-8C6C-89E9D88805EA"
NOW = 1_764_000_000.0


def golden(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


TODO: TodoPayload = {
    "op": "create", "task_id": "T0001", "claim_id": "CL0001", "external_id": "OA-123",
    "assignee_id": "E0010", "role": "manager", "title": "报销单 CL0001 1,810.50 CNY",
    "amount_fen": 181050, "currency": "CNY",
}  # fmt: skip


def test_unified_todo_records_match_the_golden_fixture() -> None:
    at = datetime(2026, 11, 22, 2, 30, tzinfo=UTC)
    options = {"sys_code": "finoa", "creator": "1", "hub_url": "https://finoa.example.com/",
               "at": at, "timezone": "Asia/Shanghai"}  # fmt: skip
    opened = todo_record(TODO, sequence=41, **options)  # type: ignore[arg-type]
    closed = todo_record({**TODO, "op": "close"}, sequence=57, **options)  # type: ignore[arg-type]
    assert opened == golden("todo_open.json")
    assert closed == {**opened, "isremark": "2", "receivets": "57"}


def test_do_create_request_form_matches_the_golden_fixture() -> None:
    claim = one_line_claim(
        "OA-123", applicant_id="E0011", department_id="D02", category="travel",
        amount="1280.50", tax="30.00", title="差旅报销-周杰", cost_center_id="CC02",
    )  # fmt: skip
    form = create_request_form(claim, 128050, "6", "formtable_main_214_dt1")
    assert form == golden("do_create_request.json")


def test_rsa_round_trip_with_the_spk() -> None:
    server_key = crypto.new_private_key()
    spk = crypto.public_key_text(server_key)
    first, second = crypto.encrypt(spk, "E0010"), crypto.encrypt(spk, "E0010")
    assert first != second  # PKCS#1 v1.5 padding is random
    assert crypto.decrypt(server_key, first) == crypto.decrypt(server_key, second) == "E0010"
    with pytest.raises(ValueError):
        crypto.load_public_key("bm90IGEga2V5")


def request(body: bytes, **headers: str) -> InboundRequest:
    return InboundRequest("weaver", headers, body, {}, parse_json)


def signed(
    body: bytes, *, at: float = NOW, secret: str = SECRET, appid: str = APPID
) -> InboundRequest:
    stamp = str(int(at * 1000))
    return request(body, appid=appid, timestamp=stamp, sign=callback_signature(secret, stamp, body))


def inbound() -> WeaverInbound:
    config = {"appid": APPID, "callback_secret": SECRET}
    return WeaverInbound(config, clock=lambda: NOW)


def parse(req: InboundRequest) -> Any:
    async def go() -> Any:
        handler = inbound()
        return await handler.parse(await handler.verify(req))

    return asyncio.run(go())


def test_a_signed_decision_becomes_a_canonical_decide_task() -> None:
    body = (FIXTURES / "decision_callback.json").read_bytes()
    (command,) = parse(signed(body)).commands
    assert command == DecideTask(
        message_id="weaver-T0001-E0010",
        task_id="T0001",
        approver_id="E0010",
        approve=False,
        comment="费用超标准，退回",
    )


def test_a_signed_request_result_concludes_the_oa_led_claim() -> None:
    body = (FIXTURES / "request_result_callback.json").read_bytes()
    (command,) = parse(signed(body)).commands
    assert command == ConcludeApproval(
        message_id="weaver-request-447003-reject",
        oa_approval_id="447003",
        result=ApprovalResult.REFUSE,
        actor_id="E0010",
        comment="发票缺失",
        claim_id="01JCLAIM0000000000000000AB",
    )


@pytest.mark.parametrize(
    ("operate", "result"),
    [("archive", ApprovalResult.AGREE), ("withdraw", ApprovalResult.REVOKE)],
)
def test_archived_and_withdrawn_requests_map_onto_agree_and_revoke(
    operate: str, result: ApprovalResult
) -> None:
    body = json.dumps({"eventid": "e1", "requestid": "447001", "operate": operate}).encode()
    (command,) = parse(signed(body)).commands
    assert command.result is result and command.claim_id is None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b'{"eventid": "e1", "requestid": "447001", "operate": "approve"}', ("operate",)),
        (b'{"eventid": "e1", "requestid": "R-1", "operate": "archive"}', ("requestid",)),
        (b'{"requestid": "447001", "operate": "archive"}', ("eventid",)),
    ],
)
def test_malformed_request_results_are_invalid_naming_the_field(
    body: bytes, loc: tuple[str]
) -> None:
    with pytest.raises(InboundInvalid) as invalid:
        parse(signed(body))
    assert tuple(invalid.value.errors[0]["loc"]) == loc


def test_the_approval_request_form_carries_the_claim_id_and_yuan_amounts() -> None:
    claim: Any = {
        "id": "C1", "external_id": "X1", "applicant_id": "E0011", "department_id": "D-SALES",
        "cost_center_id": None, "project_id": None, "title": "差旅", "currency": "CNY",
        "total_fen": 128050,
        "lines": [{"category": "travel", "amount_fen": 120000, "tax_fen": 8050,
                   "expense_date": "2026-11-30", "description": "高铁"}],
    }  # fmt: skip
    form = approval_request_form(claim, "6", "formtable_main_214_dt1")
    main = {f["fieldName"]: f["fieldValue"] for f in form["mainData"]}
    assert main["finoadh"] == "C1" and main["je"] == "1280.50" and main["cbzx"] == ""
    (record,) = form["detailData"][0]["workflowRequestTableRecords"]
    fields = {f["fieldName"]: f["fieldValue"] for f in record["workflowRequestTableFields"]}
    assert fields == {"fylb": "travel", "je": "1200.00", "se": "80.50",
                      "fyrq": "2026-11-30", "sm": "高铁"}  # fmt: skip


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda b: signed(b, secret="another-secret-0123456789"), "sign"),
        (lambda b: signed(b, at=NOW - 301), "timestamp"),
        (lambda b: signed(b, appid="OTHER"), "appid"),
        (lambda b: request(b, appid=APPID, timestamp="１２３", sign="x"), "timestamp"),
        (lambda b: _tampered(b), "sign"),
    ],
)
def test_bad_callbacks_are_refused_naming_the_field(make: Any, field: str) -> None:
    body = (FIXTURES / "decision_callback.json").read_bytes()
    with pytest.raises(InboundRefused) as refused:
        parse(make(body))
    assert refused.value.status == 401 and refused.value.field == field


def _tampered(body: bytes) -> InboundRequest:
    good = signed(body)
    return InboundRequest(
        "weaver", good.headers, body.replace(b"reject", b"submit"), {}, parse_json
    )


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (
            b'{"eventid": "e1", "flowid": "T1", "operator": "E0010", "operate": "maybe"}',
            ("operate",),
        ),
        (b'{"eventid": "e1", "operator": "E0010", "operate": "submit"}', ("flowid",)),
    ],
)
def test_malformed_decisions_are_invalid_naming_the_field(body: bytes, loc: tuple[str]) -> None:
    with pytest.raises(InboundInvalid) as invalid:
        parse(signed(body))
    assert tuple(invalid.value.errors[0]["loc"]) == loc


def test_a_repeated_key_is_refused_where_it_repeats() -> None:
    body = b'{"eventid": "e1", "flowid": "T1", "flowid": "T2", "operator": "E0010"}'
    with pytest.raises(RequestValidationError) as refused:
        parse(signed(body))
    assert refused.value.errors()[0]["loc"][1:] == ("flowid",)


def test_secrets_are_redacted_in_diagnostics_and_reprs(tmp_path: Path) -> None:
    import httpx

    from finoa.config import load_settings
    from finoa.connectors.instances import load_instances
    from finoa.connectors.weaver.client import WeaverConnector

    spk = crypto.public_key_text(crypto.new_private_key())
    config = {
        "base_url": "https://oa.example.com", "appid": APPID, "secret": "s3cret-secret-value",
        "spk": spk, "user_id": "1", "syscode": "finoa", "callback_secret": SECRET,
    }  # fmt: skip
    settings = replace(
        load_settings(data_dir=tmp_path),
        extra={"connectors": {"weaver": {"connector": "weaver", "config": config}}},
    )
    instance = load_instances(settings).instances["weaver"]
    shown = repr(instance) + repr(instance.describe()) + repr(instance.inbound)
    connector = WeaverConnector(config, httpx.AsyncClient())
    shown += repr(connector.config) + repr(connector.auth)
    assert "s3cret-secret-value" not in shown and SECRET not in shown
    assert instance.describe()["config"]["secret"] == "***"
    assert instance.describe()["config"]["callback_secret"] == "***"
