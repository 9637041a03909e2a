"""The OA simulator as a real server, driven through GenericOAConnector."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from finoa.connectors.base import DeliveryResult, OutboundMessage
from finoa.connectors.generic_oa.client import GenericOAConnector
from finoa.messaging.retry import ErrorClass
from finoa.security.signatures import SignatureError, new_secret, verify

pytestmark = pytest.mark.anyio

API_KEY = "test-api-key"


def todo(task_id: str, op: str = "create", assignee: str = "E0002") -> OutboundMessage:
    payload = {
        "op": op,
        "task_id": task_id,
        "claim_id": f"CL-{task_id}",
        "external_id": f"OA-{task_id}",
        "assignee_id": assignee,
        "title": "Expense claim 1,234.50 CNY",
        "amount_fen": 123_450,
        "currency": "CNY",
        "role": "manager",
    }
    return OutboundMessage(1, "todo.push", f"CL-{task_id}", f"todo:{task_id}:{op}", payload)


def status(external_id: str, n: int, value: str, **extra: Any) -> OutboundMessage:
    payload = {
        "claim_id": "CL-1",
        "external_id": external_id,
        "status": value,
        "reason": None,
        "voucher_no": None,
        "erp_voucher_no": None,
        "at": f"2026-11-22T10:00:0{n}Z",
        **extra,
    }
    return OutboundMessage(n, "status.writeback", "CL-1", f"status:CL-1:{n}", payload)


def connector(
    server: Any, http: httpx.AsyncClient, *, api_key: str = API_KEY, timeout: float = 5
) -> GenericOAConnector:
    config = {"base_url": server.url, "api_key": api_key, "timeout_seconds": timeout}
    return GenericOAConnector(config, http)


async def get(http: httpx.AsyncClient, server: Any, path: str, **params: Any) -> Any:
    response = await http.get(f"{server.url}{path}", params=params)
    response.raise_for_status()
    return response.json()


def statuses(results: list[DeliveryResult]) -> list[str]:
    return [r.response["status"] if r.ok else "error" for r in results]


def all_settled(expected: int) -> Any:
    def done(stats: dict[str, Any]) -> bool:
        finished = stats["decisions_sent"] + stats["decisions_failed"] + stats["decisions_skipped"]
        return bool(stats["decisions_pending"] == 0 and finished == expected)

    return done


async def test_todo_items_ok_then_duplicate(start_oa: Any, http: httpx.AsyncClient) -> None:
    oa = start_oa(auto_decide=False)
    client = connector(oa, http)
    batch = [todo("T1"), todo("T2", assignee="E0005")]
    assert statuses(await client.deliver(batch)) == ["ok", "ok"]
    again = await client.deliver(batch)
    assert statuses(again) == ["duplicate", "duplicate"]
    assert again[0].response["idempotency_key"] == "todo:T1:create"

    open_for_e0002 = await get(http, oa, "/_sim/todos", assignee_id="E0002", state="open")
    assert [(t["task_id"], t["amount_fen"]) for t in open_for_e0002] == [("T1", 123_450)]
    stats = await get(http, oa, "/_sim/stats")
    assert (stats["todos_created"], stats["duplicates"]) == (2, 2)


async def test_duplicate_within_one_batch(start_oa: Any, http: httpx.AsyncClient) -> None:
    oa = start_oa(auto_decide=False)
    results = await connector(oa, http).deliver([todo("T1"), todo("T1")])
    assert statuses(results) == ["ok", "duplicate"]


async def test_close_todo(start_oa: Any, http: httpx.AsyncClient) -> None:
    oa = start_oa(auto_decide=False)
    client = connector(oa, http)
    await client.deliver([todo("T1")])
    assert statuses(await client.deliver([todo("T1", op="close")])) == ["ok"]
    assert await get(http, oa, "/_sim/todos", state="open") == []
    stats = await get(http, oa, "/_sim/stats")
    assert (stats["todos_created"], stats["todos_closed"]) == (1, 1)


async def test_status_history_in_order(start_oa: Any, http: httpx.AsyncClient) -> None:
    oa = start_oa(auto_decide=False)
    client = connector(oa, http)
    batch = [
        status("OA-1", 1, "submitted"),
        status("OA-1", 2, "approved"),
        status("OA-1", 3, "posted", voucher_no="记-0007", erp_voucher_no="记-0012"),
    ]
    assert statuses(await client.deliver(batch)) == ["ok", "ok", "ok"]
    assert statuses(await client.deliver(batch[1:2])) == ["duplicate"]

    history = await get(http, oa, "/_sim/claims/OA-1")
    assert [h["status"] for h in history] == ["submitted", "approved", "posted"]
    assert (history[2]["voucher_no"], history[2]["erp_voucher_no"]) == ("记-0007", "记-0012")
    assert await get(http, oa, "/_sim/claims/OA-404") == []
    assert (await get(http, oa, "/_sim/stats"))["status_updates"] == 3


async def test_a_bad_item_fails_alone(start_oa: Any, http: httpx.AsyncClient) -> None:
    oa = start_oa(auto_decide=False)
    bad = todo("T2", op="frobnicate")
    results = await connector(oa, http).deliver([todo("T1"), bad, todo("T3")])
    assert [r.ok for r in results] == [True, False, True]
    error = results[1].error
    assert error is not None
    assert error.error_class is ErrorClass.PERMANENT
    assert "frobnicate" in error.reason
    assert (await get(http, oa, "/_sim/stats"))["todos_created"] == 2


async def test_wrong_api_key_is_auth_for_every_message(
    start_oa: Any, http: httpx.AsyncClient
) -> None:
    oa = start_oa(auto_decide=False)
    results = await connector(oa, http, api_key="nope").deliver([todo("T1"), todo("T2")])
    assert [r.error.error_class if r.error else None for r in results] == [ErrorClass.AUTH] * 2
    assert (await get(http, oa, "/_sim/stats"))["todos_created"] == 0


async def test_injected_503_is_transient(start_oa: Any, http: httpx.AsyncClient) -> None:
    oa = start_oa(auto_decide=False)
    faults = {"error_rate": 1, "error_status": 503, "count": 1}
    assert (await http.post(f"{oa.url}/_sim/faults", json=faults)).status_code == 200
    client = connector(oa, http)
    results = await client.deliver([status("OA-1", 1, "submitted"), status("OA-1", 2, "approved")])
    assert [r.error.error_class if r.error else None for r in results] == [ErrorClass.TRANSIENT] * 2
    assert (await get(http, oa, "/_sim/stats"))["status_updates"] == 0
    assert statuses(await client.deliver([status("OA-1", 1, "submitted")])) == ["ok"]


async def test_dropped_batch_was_applied(start_oa: Any, http: httpx.AsyncClient) -> None:
    oa = start_oa(auto_decide=False)
    await http.post(f"{oa.url}/_sim/faults", json={"drop_rate": 1, "count": 1})
    client = connector(oa, http, timeout=0.5)
    (lost,) = await client.deliver([status("OA-1", 1, "submitted")])
    assert lost.error is not None and lost.error.error_class is ErrorClass.TRANSIENT
    assert statuses(await client.deliver([status("OA-1", 1, "submitted")])) == ["duplicate"]
    assert len(await get(http, oa, "/_sim/claims/OA-1")) == 1


async def decision_rows(http: httpx.AsyncClient, oa: Any) -> dict[str, dict[str, Any]]:
    """The OA's decisions by task id: (state, attempts, http_status, last_error) and more."""
    return {row["task_id"]: row for row in await get(http, oa, "/_sim/decisions")}


