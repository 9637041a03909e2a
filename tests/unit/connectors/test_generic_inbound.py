"""The generic OA's inbound side on its own: verify, parse into canonical commands, reply."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from finoa.api.json_body import parse_json
from finoa.connectors.base import (
    CommandOutcome,
    DecideTask,
    InboundInvalid,
    InboundRefused,
    InboundRequest,
    SubmitClaim,
)
from finoa.connectors.generic_oa.inbound import GenericOAInbound
from finoa.security.signatures import new_secret, signed_headers

pytestmark = pytest.mark.anyio

SECRET = new_secret()
DECISION = {"task_id": "T1", "decision": "approve", "approver_id": "E0010", "comment": "ok"}
CLAIM = {
    "external_id": "OA-1",
    "applicant_id": "E0011",
    "department_id": "D02",
    "title": "差旅",
    "lines": [{"category": "travel", "amount": "12.50", "expense_date": "2026-11-10"}],
}


def request(body: Any, *, message_id: str = "wh-1", secret: str = SECRET) -> InboundRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = signed_headers(secret, message_id, raw)
    return InboundRequest("hq-oa", headers, raw, {}, parse_json)


async def parsed(body: Any) -> Any:
    handler = GenericOAInbound({"webhook_secret": SECRET})
    return await handler.parse(await handler.verify(request(body)))


async def test_a_bad_signature_is_refused_naming_the_header() -> None:
    handler = GenericOAInbound({"webhook_secret": SECRET})
    with pytest.raises(InboundRefused) as refused:
        await handler.verify(
            request({"type": "task.decided", "data": DECISION}, secret=new_secret())
        )
    assert refused.value.status == 401 and refused.value.field == "webhook-signature"


async def test_events_become_canonical_commands_under_their_ids() -> None:
    single = await parsed({"type": "task.decided", "data": DECISION})
    assert single.commands == (DecideTask("wh-1", "T1", "E0010", True, "ok"),)
    batch = await parsed(
        {
            "type": "batch",
            "data": {
                "events": [
                    {"id": "e-1", "type": "claim.submitted", "data": CLAIM},
                    {"id": "e-2", "type": "task.decided", "data": DECISION},
                ]
            },
        }
    )
    first, second = batch.commands
    assert isinstance(first, SubmitClaim) and first.message_id == "e-1"
    assert first.submission.external_id == "OA-1"
    assert second == DecideTask("e-2", "T1", "E0010", True, "ok")


async def test_bad_input_names_the_field_inside_the_body() -> None:
    bad = {**CLAIM, "lines": [{**CLAIM["lines"][0], "amount": "12.345"}]}
    with pytest.raises(InboundInvalid) as invalid:
        await parsed({"type": "claim.submitted", "data": bad})
    assert invalid.value.errors[0]["loc"] == ("data", "lines", 0, "amount")
    with pytest.raises(RequestValidationError):  # the hub's strict reader: a repeated key
        await parsed(b'{"type": "task.decided", "type": "batch", "data": {}}')


async def test_replies_are_built_from_the_outcomes() -> None:
    handler = GenericOAInbound({"webhook_secret": SECRET})
    single = await parsed({"type": "task.decided", "data": DECISION})
    ok = handler.reply(single, [CommandOutcome("wh-1", 200, result={"task_id": "T1"})])
    assert (ok.status, json.loads(ok.body)) == (200, {"task_id": "T1"})
    problem = {"status": 503, "title": "Outcome unknown", "field": "message_id"}
    unknown = handler.reply(
        single, [CommandOutcome("wh-1", 503, problem=problem, retry_after_seconds=2)]
    )
    assert (unknown.status, unknown.media_type) == (503, "application/problem+json")
    assert unknown.headers == {"retry-after": "2"} and json.loads(unknown.body) == problem
    batch = await parsed(
        {
            "type": "batch",
            "data": {"events": [{"id": "e-1", "type": "task.decided", "data": DECISION}]},
        }
    )
    answer = handler.reply(batch, [CommandOutcome("e-1", 409, problem={"status": 409})])
    assert json.loads(answer.body) == {
        "results": [{"id": "e-1", "status": 409, "problem": {"status": 409}}]
    }


def test_an_instance_without_a_webhook_secret_cannot_take_webhooks() -> None:
    with pytest.raises(ValueError, match="^webhook_secret: required"):
        GenericOAInbound({})
