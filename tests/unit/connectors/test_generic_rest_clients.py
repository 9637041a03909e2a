"""The generic REST connector clients against scripted answers (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from finoa.connectors.base import (
    Connector,
    ConnectorKind,
    Direction,
    OutboundMessage,
)
from finoa.connectors.generic_erp.client import GenericERPConnector
from finoa.connectors.generic_oa.client import GenericOAConnector
from finoa.connectors.rest import RestConfig
from finoa.messaging.retry import DeliveryError, ErrorClass

pytestmark = pytest.mark.anyio

CONFIG = {"base_url": "http://peer.test/", "api_key": "secret", "timeout_seconds": 2.5}
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def todo(n: int, action: str = "todo.push") -> OutboundMessage:
    return OutboundMessage(
        n, action, "CL-1", f"todo:T{n}:create", {"op": "create", "task_id": f"T{n}"}
    )


def ok_results(request: httpx.Request) -> httpx.Response:
    items = json.loads(request.content)["items"]
    return httpx.Response(
        200,
        json={
            "results": [{"idempotency_key": i["idempotency_key"], "status": "ok"} for i in items]
        },
    )


def classes(results: list[Any]) -> list[ErrorClass | None]:
    return [r.error.error_class if r.error else None for r in results]


def test_manifests() -> None:
    oa, erp = GenericOAConnector.manifest, GenericERPConnector.manifest
    assert (oa.name, oa.kind, oa.direction, oa.max_batch, oa.auth) == (
        "generic-oa",
        ConnectorKind.OA,
        Direction.BOTH,
        100,
        "bearer",
    )
    assert oa.actions == ("todo.push", "todo.remind", "status.writeback", "notice.send")
    assert (erp.name, erp.kind, erp.direction, erp.max_batch, erp.actions) == (
        "generic-erp",
        ConnectorKind.ERP,
        Direction.OUTBOUND,
        50,
        ("voucher.post",),
    )
    for manifest in (oa, erp):
        schema = manifest.config_schema
        assert schema["required"] == ["base_url", "api_key"]
        assert schema["properties"]["timeout_seconds"]["default"] == 5


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"api_key": "k"}, "base_url"),
        ({"base_url": "ftp://x", "api_key": "k"}, "base_url"),
        ({"base_url": "http://x"}, "api_key"),
        ({"base_url": "http://x", "api_key": "k", "timeout_seconds": 0}, "timeout_seconds"),
        ({"base_url": "http://x", "api_key": "k", "timeout_seconds": True}, "timeout_seconds"),
        ({"base_url": "http://x", "api_key": "k", "colour": "red"}, "colour"),
    ],
)
def test_bad_config_is_named(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RestConfig.parse(config)


def test_config_defaults() -> None:
    parsed = RestConfig.parse({"base_url": "https://oa.example.com/", "api_key": "k"})
    assert (parsed.base_url, parsed.timeout_seconds) == ("https://oa.example.com", 5.0)


async def test_oa_request_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok_results(request)

    async with client(handler) as http:
        results = await GenericOAConnector(CONFIG, http).deliver([todo(1), todo(2)])
    assert [r.ok for r in results] == [True, True]
    (request,) = seen
    assert str(request.url) == "http://peer.test/api/todos:batch"
    assert request.headers["authorization"] == "Bearer secret"
    assert request.headers["content-type"] == "application/json"
    assert request.extensions["timeout"]["read"] == 2.5
    assert json.loads(request.content) == {
        "items": [
            {"op": "create", "task_id": "T1", "idempotency_key": "todo:T1:create"},
            {"op": "create", "task_id": "T2", "idempotency_key": "todo:T2:create"},
        ]
    }


async def test_oa_status_writeback_path() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return ok_results(request)

    async with client(handler) as http:
        await GenericOAConnector(CONFIG, http).deliver([todo(1, "status.writeback")])
    assert paths == ["/api/status:batch"]


async def test_oa_item_results_map_in_order() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "results": [
                    {"idempotency_key": "todo:T1:create", "status": "ok"},
                    {"idempotency_key": "todo:T2:create", "status": "duplicate"},
                    {"idempotency_key": "todo:T3:create", "status": "error", "error": "no user"},
                    {"idempotency_key": "todo:T4:create", "status": "weird"},
                ]
            },
        )

    async with client(handler) as http:
        results = await GenericOAConnector(CONFIG, http).deliver([todo(n) for n in (1, 2, 3, 4)])
    assert [r.response.get("status") for r in results[:2]] == ["ok", "duplicate"]
    assert classes(results) == [None, None, ErrorClass.PERMANENT, ErrorClass.PERMANENT]
    assert results[2].error is not None and "no user" in results[2].error.reason


async def test_oa_reordered_or_missing_results_match_by_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "results": [
                    {"idempotency_key": "todo:T2:create", "status": "duplicate"},
                    {"idempotency_key": "todo:T1:create", "status": "ok"},
                ]
            },
        )

    async with client(handler) as http:
        results = await GenericOAConnector(CONFIG, http).deliver([todo(1), todo(2), todo(3)])
    assert [r.response.get("status") for r in results[:2]] == ["ok", "duplicate"]
    assert classes(results)[2] is ErrorClass.PERMANENT


async def test_oa_splits_batches_at_max_batch() -> None:
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sizes.append(len(json.loads(request.content)["items"]))
        return ok_results(request)

    async with client(handler) as http:
        results = await GenericOAConnector(CONFIG, http).deliver([todo(n) for n in range(230)])
    assert sizes == [100, 100, 30]
    assert len(results) == 230 and all(r.ok for r in results)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (503, ErrorClass.TRANSIENT),
        (429, ErrorClass.RATE_LIMITED),
        (401, ErrorClass.AUTH),
        (404, ErrorClass.CONFIG),
        (400, ErrorClass.PERMANENT),
    ],
)
async def test_oa_http_errors_fail_every_message(status: int, expected: ErrorClass) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"retry-after": "3"}, text="nope")

    async with client(handler) as http:
        results = await GenericOAConnector(CONFIG, http).deliver([todo(1), todo(2)])
    assert classes(results) == [expected, expected]
    assert results[0].error is not None and results[0].error.retry_after == 3.0


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("eof"),
    ],
)
async def test_oa_network_failures_are_transient(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    async with client(handler) as http:
        results = await GenericOAConnector(CONFIG, http).deliver([todo(1), todo(2)])
    assert classes(results) == [ErrorClass.TRANSIENT, ErrorClass.TRANSIENT]


@pytest.mark.parametrize("body", [b"<html>", b'{"results": 3}', b"[]", b'{"items": []}'])
async def test_oa_malformed_answer_is_permanent(body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    async with client(handler) as http:
        results = await GenericOAConnector(CONFIG, http).deliver([todo(1)])
    assert classes(results) == [ErrorClass.PERMANENT]


async def test_oa_config_problems_are_config_errors_without_a_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    async with client(handler) as http:
        unknown = await GenericOAConnector(CONFIG, http).deliver([todo(1, "todo.explode")])
        mixed = await GenericOAConnector(CONFIG, http).deliver(
            [todo(1), todo(2, "status.writeback")]
        )
        no_url = await GenericOAConnector({"api_key": "k"}, http).deliver([todo(1)])
        empty = await GenericOAConnector(CONFIG, http).deliver([])
    assert classes(unknown) == [ErrorClass.CONFIG]
    assert classes(mixed) == [ErrorClass.CONFIG, ErrorClass.CONFIG]
    assert classes(no_url) == [ErrorClass.CONFIG]
    assert empty == []


def voucher(key: str = "voucher:CL-1:1") -> OutboundMessage:
    return OutboundMessage(1, "voucher.post", "CL-1", key, {"period": "2026-11", "entries": []})


async def test_erp_request_shape_and_success() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"erp_voucher_no": "记-0012", "erp_id": "x"})

    async with client(handler) as http:
        (result,) = await GenericERPConnector(CONFIG, http).deliver([voucher()])
    assert result.ok and result.response["erp_voucher_no"] == "记-0012"
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", "http://peer.test/api/vouchers")
    assert request.headers["idempotency-key"] == "voucher:CL-1:1"
    assert request.headers["authorization"] == "Bearer secret"
    assert request.extensions["timeout"]["connect"] == 2.5
    # the voucher, with the hub's reference the posted-lookup finds it by
    assert json.loads(request.content) == {
        "period": "2026-11",
        "entries": [],
        "reference": "voucher:CL-1:1",
    }


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(422, json={"detail": "account 9999"}), ErrorClass.PERMANENT),
        (httpx.Response(503), ErrorClass.TRANSIENT),
        (httpx.Response(401), ErrorClass.AUTH),
        (httpx.Response(201, content=b"not json"), ErrorClass.PERMANENT),
        (httpx.Response(201, json=["not", "an", "object"]), ErrorClass.PERMANENT),
    ],
)
async def test_erp_failures(answer: httpx.Response, expected: ErrorClass) -> None:
    async with client(lambda request: answer) as http:
        (result,) = await GenericERPConnector(CONFIG, http).deliver([voucher()])
    assert classes([result]) == [expected]


async def test_erp_single_and_batch_requests_and_config_errors() -> None:
    seen: list[tuple[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(":batch"):
            items = json.loads(request.content)["items"]
            keys = [item["idempotency_key"] for item in items]
            seen.append(("batch", keys))
            results = [
                {"idempotency_key": k, "status": "created", "erp_voucher_no": f"记-{i + 1:04d}"}
                if k != "bad"
                else {"idempotency_key": k, "status": "error", "code": 422, "error": "no 9999"}
                for i, k in enumerate(keys)
            ]
            return httpx.Response(200, json={"results": results})
        seen.append(("one", [request.headers["idempotency-key"]]))
        return httpx.Response(201, json={"erp_voucher_no": "记-0001"})

    async with client(handler) as http:
        erp = GenericERPConnector(CONFIG, http)
        (single,) = await erp.deliver([voucher("a")])
        batch = await erp.deliver([voucher("b"), voucher("bad"), voucher("c")])
        (wrong_action,) = await erp.deliver([todo(1)])
        (no_key,) = await GenericERPConnector({"base_url": "http://x"}, http).deliver([voucher()])
    assert seen == [("one", ["a"]), ("batch", ["b", "bad", "c"])]
    assert single.ok and [r.ok for r in batch] == [True, False, True]
    assert batch[2].response["erp_voucher_no"] == "记-0003"
    assert classes([batch[1]]) == [ErrorClass.PERMANENT]
    assert classes([wrong_action, no_key]) == [ErrorClass.CONFIG, ErrorClass.CONFIG]


async def test_erp_query_voucher() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        key = request.url.params["idempotency_key"]
        if key == "known":
            return httpx.Response(200, json={"erp_voucher_no": "记-0003"})
        if key == "boom":
            return httpx.Response(500)
        return httpx.Response(404, json={"detail": "absent"})

    async with client(handler) as http:
        erp = GenericERPConnector(CONFIG, http)
        assert await erp.query_voucher("known") == {"erp_voucher_no": "记-0003"}
        assert await erp.query_voucher("unknown") is None
        with pytest.raises(DeliveryError) as caught:
            await erp.query_voucher("boom")
    assert caught.value.error_class is ErrorClass.TRANSIENT


async def test_erp_query_voucher_network_failure() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with client(handler) as http:
        with pytest.raises(DeliveryError) as caught:
            await GenericERPConnector(CONFIG, http).query_voucher("k")
    assert caught.value.error_class is ErrorClass.TRANSIENT


async def test_aclose_leaves_the_callers_client_open() -> None:
    async with client(ok_results) as http:
        # Typed as the protocol, so mypy checks that both classes satisfy it.
        connectors: list[Connector] = [
            GenericOAConnector(CONFIG, http),
            GenericERPConnector(CONFIG, http),
        ]
        for connector in connectors:
            await connector.aclose()
        assert not http.is_closed


@pytest.mark.parametrize(
    "answer",
    [{"erp_id": "x"}, {"erp_voucher_no": ""}, {"erp_voucher_no": None}, {"erp_voucher_no": 7}],
)
async def test_an_erp_answer_without_a_voucher_number_is_an_error(answer: dict[str, Any]) -> None:
    def single(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(":batch"):
            items = json.loads(request.content)["items"]
            results = [
                {"idempotency_key": i["idempotency_key"], "status": "created", **answer}
                for i in items
            ]
            return httpx.Response(200, json={"results": results})
        return httpx.Response(201, json=answer)

    async with client(single) as http:
        erp = GenericERPConnector(CONFIG, http)
        one = await erp.deliver([voucher()])
        several = await erp.deliver([voucher("a"), voucher("b")])
    for result in [*one, *several]:
        assert result.error is not None and result.error.error_class is ErrorClass.PERMANENT
        assert "without a voucher number" in result.error.reason


async def test_erp_lookup_by_reference() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        reference = request.url.params["reference"]
        if reference == "boom":
            return httpx.Response(503, text="down")
        found = {"once": [{"erp_voucher_no": "记-0003"}], "twice": [{"erp_voucher_no": "记-1"}] * 2}
        return httpx.Response(200, json={"items": found.get(reference, [])})

    async with client(handler) as http:
        erp = GenericERPConnector(CONFIG, http)
        once, never, twice, boom = await erp.lookup(
            [voucher("once"), voucher("never"), voucher("twice"), voucher("boom")]
        )
    assert once is not None and once.ok and once.response["erp_voucher_no"] == "记-0003"
    assert never is None  # certainly not posted: send it
    assert twice is not None and twice.error is not None
    assert twice.error.error_class is ErrorClass.PERMANENT and "2 times" in twice.error.reason
    assert boom is not None and boom.error is not None
    assert boom.error.error_class is ErrorClass.TRANSIENT  # can't tell now: ask again later


@pytest.mark.parametrize(
    "failure, unknown",
    [
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("slow connect"), False),
        (httpx.ReadTimeout("no answer"), True),
        (httpx.RemoteProtocolError("server closed the connection"), True),
    ],
)
async def test_errors_after_sending_leave_the_outcome_unknown(
    failure: Exception, unknown: bool
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    async with client(handler) as http:
        (result,) = await GenericERPConnector(CONFIG, http).deliver([voucher()])
    assert result.error is not None and result.error.outcome_unknown is unknown


@pytest.mark.parametrize(
    "status, unknown",
    [(500, True), (502, True), (504, True), (503, False), (501, False), (429, False)],
)
async def test_statuses_that_leave_the_outcome_unknown(status: int, unknown: bool) -> None:
    async with client(lambda request: httpx.Response(status)) as http:
        (result,) = await GenericERPConnector(CONFIG, http).deliver([voucher()])
    assert result.error is not None and result.error.outcome_unknown is unknown


async def test_health_and_task_reports() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/ping":
            return httpx.Response(200, json={"ok": True})
        ids = json.loads(request.content)["task_ids"]
        reports = [
            {"task_id": t, "state": "approved", "approver_id": "E1", "webhook_id": f"w-{t}"}
            if t == "T1"
            else {"task_id": t, "state": "pending"}
            for t in reversed(ids)  # in any order: matched by id
        ]
        return httpx.Response(200, json={"reports": reports})

    async with client(handler) as http:
        oa = GenericOAConnector(CONFIG, http)
        assert (await oa.health()).ok
        first, second = await oa.task_reports(["T1", "T2"])
        assert (await oa.lookup([todo(1)])) == [None]  # the OA keeps every key: send again
    assert (first.task_id, first.state, first.approver_id, first.message_id) == (
        "T1",
        "approved",
        "E1",
        "w-T1",
    )
    assert (second.task_id, second.state) == ("T2", "pending")
    async with client(lambda request: httpx.Response(401)) as http:
        report = await GenericERPConnector(CONFIG, http).health()
    assert not report.ok and "401" in report.detail


async def test_health_reports_the_peers_clock_from_its_date_header() -> None:
    dated = {"date": "Tue, 01 Dec 2026 08:00:05 GMT"}
    async with client(lambda request: httpx.Response(200, headers=dated)) as http:
        report = await GenericERPConnector(CONFIG, http).health()
    assert report.ok and report.server_time == datetime(2026, 12, 1, 8, 0, 5, tzinfo=UTC)
    async with client(lambda request: httpx.Response(401, headers=dated)) as http:
        refused = await GenericOAConnector(CONFIG, http).health()
    assert not refused.ok and refused.server_time is not None
    for header in ({}, {"date": "yesterday-ish"}):
        async with client(lambda request, h=header: httpx.Response(200, headers=h)) as http:
            assert (await GenericERPConnector(CONFIG, http).health()).server_time is None