def outcome(row: dict[str, Any]) -> tuple[str, int, int | None, str | None]:
    return row["state"], row["attempts"], row["http_status"], row["last_error"]


async def test_decisions_arrive_in_one_signed_batch(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient, eventually: Any
) -> None:
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret)
    todos = [todo("T1", assignee="E0007"), todo("T2", assignee="E0008"), todo("T3")]
    assert statuses(await connector(oa, http).deliver(todos)) == ["ok"] * 3
    await eventually(lambda: get(http, oa, "/_sim/stats"), all_settled(3))

    (hook,) = receiver.snapshot()
    assert hook.verify_error is None
    assert hook.verified_id is not None and hook.verified_id.startswith("batch-")
    assert verify(receiver.secret, hook.headers, hook.body) == hook.verified_id
    with pytest.raises(SignatureError):
        verify(new_secret(), hook.headers, hook.body)
    assert hook.json() == {
        "type": "batch",
        "data": {
            "events": [
                {
                    "id": f"decision-{task}",
                    "type": "task.decided",
                    "data": {
                        "task_id": task,
                        "decision": "approve",
                        "approver_id": approver,
                        "comment": "同意",
                    },
                }
                for task, approver in [("T1", "E0007"), ("T2", "E0008"), ("T3", "E0002")]
            ]
        },
    }
    rows = await decision_rows(http, oa)
    assert {task: outcome(row) for task, row in rows.items()} == {
        task: ("sent", 1, 200, None) for task in ("T1", "T2", "T3")
    }


