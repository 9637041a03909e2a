"""Both generic connectors against both simulators: batching, config errors, a full round."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from finoa.connectors.base import OutboundMessage
from finoa.connectors.generic_erp.client import GenericERPConnector
from finoa.connectors.generic_oa.client import GenericOAConnector
from finoa.messaging.retry import ErrorClass, RetryPolicy

pytestmark = pytest.mark.anyio

API_KEY = "test-api-key"


def status_message(n: int, **extra: Any) -> OutboundMessage:
    payload = {"claim_id": "CL-1", "external_id": "OA-1", "status": "approved", "at": None}
    return OutboundMessage(n, "status.writeback", "CL-1", f"status:CL-1:{n}", {**payload, **extra})


def voucher_message(key: str) -> OutboundMessage:
    payload = {
        "source_ref": "finoa:CL-1",
        "voucher_word": "记",
        "hub_voucher_no": "记-0001",
        "period": "2026-11",
        "date": "2026-11-22",
        "summary": "报销",
        "currency": "CNY",
        "entries": [
            {"line": 1, "account_code": "6602.04", "debit_fen": 5_000, "credit_fen": 0},
            {"line": 2, "account_code": "2241", "debit_fen": 0, "credit_fen": 5_000},
        ],
    }
    return OutboundMessage(1, "voucher.post", "CL-1", key, payload)


async def requests_seen(http: httpx.AsyncClient, server: Any) -> int:
    count: int = (await http.get(f"{server.url}/_sim/stats")).json()["requests"]
    return count


async def test_oa_batches_are_split_at_max_batch(start_oa: Any, http: httpx.AsyncClient) -> None:
    oa = start_oa(auto_decide=False)
    client = GenericOAConnector({"base_url": oa.url, "api_key": API_KEY}, http)
    results = await client.deliver([status_message(n) for n in range(250)])
    assert [r.response["idempotency_key"] for r in results] == [
        f"status:CL-1:{n}" for n in range(250)
    ]
    assert await requests_seen(http, oa) == 3  # 100 + 100 + 50
    assert (await http.get(f"{oa.url}/_sim/stats")).json()["status_updates"] == 250


async def test_config_errors_never_reach_the_peer(
    start_oa: Any, erp: Any, http: httpx.AsyncClient
) -> None:
    oa = start_oa(auto_decide=False)
    no_key = GenericOAConnector({"base_url": oa.url}, http)
    (result,) = await no_key.deliver([status_message(1)])
    assert result.error is not None and result.error.error_class is ErrorClass.CONFIG
    assert "api_key" in result.error.reason

    unknown = OutboundMessage(1, "todo.explode", "CL-1", "k", {})
    (result,) = await GenericOAConnector({"base_url": oa.url, "api_key": API_KEY}, http).deliver(
        [unknown]
    )
    assert result.error is not None and result.error.error_class is ErrorClass.CONFIG

    erp_client = GenericERPConnector({"base_url": erp.url, "api_key": API_KEY}, http)
    (result,) = await erp_client.deliver([status_message(1)])
    assert result.error is not None and result.error.error_class is ErrorClass.CONFIG
    assert await requests_seen(http, oa) == 0
    assert await requests_seen(http, erp) == 0


async def test_oa_down_is_transient_for_every_message(
    start_oa: Any, http: httpx.AsyncClient
) -> None:
    oa = start_oa(auto_decide=False)
    oa.stop()
    client = GenericOAConnector({"base_url": oa.url, "api_key": API_KEY}, http)
    results = await client.deliver([status_message(1), status_message(2)])
    assert [r.error.error_class if r.error else None for r in results] == [ErrorClass.TRANSIENT] * 2


async def test_a_voucher_lost_in_flight_is_retried_then_written_back(
    start_oa: Any, erp: Any, http: httpx.AsyncClient
) -> None:
    """A hub-shaped round: post (answer dropped), retry per the policy, write the status back."""
    oa = start_oa(auto_decide=False)
    erp_client = GenericERPConnector(
        {"base_url": erp.url, "api_key": API_KEY, "timeout_seconds": 0.5}, http
    )
    oa_client = GenericOAConnector({"base_url": oa.url, "api_key": API_KEY}, http)
    await http.post(f"{erp.url}/_sim/faults", json={"drop_rate": 1, "count": 1})

    message = voucher_message("voucher:CL-1:1")
    policy = RetryPolicy(base_seconds=0.01, cap_seconds=0.05)
    attempts = 0
    while True:
        attempts += 1
        (result,) = await erp_client.deliver([message])
        if result.error is None:
            break
        assert policy.next_step(result.error, attempts) is not None, result.error.reason
    assert attempts == 2
    assert (await http.get(f"{erp.url}/_sim/stats")).json()["vouchers"] == 1

    posted = status_message(
        9, status="posted", voucher_no="记-0001", erp_voucher_no=result.response["erp_voucher_no"]
    )
    (written,) = await oa_client.deliver([posted])
    assert written.ok
    (history,) = (await http.get(f"{oa.url}/_sim/claims/OA-1")).json()
    assert (history["status"], history["erp_voucher_no"]) == ("posted", "记-0001")
