"""The ERP simulator as a real server, driven through GenericERPConnector."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from finoa.connectors.base import OutboundMessage
from finoa.connectors.generic_erp.client import GenericERPConnector
from finoa.messaging.retry import DeliveryError, ErrorClass

pytestmark = pytest.mark.anyio

API_KEY = "test-api-key"
AUTH = {"authorization": f"Bearer {API_KEY}"}


def voucher(
    period: str = "2026-11",
    amount: int = 123_450,
    debit_account: str = "6602.01",
    credit_account: str = "2241",
    credit: int | None = None,
) -> dict[str, Any]:
    return {
        "source_ref": "finoa:CL-1",
        "voucher_word": "记",
        "hub_voucher_no": "记-0007",
        "period": period,
        "date": f"{period}-22",
        "summary": "差旅费报销",
        "currency": "CNY",
        "entries": [
            {
                "line": 1,
                "account_code": debit_account,
                "summary": "差旅费",
                "debit_fen": amount,
                "credit_fen": 0,
                "aux": {"department": "D01", "employee": "E0003", "project": None},
            },
            {
                "line": 2,
                "account_code": credit_account,
                "summary": "应付员工",
                "debit_fen": 0,
                "credit_fen": amount if credit is None else credit,
                "aux": {"department": None, "employee": "E0003", "project": None},
            },
        ],
    }


def message(key: str, payload: dict[str, Any]) -> OutboundMessage:
    return OutboundMessage(
        id=1, action="voucher.post", aggregate_id="CL-1", idempotency_key=key, payload=payload
    )


def connector(
    server: Any, http: httpx.AsyncClient, *, api_key: str = API_KEY, timeout: float = 5
) -> GenericERPConnector:
    config = {"base_url": server.url, "api_key": api_key, "timeout_seconds": timeout}
    return GenericERPConnector(config, http)


async def post(erp: GenericERPConnector, key: str, payload: dict[str, Any]) -> Any:
    (result,) = await erp.deliver([message(key, payload)])
    return result


async def stats(http: httpx.AsyncClient, server: Any) -> dict[str, Any]:
    response = await http.get(f"{server.url}/_sim/stats")
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


async def set_faults(http: httpx.AsyncClient, server: Any, **faults: Any) -> None:
    response = await http.post(f"{server.url}/_sim/faults", json=faults)
    assert response.status_code == 200, response.text


async def test_vouchers_are_numbered_per_period(erp: Any, http: httpx.AsyncClient) -> None:
    client = connector(erp, http)
    numbers = [
        (await post(client, key, voucher(period))).response["erp_voucher_no"]
        for key, period in [("k1", "2026-11"), ("k2", "2026-11"), ("k3", "2026-12")]
    ]
    assert numbers == ["记-0001", "记-0002", "记-0001"]

    read = await http.get(f"{erp.url}/api/vouchers/记-0002", headers=AUTH)
    assert read.status_code == 200
    assert read.json()["idempotency_key"] == "k2"
    ambiguous = await http.get(f"{erp.url}/api/vouchers/记-0001", headers=AUTH)
    assert ambiguous.status_code == 409
    by_period = await http.get(
        f"{erp.url}/api/vouchers/记-0001", params={"period": "2026-12"}, headers=AUTH
    )
    assert by_period.json()["idempotency_key"] == "k3"

    found = await client.query_voucher("k3")
    assert found is not None
    assert (found["erp_voucher_no"], found["period"]) == ("记-0001", "2026-12")
    assert found["voucher"]["entries"][0]["debit_fen"] == 123_450
    assert await client.query_voucher("never-posted") is None
    assert (await stats(http, erp))["vouchers"] == 3


async def test_repeated_key_returns_the_first_voucher(erp: Any, http: httpx.AsyncClient) -> None:
    client = connector(erp, http)
    first = await post(client, "voucher:CL-1:1", voucher())
    again = await post(client, "voucher:CL-1:1", voucher())
    assert first.ok and again.ok
    assert again.response == first.response

    raw = await http.post(
        f"{erp.url}/api/vouchers",
        json={**voucher(), "reference": "voucher:CL-1:1"},  # the connector sends its reference
        headers={**AUTH, "Idempotency-Key": "voucher:CL-1:1"},
    )
    assert raw.status_code == 200  # 201 only the first time
    assert raw.json()["erp_voucher_no"] == first.response["erp_voucher_no"]
    counts = await stats(http, erp)
    assert (counts["vouchers"], counts["duplicates"]) == (1, 2)


async def test_key_order_does_not_make_a_different_body(erp: Any, http: httpx.AsyncClient) -> None:
    client = connector(erp, http)
    payload = voucher()
    reordered = dict(reversed(list(payload.items())))
    first, again = await post(client, "k", payload), await post(client, "k", reordered)
    assert again.ok and again.response == first.response


async def test_same_key_different_body_is_permanent(erp: Any, http: httpx.AsyncClient) -> None:
    client = connector(erp, http)
    assert (await post(client, "k", voucher(amount=100))).ok
    result = await post(client, "k", voucher(amount=200))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.PERMANENT
    assert "HTTP 422" in result.error.reason
    assert "different voucher" in result.error.reason
    assert (await stats(http, erp))["vouchers"] == 1


async def test_unbalanced_voucher_is_refused(erp: Any, http: httpx.AsyncClient) -> None:
    result = await post(connector(erp, http), "k", voucher(amount=100, credit=99))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.PERMANENT
    assert "debits 100 fen != credits 99 fen" in result.error.reason
    assert (await stats(http, erp))["vouchers"] == 0


async def test_unknown_account_is_refused_by_name(erp: Any, http: httpx.AsyncClient) -> None:
    result = await post(connector(erp, http), "k", voucher(debit_account="6602.99"))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.PERMANENT
    assert "HTTP 422" in result.error.reason
    assert "'6602.99' does not exist" in result.error.reason


async def test_missing_idempotency_key_is_400(erp: Any, http: httpx.AsyncClient) -> None:
    response = await http.post(f"{erp.url}/api/vouchers", json=voucher(), headers=AUTH)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]


async def test_wrong_api_key_is_auth(erp: Any, http: httpx.AsyncClient) -> None:
    client = connector(erp, http, api_key="wrong")
    result = await post(client, "k", voucher())
    assert result.error is not None
    assert result.error.error_class is ErrorClass.AUTH
    with pytest.raises(DeliveryError) as caught:
        await client.query_voucher("k")
    assert caught.value.error_class is ErrorClass.AUTH
    response = await http.get(f"{erp.url}/api/vouchers", params={"idempotency_key": "k"})
    assert response.status_code == 401
    assert response.json()["title"] == "Unauthorized"
    assert (await stats(http, erp))["vouchers"] == 0


async def test_injected_503_is_transient_and_does_no_work(
    erp: Any, http: httpx.AsyncClient
) -> None:
    client = connector(erp, http)
    await set_faults(http, erp, error_rate=1, error_status=503, count=2)
    for _ in range(2):
        result = await post(client, "k", voucher())
        assert result.error is not None
        assert result.error.error_class is ErrorClass.TRANSIENT
        assert result.error.retry_after == 1.0
    assert (await stats(http, erp))["vouchers"] == 0
    assert (await post(client, "k", voucher())).ok  # count exhausted: faults are gone
    counts = await stats(http, erp)
    assert (counts["vouchers"], counts["requests"]) == (1, 3)
    assert counts["faults"]["injected"]["errors"] == 2


async def test_injected_429_is_rate_limited(erp: Any, http: httpx.AsyncClient) -> None:
    await set_faults(http, erp, error_rate=1, error_status=429)
    result = await post(connector(erp, http), "k", voucher())
    assert result.error is not None
    assert result.error.error_class is ErrorClass.RATE_LIMITED
    assert (await http.delete(f"{erp.url}/_sim/faults")).status_code == 200
    assert (await post(connector(erp, http), "k", voucher())).ok


async def test_drop_commits_then_the_client_times_out(erp: Any, http: httpx.AsyncClient) -> None:
    client = connector(erp, http, timeout=0.5)
    await set_faults(http, erp, drop_rate=1, count=1)
    lost = await post(client, "voucher:CL-9:1", voucher())
    assert lost.error is not None
    assert lost.error.error_class is ErrorClass.TRANSIENT
    assert "Timeout" in lost.error.reason

    listed = (await http.get(f"{erp.url}/_sim/vouchers")).json()
    assert [v["idempotency_key"] for v in listed] == ["voucher:CL-9:1"]  # the work was committed

    retried = await post(client, "voucher:CL-9:1", voucher())
    assert retried.ok
    assert retried.response["erp_voucher_no"] == listed[0]["erp_voucher_no"] == "记-0001"
    counts = await stats(http, erp)
    assert (counts["vouchers"], counts["duplicates"]) == (1, 1)


async def test_timeout_hangs_without_doing_work(erp: Any, http: httpx.AsyncClient) -> None:
    client = connector(erp, http, timeout=0.5)
    await set_faults(http, erp, timeout_rate=1, count=1)
    result = await post(client, "k", voucher())
    assert result.error is not None
    assert result.error.error_class is ErrorClass.TRANSIENT
    assert (await stats(http, erp))["vouchers"] == 0
    assert (await post(client, "k", voucher())).response["erp_voucher_no"] == "记-0001"


async def test_latency_delays_the_answer(erp: Any, http: httpx.AsyncClient) -> None:
    await set_faults(http, erp, latency_ms=300, count=1)
    started = time.monotonic()
    assert (await post(connector(erp, http), "k", voucher())).ok
    assert time.monotonic() - started >= 0.3


async def test_seeded_faults_repeat_exactly(erp: Any, http: httpx.AsyncClient) -> None:
    async def outcomes() -> list[int]:
        await set_faults(http, erp, error_rate=0.5, seed=1234)
        url = f"{erp.url}/api/vouchers"
        codes = [
            (await http.get(url, params={"idempotency_key": "x"}, headers=AUTH)).status_code
            for _ in range(16)
        ]
        return codes

    first, second = await outcomes(), await outcomes()
    assert first == second
    assert set(first) == {404, 503}


async def test_concurrent_identical_posts_make_one_voucher(
    erp: Any, http: httpx.AsyncClient
) -> None:
    client = connector(erp, http)
    results = await asyncio.gather(*(post(client, "same", voucher()) for _ in range(25)))
    assert all(r.ok for r in results)
    assert {r.response["erp_voucher_no"] for r in results} == {"记-0001"}
    counts = await stats(http, erp)
    assert (counts["vouchers"], counts["duplicates"]) == (1, 24)


async def test_concurrent_posts_get_consecutive_numbers(erp: Any, http: httpx.AsyncClient) -> None:
    client = connector(erp, http)
    results = await asyncio.gather(*(post(client, f"k{i}", voucher()) for i in range(30)))
    numbers = sorted(r.response["erp_voucher_no"] for r in results)
    assert numbers == [f"记-{n:04d}" for n in range(1, 31)]


async def test_vouchers_survive_a_restart(start_erp: Any, http: httpx.AsyncClient) -> None:
    first = start_erp()
    posted = await post(connector(first, http), "k1", voucher())
    first.stop()
    second = start_erp(data_dir=first.data_dir)
    client = connector(second, http)
    assert (await post(client, "k1", voucher())).response == posted.response
    assert (await post(client, "k2", voucher())).response["erp_voucher_no"] == "记-0002"


async def test_server_down_is_transient(start_erp: Any, http: httpx.AsyncClient) -> None:
    server = start_erp()
    server.stop()
    result = await post(connector(server, http), "k", voucher())
    assert result.error is not None
    assert result.error.error_class is ErrorClass.TRANSIENT
    assert "ConnectError" in result.error.reason


async def test_batch_posts_each_voucher_once_with_its_own_result(
    start_erp: Any, http: httpx.AsyncClient
) -> None:
    server = start_erp()
    erp = connector(server, http)
    first = await post(erp, "B-1", voucher())
    assert first.ok
    batch = [
        message("B-1", voucher()),  # already posted: the first result again
        message("B-2", voucher(amount=5_000)),
        message("B-3", voucher(debit_account="9999")),  # unknown account
        message("B-4", voucher(amount=7_000)),
    ]
    results = await erp.deliver(batch)
    assert [r.ok for r in results] == [True, True, False, True]
    assert results[0].response["erp_voucher_no"] == first.response["erp_voucher_no"]
    assert results[0].response["status"] == "duplicate"
    assert results[1].response["status"] == "created"
    error = results[2].error
    assert error is not None and error.error_class is ErrorClass.PERMANENT
    assert "9999" in error.reason
    again = await erp.deliver(batch)
    assert [r.response.get("status") for r in again if r.ok] == ["duplicate"] * 3
    assert [r.response["erp_voucher_no"] for r in again if r.ok] == [
        results[i].response["erp_voucher_no"] for i in (0, 1, 3)
    ]
    stats = httpx.get(f"{server.url}/_sim/stats").json()
    assert stats["vouchers"] == 3


# -- base data: GET /api/base-data and the check before posting ---------------------------------


def checking(server: Any, http: httpx.AsyncClient) -> GenericERPConnector:
    config = {"base_url": server.url, "api_key": API_KEY, "check_base_data": True}
    return GenericERPConnector(config, http)


async def test_the_simulator_reports_its_chart(erp: Any, http: httpx.AsyncClient) -> None:
    base = await checking(erp, http).base_data()
    assert base.accounts["6602.01"].kind == "expense" and base.accounts["6602.01"].postable
    assert base.accounts["2241"].kind == "payable"
    assert base.periods is None and dict(base.dimensions) == {}  # not kept: not checked


async def test_a_closed_account_is_refused_before_sending(
    erp: Any, http: httpx.AsyncClient
) -> None:
    response = await http.post(f"{erp.url}/_sim/accounts/closed", json={"codes": ["6602.03"]})
    response.raise_for_status()
    client = checking(erp, http)
    ok, refused = await client.deliver(
        [message("k-ok", voucher()), message("k-bad", voucher(debit_account="6602.03"))]
    )
    assert ok.ok, ok.error
    assert refused.error is not None and refused.error.error_class == "permanent"
    assert "entries[0].account_code" in refused.error.reason
    assert "account 6602.03 takes no postings" in refused.error.reason
    figures = await stats(http, erp)
    assert figures["vouchers"] == 1 and figures["rejected"] == 0  # the ERP never saw it
    # without the check the ERP itself refuses it
    plain = GenericERPConnector({"base_url": erp.url, "api_key": API_KEY}, http)
    (result,) = await plain.deliver([message("k-bad-2", voucher(debit_account="6602.03"))])
    assert result.error is not None and (await stats(http, erp))["rejected"] == 1