async def test_decision_batch_one_sends_one_signed_decision_each(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient, eventually: Any
) -> None:
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret, decision_batch=1)
    todos = [todo("T1", assignee="E0007"), todo("T2", assignee="E0008")]
    assert statuses(await connector(oa, http).deliver(todos)) == ["ok", "ok"]
    await eventually(lambda: get(http, oa, "/_sim/stats"), all_settled(2))

    hooks = sorted(receiver.snapshot(), key=lambda h: str(h.verified_id))
    assert [h.verified_id for h in hooks] == ["decision-T1", "decision-T2"]
    assert all(h.verify_error is None and not h.is_batch() for h in hooks)
    with pytest.raises(SignatureError):
        verify(new_secret(), hooks[0].headers, hooks[0].body)
    assert hooks[0].json() == {
        "type": "task.decided",
        "data": {"task_id": "T1", "decision": "approve", "approver_id": "E0007", "comment": "同意"},
    }
    assert hooks[1].json()["data"]["approver_id"] == "E0008"
    assert (await get(http, oa, "/_sim/stats"))["decisions_sent"] == 2


async def test_decision_batch_caps_the_events_per_webhook(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient, eventually: Any
) -> None:
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret, decision_batch=2)
    await connector(oa, http).deliver([todo(f"T{i}") for i in range(5)])
    await eventually(lambda: get(http, oa, "/_sim/stats"), all_settled(5))
    hooks = receiver.snapshot()
    assert all(h.is_batch() for h in hooks)
    assert sorted(len(h.events()) for h in hooks) == [1, 2, 2]
    assert sorted(event_id for event_id, _ in receiver.events()) == [
        f"decision-T{i}" for i in range(5)
    ]


async def test_reject_rate_one_rejects_with_a_reason(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient, eventually: Any
) -> None:
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret, reject_rate=1.0)
    await connector(oa, http).deliver([todo("T1"), todo("T2")])
    await eventually(lambda: get(http, oa, "/_sim/stats"), all_settled(2))
    bodies = sorted((data for _, data in receiver.events()), key=lambda d: d["task_id"])
    assert [(d["task_id"], d["decision"]) for d in bodies] == [("T1", "reject"), ("T2", "reject")]
    assert {d["comment"] for d in bodies} == {"预算不足 / over budget"}


async def test_a_transient_event_failure_is_retried_alone(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient, eventually: Any
) -> None:
    receiver.event_script = {"decision-T2": [503, 429]}
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret)
    await connector(oa, http).deliver([todo("T1"), todo("T2"), todo("T3")])
    stats = await eventually(lambda: get(http, oa, "/_sim/stats"), all_settled(3))
    assert (stats["decisions_sent"], stats["decisions_failed"]) == (3, 0)

    hooks = receiver.snapshot()
    assert [[event_id for event_id, _ in h.events()] for h in hooks] == [
        ["decision-T1", "decision-T2", "decision-T3"],
        ["decision-T2"],
        ["decision-T2"],
    ]
    assert all(h.is_batch() and h.verify_error is None for h in hooks)
    # Another set of events is another batch, with its own webhook-id.
    assert hooks[0].verified_id != hooks[1].verified_id
    rows = await decision_rows(http, oa)
    assert outcome(rows["T2"]) == ("sent", 3, 200, None)
    assert outcome(rows["T1"]) == outcome(rows["T3"]) == ("sent", 1, 200, None)


async def test_a_permanent_event_failure_is_not_retried(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient, eventually: Any
) -> None:
    receiver.event_script = {"decision-T2": [409], "decision-T3": [404]}
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret)
    await connector(oa, http).deliver([todo("T1"), todo("T2"), todo("T3")])
    stats = await eventually(lambda: get(http, oa, "/_sim/stats"), all_settled(3))
    assert (stats["decisions_sent"], stats["decisions_failed"]) == (1, 2)

    (hook,) = receiver.snapshot()
    assert len(hook.events()) == 3
    rows = await decision_rows(http, oa)
    assert outcome(rows["T1"]) == ("sent", 1, 200, None)
    assert outcome(rows["T2"]) == ("failed", 1, 409, "scripted 409 for decision-T2")
    assert outcome(rows["T3"]) == ("failed", 1, 404, "scripted 404 for decision-T3")


async def test_a_whole_batch_503_resends_the_same_batch(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient, eventually: Any
) -> None:
    receiver.script = [503]
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret)
    await connector(oa, http).deliver([todo("T1"), todo("T2")])
    stats = await eventually(lambda: get(http, oa, "/_sim/stats"), all_settled(2))
    assert (stats["decisions_sent"], stats["decisions_failed"]) == (2, 0)

    first, second = receiver.snapshot()
    assert [event_id for event_id, _ in first.events()] == ["decision-T1", "decision-T2"]
    assert second.body == first.body
    assert second.verified_id == first.verified_id
    assert str(first.verified_id).startswith("batch-")
    rows = await decision_rows(http, oa)
    assert [outcome(row) for row in rows.values()] == [("sent", 2, 200, None)] * 2


