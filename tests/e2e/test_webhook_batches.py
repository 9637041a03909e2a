"""Batch webhooks over real HTTP: several OA events in one signed delivery.

Each event of a batch is applied or refused on its own and deduplicated by its own `id`, in
the same inbox as the `webhook-id` of a single event. A malformed batch is refused whole (422
naming the field; 400 when it is not JSON) and writes nothing. Nobody decides in the OA here:
the tests decide the approval tasks themselves, through batches.
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
    assert_still_pending,
    claim_body,
    new_external_id,
    pending_task,
)
from support.processes import wait_for

from finoa.security.signatures import new_secret, signed_headers

LOOP = ["submitted", "in_approval", "approved", "posted"]
MAX_EVENTS = 100


@pytest.fixture(scope="module")
def hub(start_stack: StackFactory) -> Iterator[HubClient]:
    with start_stack(auto_decide=False) as h:
        yield h


# -- building and reading batches -------------------------------------------------------------


def event_id() -> str:
    return f"evt-{uuid.uuid4().hex}"


def decided(
    task_id: str,
    *,
    approver_id: str = "E0010",
    decision: str = "approve",
    comment: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """A task.decided event of a batch."""
    return {
        "id": id or event_id(),
        "type": "task.decided",
        "data": {
            "task_id": task_id,
            "decision": decision,
            "approver_id": approver_id,
            "comment": comment,
        },
    }


def submitted(claim: dict[str, Any], *, id: str | None = None) -> dict[str, Any]:
    """A claim.submitted event of a batch."""
    return {"id": id or event_id(), "type": "claim.submitted", "data": claim}


def batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"type": "batch", "data": {"events": list(events)}}


def results(response: httpx.Response, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-event results of an accepted batch, checked to follow the events' order."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    answer = response.json()
    assert list(answer) == ["results"], answer
    found: list[dict[str, Any]] = answer["results"]
    assert [r["id"] for r in found] == [e["id"] for e in events], found
    return found


def decision_result(
    task: dict[str, Any], claim_status: str, *, duplicate: bool = False
) -> dict[str, Any]:
    return {
        "task_id": task["id"],
        "claim_id": task["claim_id"],
        "claim_status": claim_status,
        "duplicate": duplicate,
    }


def assert_event_problem(
    result: dict[str, Any], status: int, *, field: str, detail_contains: str
) -> None:
    """A refused event: its status, and a problem document naming the field."""
    assert result["status"] == status, result
    assert "result" not in result, result
    problem = result["problem"]
    assert set(problem) == {"type", "title", "status", "detail", "field"}, problem
    assert problem["type"].startswith("https://finoa.dev/problems/"), problem
    assert problem["status"] == status, problem
    assert problem["title"], problem
    assert problem["field"] == field, problem
    assert problem["detail"].startswith(f"{field}:"), problem
    assert detail_contains in problem["detail"], problem


# -- the stack's state ------------------------------------------------------------------------


@pytest.fixture
def pending(hub: HubClient) -> dict[str, Any]:
    return pending_task(hub)


def assert_posted_and_written_back(hub: HubClient, task: dict[str, Any]) -> None:
    """The claim of an approved task is posted once, and the OA heard the whole loop."""
    claim = hub.wait_claim(task["claim_id"], "posted")
    (decided_task,) = claim["tasks"]
    assert (decided_task["id"], decided_task["status"]) == (task["id"], "approved")
    assert decided_task["decided_at"] is not None
    (voucher,) = hub.erp_vouchers(task["claim_id"])
    assert voucher["hub_voucher_no"] == claim["voucher"]["voucher_no"]
    history = hub.wait_history(task["external_id"], "posted")
    assert [h["status"] for h in history] == LOOP
    assert history[-1]["erp_voucher_no"] == voucher["erp_voucher_no"]
    wait_for(
        lambda: [t["state"] for t in hub.oa_todos(task["claim_id"])] == ["closed"],
        15,
        f"the todo of {task['id']} to be closed in the OA",
    )


# -- accepted batches -------------------------------------------------------------------------


def test_batch_decides_tasks_of_several_claims_and_submits_a_claim(hub: HubClient) -> None:
    tasks = [pending_task(hub) for _ in range(3)]
    assert len({t["claim_id"] for t in tasks}) == 3
    new_claim = claim_body(external_id=new_external_id("OA-BATCH"))
    events = [decided(t["id"], comment="同意") for t in tasks] + [submitted(new_claim)]

    found = results(hub.webhook(batch(*events)), events)

    for task, result in zip(tasks, found[:3], strict=True):
        assert result == {
            "id": result["id"],  # the order is checked by results()
            "status": 200,
            "result": decision_result(task, "approved"),
        }
    claim_result = found[3]
    assert claim_result["status"] == 200, claim_result
    new_id = claim_result["result"]["claim_id"]
    assert claim_result == {
        "id": events[3]["id"],
        "status": 200,
        "result": {"claim_id": new_id, "duplicate": False},
    }

    for task in tasks:
        assert_posted_and_written_back(hub, task)
        (decided_task,) = hub.claim(task["claim_id"])["tasks"]
        assert decided_task["comment"] == "同意"

    claim = hub.claim(new_id)
    assert (claim["source"], claim["external_id"]) == ("generic-oa", new_claim["external_id"])
    assert claim["status"] == "in_approval"
    (task,) = claim["tasks"]
    assert (task["assignee_id"], task["status"]) == ("E0010", "pending")
    wait_for(lambda: hub.oa_todos(new_id), 15, "the new claim's todo in the OA")


def test_failed_events_do_not_hold_back_the_others(hub: HubClient) -> None:
    good, other = pending_task(hub), pending_task(hub)
    unknown_project = claim_body(project_id="P999")
    events = [
        decided(good["id"]),
        decided("T-does-not-exist"),
        decided(other["id"], approver_id="E0003"),
        submitted(unknown_project),
    ]
    hub.quiesce()
    claims_before = hub.stats()["claims"]

    found = results(hub.webhook(batch(*events)), events)

    assert found[0] == {
        "id": events[0]["id"],
        "status": 200,
        "result": decision_result(good, "approved"),
    }
    assert_event_problem(
        found[1], 404, field="task_id", detail_contains="unknown task T-does-not-exist"
    )
    assert_event_problem(
        found[2], 403, field="approver_id", detail_contains="E0003 is not the assignee"
    )
    assert_event_problem(found[3], 422, field="project_id", detail_contains="unknown project P999")

    assert_posted_and_written_back(hub, good)
    assert_still_pending(hub, other)
    assert hub.oa_history(unknown_project["external_id"]) == []
    hub.quiesce()
    claims_after = hub.stats()["claims"]
    assert sum(claims_after.values()) == sum(claims_before.values())  # no claim for P999
    assert claims_after["in_approval"] == claims_before["in_approval"] - 1
    assert claims_after.get("posted", 0) == claims_before.get("posted", 0) + 1

    # a refused event left no trace in the inbox: sent again, it is refused again
    with hub.writes_nothing():
        again = results(hub.webhook(batch(*events[1:])), events[1:])
    assert [r["status"] for r in again] == [404, 403, 422]
    assert_still_pending(hub, other)


def test_two_decisions_of_one_task_in_a_batch_apply_once(hub: HubClient) -> None:
    task = pending_task(hub)
    events = [decided(task["id"]), decided(task["id"], decision="reject", comment="不行 no")]
    found = results(hub.webhook(batch(*events)), events)
    statuses = sorted(r["status"] for r in found)
    assert statuses == [200, 409], found
    (won,) = [r for r in found if r["status"] == 200]
    (lost,) = [r for r in found if r["status"] == 409]
    assert_event_problem(lost, 409, field="task_id", detail_contains="already decided")
    final = "approved" if won["id"] == events[0]["id"] else "rejected"
    assert won["result"] == decision_result(task, final)
    claim = hub.wait_claim(task["claim_id"], "posted" if final == "approved" else "rejected")
    (now,) = claim["tasks"]
    assert now["status"] == final
    hub.quiesce()
    assert len(hub.erp_vouchers(task["claim_id"])) == (1 if final == "approved" else 0)


# -- idempotency ------------------------------------------------------------------------------


def test_resent_batch_is_a_duplicate_and_changes_nothing(hub: HubClient) -> None:
    tasks = [pending_task(hub) for _ in range(2)]
    new_claim = claim_body(external_id=new_external_id("OA-BATCH"))
    events = [decided(t["id"]) for t in tasks] + [submitted(new_claim)]
    body = batch(*events)
    msg_id = f"batch-{uuid.uuid4().hex}"
    first = results(hub.webhook(body, msg_id=msg_id), events)
    assert [r["status"] for r in first] == [200, 200, 200], first
    for task in tasks:
        assert_posted_and_written_back(hub, task)

    with hub.writes_nothing():
        for resend_id in (msg_id, f"batch-{uuid.uuid4().hex}"):  # same delivery, new delivery
            again = results(hub.webhook(body, msg_id=resend_id), events)
            for before, after in zip(first, again, strict=True):
                assert after == {
                    **before,
                    "result": {**before["result"], "duplicate": True},
                }
    for task in tasks:
        assert len(hub.erp_vouchers(task["claim_id"])) == 1
        assert [h["status"] for h in hub.oa_history(task["external_id"])] == LOOP


def test_event_ids_share_the_inbox_with_single_webhook_ids(hub: HubClient) -> None:
    alone_first, in_batch_first, fresh = pending_task(hub), pending_task(hub), pending_task(hub)

    # a single event with webhook-id X, then X inside a batch
    single_id = event_id()
    single = hub.webhook(
        {"type": "task.decided", "data": decided(alone_first["id"])["data"]}, msg_id=single_id
    )
    assert single.status_code == 200, single.text
    assert single.json() == decision_result(alone_first, "approved")
    assert_posted_and_written_back(hub, alone_first)

    # an event of a batch with id Y, then a single event with webhook-id Y
    batched = decided(in_batch_first["id"])
    (applied,) = results(hub.webhook(batch(batched)), [batched])
    assert applied["result"] == decision_result(in_batch_first, "approved")
    assert_posted_and_written_back(hub, in_batch_first)

    with hub.writes_nothing():
        repeat = decided(alone_first["id"], id=single_id)
        (dup,) = results(hub.webhook(batch(repeat)), [repeat])
        assert dup == {
            "id": single_id,
            "status": 200,
            "result": decision_result(alone_first, "approved", duplicate=True),
        }
        alone = hub.webhook({"type": "task.decided", "data": batched["data"]}, msg_id=batched["id"])
        assert alone.status_code == 200, alone.text
        assert alone.json() == decision_result(in_batch_first, "approved", duplicate=True)

    # a duplicate next to a new event: the new one is applied
    events = [decided(alone_first["id"], id=single_id), decided(fresh["id"])]
    found = results(hub.webhook(batch(*events)), events)
    assert found[0]["result"] == decision_result(alone_first, "approved", duplicate=True)
    assert found[1] == {
        "id": events[1]["id"],
        "status": 200,
        "result": decision_result(fresh, "approved"),
    }
    assert_posted_and_written_back(hub, fresh)
    for task in (alone_first, in_batch_first, fresh):
        assert len(hub.erp_vouchers(task["claim_id"])) == 1


def test_claim_sent_alone_then_in_a_batch_is_a_duplicate(hub: HubClient) -> None:
    body = claim_body(external_id=new_external_id("OA-WH"))
    msg_id = event_id()
    single = hub.webhook({"type": "claim.submitted", "data": body}, msg_id=msg_id)
    assert single.status_code == 200, single.text
    claim_id = single.json()["claim_id"]
    assert single.json() == {"claim_id": claim_id, "duplicate": False}
    wait_for(lambda: hub.oa_todos(claim_id), 15, "the claim's todo in the OA")
    with hub.writes_nothing():
        event = submitted(body, id=msg_id)
        (dup,) = results(hub.webhook(batch(event)), [event])
    assert dup == {"id": msg_id, "status": 200, "result": {"claim_id": claim_id, "duplicate": True}}


def test_an_id_taken_by_another_kind_of_event_is_409(hub: HubClient) -> None:
    task = pending_task(hub)
    claim_id_taken = event_id()
    sent = hub.webhook({"type": "claim.submitted", "data": claim_body()}, msg_id=claim_id_taken)
    assert sent.status_code == 200, sent.text
    hub.quiesce()
    decision_id_taken = event_id()
    other = pending_task(hub)
    decided_alone = hub.webhook(
        {"type": "task.decided", "data": decided(other["id"])["data"]}, msg_id=decision_id_taken
    )
    assert decided_alone.status_code == 200, decided_alone.text
    assert_posted_and_written_back(hub, other)
    with hub.writes_nothing():
        events = [
            decided(task["id"], id=claim_id_taken),
            submitted(claim_body(), id=decision_id_taken),
        ]
        found = results(hub.webhook(batch(*events)), events)
        for result, kind in zip(found, ("claim", "decision"), strict=True):
            assert_event_problem(
                result, 409, field="message_id", detail_contains=f"used by a {kind} message"
            )
    assert_still_pending(hub, task)


# -- whole-batch refusals ---------------------------------------------------------------------


def tweak(events: list[dict[str, Any]], case: str) -> dict[str, Any]:
    """A malformed batch whose first event is `events[0]`, a valid decision."""
    good = events[0]
    second = decided("T-any", id=event_id())
    if case == "zero-events":
        return batch()
    if case == "101-events":
        return batch(good, *(decided(f"T-{i}") for i in range(MAX_EVENTS)))
    if case == "repeated-id":
        return batch(good, decided("T-any", id=good["id"]))
    if case == "task-id-not-a-string":
        second["data"]["task_id"] = 12345
        return batch(good, second)
    if case == "amount-not-a-decimal":
        claim = claim_body()
        claim["lines"][0]["amount"] = "abc"
        return batch(good, submitted(claim))
    if case == "unknown-event-type":
        return batch(good, {"id": event_id(), "type": "claim.exploded", "data": {}})
    if case == "nested-batch":
        return batch(good, {"id": event_id(), "type": "batch", "data": {"events": [good]}})
    if case == "missing-approver":
        del second["data"]["approver_id"]
        return batch(good, second)
    if case == "missing-event-id":
        del second["id"]
        return batch(good, second)
    if case == "empty-event-id":
        second["id"] = ""
        return batch(good, second)
    if case == "event-id-too-long":
        second["id"] = "x" * 129
        return batch(good, second)
    if case == "extra-field-in-event":
        second["colour"] = "red"
        return batch(good, second)
    if case == "extra-field-in-data":
        second["data"]["colour"] = "red"
        return batch(good, second)
    if case == "rejection-without-reason":
        second["data"]["decision"] = "reject"
        return batch(good, second)
    if case == "events-not-a-list":
        return {"type": "batch", "data": {"events": good}}
    if case == "extra-field-in-batch":
        body = batch(good)
        body["data"]["colour"] = "red"
        return body
    raise AssertionError(case)


# case: (field, words the detail must contain)
REFUSALS: dict[str, tuple[str, str]] = {
    "zero-events": ("data.events", "at least 1"),
    "101-events": ("data.events", "at most 100"),
    "repeated-id": ("data.events[1].id", "repeats"),
    "task-id-not-a-string": ("data.events[1].data.task_id", "string"),
    "amount-not-a-decimal": ("data.events[1].data.lines[0].amount", "decimal"),
    "unknown-event-type": ("data.events[1].type", "claim.submitted"),
    "nested-batch": ("data.events[1].type", "task.decided"),
    "missing-approver": ("data.events[1].data.approver_id", "required"),
    "missing-event-id": ("data.events[1].id", "required"),
    "empty-event-id": ("data.events[1].id", "at least 1"),
    "event-id-too-long": ("data.events[1].id", "at most 128"),
    "extra-field-in-event": ("data.events[1].colour", "not a known field"),
    "extra-field-in-data": ("data.events[1].data.colour", "not a known field"),
    "rejection-without-reason": ("data.events[1].data.comment", "reason"),
    "events-not-a-list": ("data.events", "valid array"),
    "extra-field-in-batch": ("data.colour", "not a known field"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_malformed_batch_is_refused_whole(
    hub: HubClient, pending: dict[str, Any], case: str
) -> None:
    field, words = REFUSALS[case]
    good = decided(pending["id"])
    body = tweak([good], case)
    with hub.writes_nothing():
        response = hub.webhook(body)
        problem = assert_problem(
            response, 422, field=field, kind="validation", detail_contains=words
        )
    assert problem["errors"][0]["field"] == field
    assert_still_pending(hub, pending)
    # the valid event was not recorded either: alone, it is applied
    (applied,) = results(hub.webhook(batch(good)), [good])
    assert applied["result"] == decision_result(pending, "approved")


def test_exactly_100_events_are_accepted(hub: HubClient, pending: dict[str, Any]) -> None:
    events = [decided(pending["id"])] + [decided(f"T-none-{i}") for i in range(MAX_EVENTS - 1)]
    found = results(hub.webhook(batch(*events)), events)
    assert found[0]["result"] == decision_result(pending, "approved")
    assert {r["status"] for r in found[1:]} == {404}
    assert_posted_and_written_back(hub, pending)


def test_malformed_json_batch_writes_nothing(hub: HubClient, pending: dict[str, Any]) -> None:
    raw = orjson.dumps(batch(decided(pending["id"])))[:-5]
    headers = signed_headers(hub.stack.secrets.oa_webhook_secret, event_id(), raw)
    with hub.writes_nothing():
        assert_problem(
            hub.send_webhook(raw, headers),
            400,
            field="body",
            kind="malformed-json",
            detail_contains="not valid JSON",
            prefixed=False,
        )
    assert_still_pending(hub, pending)


def test_batch_with_a_bad_signature_is_401(hub: HubClient, pending: dict[str, Any]) -> None:
    body = orjson.dumps(batch(decided(pending["id"])))
    msg_id = f"batch-{uuid.uuid4().hex}"
    other_key = signed_headers(new_secret(), msg_id, body)
    signed = signed_headers(hub.stack.secrets.oa_webhook_secret, msg_id, body)
    tampered = body.replace(b'"approve"', b'"reject","x":1', 1)
    assert tampered != body
    with hub.writes_nothing():
        for headers, sent in ((other_key, body), (signed, tampered)):
            assert_problem(
                hub.send_webhook(sent, headers),
                401,
                field="webhook-signature",
                kind="invalid-signature",
                detail_contains="does not match",
            )
    assert_still_pending(hub, pending)
    # the control: the same batch, correctly signed, is applied
    response = hub.send_webhook(body, signed)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["result"] == decision_result(pending, "approved")
    assert_posted_and_written_back(hub, pending)
