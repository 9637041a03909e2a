"""Idempotency that notices conflicts, and document versions, over real HTTP.

A reused Idempotency-Key, webhook id or batch event id answers as a duplicate only when the
content is the same (whitespace and key order aside); with other content it is a 409
problem+json naming the key, and nothing is written. A higher version of a document withdraws
its open claim (tasks withdrawn, todos closed in the OA, the OA told); a booked claim or a
stale version refuses the new version. Nobody decides in the OA here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from e2e.helpers import (
    HubClient,
    StackFactory,
    assert_problem,
    claim_body,
    new_external_id,
    pending_task,
)
from support.processes import wait_for


@pytest.fixture(scope="module")
def hub(start_stack: StackFactory) -> Iterator[HubClient]:
    with start_stack(auto_decide=False) as h:
        yield h


def post_claim(hub: HubClient, content: bytes, key: str) -> httpx.Response:
    headers = {**hub.auth(), "content-type": "application/json", "idempotency-key": key}
    return hub.http.post(f"{hub.url}/api/v1/claims", content=content, headers=headers)


def submitted(data: dict[str, Any], id: str) -> dict[str, Any]:
    return {"id": id, "type": "claim.submitted", "data": data}


def decided(task: dict[str, Any], id: str, **data: Any) -> dict[str, Any]:
    fields = {"task_id": task["id"], "approver_id": "E0010", "decision": "approve", **data}
    return {"id": id, "type": "task.decided", "data": fields}


def batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"type": "batch", "data": {"events": list(events)}}


def single(event: dict[str, Any]) -> dict[str, Any]:
    return {"type": event["type"], "data": event["data"]}


def event_id() -> str:
    return f"evt-{uuid.uuid4().hex}"


def claim_history(hub: HubClient, external_id: str, claim_id: str) -> list[dict[str, Any]]:
    return [h for h in hub.oa_history(external_id) if h["claim_id"] == claim_id]


def test_reused_idempotency_key_with_other_content_is_409(hub: HubClient) -> None:
    body = claim_body()
    key = f"key-{uuid.uuid4().hex}"
    first = post_claim(hub, orjson.dumps(body), key)
    assert first.status_code == 201, first.text
    reordered = orjson.dumps(dict(reversed(list(body.items()))), option=orjson.OPT_INDENT_2)
    with hub.writes_nothing():
        again = post_claim(hub, reordered, key)
        assert again.status_code == 200, again.text
        assert again.headers["finoa-duplicate"] == "true"
        assert again.json()["id"] == first.json()["id"]
        changed = post_claim(hub, orjson.dumps({**body, "title": "另一个 another"}), key)
        assert_problem(changed, 409, field="Idempotency-Key", detail_contains=key)
    assert hub.claim(first.json()["id"])["title"] == body["title"]


def with_first_amount(body: dict[str, Any], amount: Any) -> bytes:
    lines = body["lines"]
    return orjson.dumps({**body, "lines": [{**lines[0], "amount": amount}, *lines[1:]]})


def test_the_same_amount_written_another_way_is_the_same_content(hub: HubClient) -> None:
    """ "1280.50", "1280.5" and the JSON number 1280.5 are one amount: a resend that writes it
    differently is a duplicate, under its Idempotency-Key and under its document version."""
    body = claim_body(amount="1280.50")
    key = f"key-{uuid.uuid4().hex}"
    first = post_claim(hub, orjson.dumps(body), key)
    assert first.status_code == 201, first.text
    with hub.writes_nothing():
        again = post_claim(hub, with_first_amount(body, 1280.5), key)
        assert again.status_code == 200, again.text
        assert again.json()["id"] == first.json()["id"]
        other = post_claim(hub, with_first_amount(body, "1280.51"), key)
        assert_problem(other, 409, field="Idempotency-Key", detail_contains=key)
    resync = post_claim(hub, with_first_amount(body, "1280.5"), f"key-{uuid.uuid4().hex}")
    assert resync.status_code == 200, resync.text  # the same document version, resynced
    assert resync.headers["finoa-duplicate"] == "true"
    assert resync.json()["id"] == first.json()["id"]


def test_reused_webhook_id_with_other_content_is_409(hub: HubClient) -> None:
    body = claim_body()
    msg_id = event_id()
    sent = hub.webhook({"type": "claim.submitted", "data": body}, msg_id=msg_id)
    assert sent.status_code == 200, sent.text
    task = pending_task(hub)
    decided_id = event_id()
    decision = decided(task, decided_id)
    applied = hub.webhook(single(decision), msg_id=decided_id)
    assert applied.status_code == 200, applied.text
    with hub.writes_nothing():
        changed = {**body, "lines": body["lines"][:1]}
        refused = hub.webhook({"type": "claim.submitted", "data": changed}, msg_id=msg_id)
        assert_problem(refused, 409, field="message_id", detail_contains="different content")
        other = decided(task, decided_id, decision="reject", comment="不行 no")
        refused = hub.webhook(single(other), msg_id=decided_id)
        assert_problem(refused, 409, field="message_id", detail_contains="different content")
        again = hub.webhook(single(decision), msg_id=decided_id)
        assert again.status_code == 200 and again.json()["duplicate"] is True, again.text


def test_reused_batch_event_ids_with_other_content_are_refused_one_by_one(
    hub: HubClient,
) -> None:
    task, fresh = pending_task(hub), pending_task(hub)
    body = claim_body()
    claim_event, decision = submitted(body, event_id()), decided(task, event_id())
    first = hub.webhook(batch(claim_event, decision))
    assert [r["status"] for r in first.json()["results"]] == [200, 200], first.text

    changed_claim = submitted({**body, "title": "改过 changed"}, claim_event["id"])
    changed_decision = decided(task, decision["id"], comment="改过 changed")
    new_decision = decided(fresh, event_id())
    answer = hub.webhook(batch(changed_claim, changed_decision, new_decision))
    assert answer.status_code == 200, answer.text
    found = answer.json()["results"]
    assert [r["status"] for r in found] == [409, 409, 200], found
    for refused in found[:2]:
        assert refused["problem"]["field"] == "message_id", refused
        assert "different content" in refused["problem"]["detail"], refused
    assert found[2]["result"]["claim_status"] == "approved"
    assert hub.claim(first.json()["results"][0]["result"]["claim_id"])["title"] == body["title"]
    assert hub.claim(task["claim_id"])["tasks"][0]["comment"] is None


def test_higher_version_withdraws_the_open_claim_and_tells_the_oa(hub: HubClient) -> None:
    external_id = new_external_id("OA-VER")
    v1 = hub.webhook({"type": "claim.submitted", "data": claim_body(external_id=external_id)})
    assert v1.status_code == 200, v1.text
    v1_id = v1.json()["claim_id"]
    (task,) = hub.claim(v1_id)["tasks"]
    wait_for(lambda: hub.oa_todos(v1_id), 15, "the first version's todo in the OA")

    v2_body = claim_body(external_id=external_id, amount="1500.00", version=2)
    v2 = hub.webhook({"type": "claim.submitted", "data": v2_body})
    assert v2.status_code == 200, v2.text
    v2_id = v2.json()["claim_id"]
    assert v2_id != v1_id and v2.json()["duplicate"] is False

    old = hub.claim(v1_id)
    assert (old["status"], old["reason"]) == ("withdrawn", f"superseded by version 2 ({v2_id})")
    assert [t["status"] for t in old["tasks"]] == ["withdrawn"]
    assert hub.claim(v2_id)["status"] == "in_approval"
    wait_for(
        lambda: [t["state"] for t in hub.oa_todos(v1_id)] == ["closed"],
        15,
        "the withdrawn task's todo to be closed in the OA",
    )
    history = wait_for(
        lambda: (
            (h := claim_history(hub, external_id, v1_id)) and h[-1]["status"] == "withdrawn" and h
        ),
        15,
        "the OA to hear the first version is withdrawn",
    )
    assert [h["status"] for h in history] == ["submitted", "in_approval", "withdrawn"]

    with hub.writes_nothing():
        late = hub.decide(task["id"], {"approver_id": "E0010", "decision": "approve"})
        assert_problem(late, 409, field="task_id", detail_contains="withdrawn")
        stale = hub.webhook(
            {"type": "claim.submitted", "data": {**v2_body, "version": 1, "title": "旧 old"}}
        )
        assert_problem(stale, 409, field="version", detail_contains="the current version is 2")


def test_new_version_of_an_approved_claim_is_409_naming_the_voucher(hub: HubClient) -> None:
    task = pending_task(hub)
    approved = hub.decide(task["id"], {"approver_id": "E0010", "decision": "approve"})
    assert approved.status_code == 200, approved.text
    claim = hub.wait_claim(task["claim_id"], "posted")
    voucher_no = claim["voucher"]["voucher_no"]
    body = claim_body(external_id=task["external_id"], version=2)
    with hub.writes_nothing():
        refused = hub.post_claim(body)  # the same client as the first version's
        problem = assert_problem(refused, 409, field="version", detail_contains="already posted")
        assert voucher_no in problem["detail"] and "红冲" in problem["detail"], problem