async def test_decisions_retry_5xx_with_a_stable_id(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient, eventually: Any
) -> None:
    receiver.script = [503, 500]
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret, decision_batch=1)
    await connector(oa, http).deliver([todo("T1")])
    stats = await eventually(lambda: get(http, oa, "/_sim/stats"), all_settled(1))
    assert (stats["decisions_sent"], stats["decisions_failed"]) == (1, 0)
    hooks = receiver.snapshot()
    assert [h.verified_id for h in hooks] == ["decision-T1"] * 3
    assert not any(h.is_batch() for h in hooks)
    (decision,) = await get(http, oa, "/_sim/decisions")
    assert (decision["state"], decision["attempts"], decision["http_status"]) == ("sent", 3, 200)


async def test_decisions_refused_with_4xx_are_not_retried(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient, eventually: Any
) -> None:
    receiver.answer = {"title": "Bad request", "detail": "no such thing"}
    receiver.script = [400]
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret)
    await connector(oa, http).deliver([todo("T1"), todo("T2")])
    stats = await eventually(lambda: get(http, oa, "/_sim/stats"), all_settled(2))
    assert (stats["decisions_sent"], stats["decisions_failed"]) == (0, 2)
    (hook,) = receiver.snapshot()
    assert len(hook.events()) == 2
    for row in (await decision_rows(http, oa)).values():
        assert outcome(row)[:3] == ("failed", 1, 400)
        assert "no such thing" in str(row["last_error"])


async def test_a_todo_closed_before_deciding_is_skipped(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient, eventually: Any
) -> None:
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret)
    await connector(oa, http).deliver([todo("T1"), todo("T1", op="close")])
    stats = await eventually(lambda: get(http, oa, "/_sim/stats"), all_settled(1))
    assert stats["decisions_skipped"] == 1
    assert receiver.snapshot() == []


async def test_manual_decision(start_oa: Any, receiver: Any, http: httpx.AsyncClient) -> None:
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret, auto_decide=False)
    await connector(oa, http).deliver([todo("T1")])
    url = f"{oa.url}/_sim/todos/T1/decide"
    answer = await http.post(url, json={"decision": "reject", "comment": "receipts missing"})
    assert answer.status_code == 200
    assert answer.json()["state"] == "sent"
    (hook,) = receiver.snapshot()
    assert (hook.verified_id, hook.is_batch()) == ("decision-T1", False)
    assert hook.json()["data"]["comment"] == "receipts missing"
    assert (await http.post(url, json={"decision": "approve"})).status_code == 409


async def test_submit_claim_sends_a_signed_webhook(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient
) -> None:
    receiver.answer = {"claim_id": "CL-42", "status": "submitted"}
    receiver.script = [202]
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret)
    claim = {"external_id": "OA-42", "version": 2, "employee_id": "E0003", "lines": []}
    answer = await http.post(f"{oa.url}/_sim/claims", json=claim)
    assert answer.status_code == 200
    assert answer.json() == {
        "webhook_id": "claim-OA-42-2",
        "status_code": 202,
        "body": {"claim_id": "CL-42", "status": "submitted"},
    }
    (hook,) = receiver.snapshot()
    assert hook.verified_id == "claim-OA-42-2"
    assert hook.json() == {"type": "claim.submitted", "data": claim}

    missing = await http.post(f"{oa.url}/_sim/claims", json={"employee_id": "E0003"})
    assert missing.status_code == 422


async def test_seeded_approvers_decide_the_same_way(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient, eventually: Any
) -> None:
    async def decisions() -> list[str]:
        oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret, reject_rate=0.5, seed=7)
        await connector(oa, http).deliver([todo(f"T{i:02d}") for i in range(20)])
        await eventually(lambda: get(http, oa, "/_sim/stats"), all_settled(20))
        return [d["decision"] for d in await get(http, oa, "/_sim/decisions")]

    first, second = await decisions(), await decisions()
    assert first == second
    assert set(first) == {"approve", "reject"}


async def test_hundreds_of_decisions(
    start_oa: Any, receiver: Any, http: httpx.AsyncClient, eventually: Any
) -> None:
    oa = start_oa(hub_url=receiver.url, webhook_secret=receiver.secret)
    results = await connector(oa, http).deliver([todo(f"T{i:03d}") for i in range(300)])
    assert statuses(results) == ["ok"] * 300
    stats = await eventually(lambda: get(http, oa, "/_sim/stats"), all_settled(300), timeout=30)
    assert stats["decisions_sent"] == 300
    hooks = receiver.snapshot()
    assert [len(h.events()) for h in hooks] == [100] * 3
    assert sorted(event_id for event_id, _ in receiver.events()) == [
        f"decision-T{i:03d}" for i in range(300)
    ]
    assert all(h.verify_error is None for h in hooks)
