"""Simulator rules in-process: voucher validation, request digests, fault draws, batch bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finoa.connectors.generic_erp.simulator import (
    create_erp_app,
    load_chart,
    request_digest,
    validate_voucher,
)
from finoa.connectors.generic_oa.simulator import create_oa_app
from finoa.connectors.simulation import FaultSpec, FaultState

CHART = load_chart()
AUTH = {"authorization": "Bearer k"}


def voucher(amounts: list[int] | None = None) -> dict[str, Any]:
    amounts = amounts or [100_000]
    debits = [
        {"line": n, "account_code": "6602.02", "debit_fen": a, "credit_fen": 0}
        for n, a in enumerate(amounts, start=1)
    ]
    credit = {"line": 99, "account_code": "2241", "debit_fen": 0, "credit_fen": sum(amounts)}
    return {
        "period": "2026-11",
        "date": "2026-11-30",
        "voucher_word": "记",
        "entries": [*debits, credit],
    }


def test_chart_is_the_domain_chart() -> None:
    assert CHART["6602.01"] == "管理费用-差旅费"
    assert "1002" in CHART and "9999" not in CHART


def test_a_good_voucher_passes() -> None:
    assert validate_voucher(voucher(), CHART) == []


def test_a_red_ink_reversal_passes() -> None:
    """红字冲销: the same accounts and sides with negative amounts."""
    body = voucher()
    for entry in body["entries"]:
        entry["debit_fen"], entry["credit_fen"] = -entry["debit_fen"], -entry["credit_fen"]
    assert validate_voucher(body, CHART) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda v: v["entries"][0].update(debit_fen=100_000.0), "integer number of fen"),
        (lambda v: v["entries"][0].update(debit_fen=True), "integer number of fen"),
        (lambda v: v["entries"][0].update(debit_fen="100000"), "integer number of fen"),
        (lambda v: v["entries"][0].update(credit_fen=5), "exactly one of debit_fen"),
        (lambda v: v["entries"][0].update(debit_fen=0), "exactly one of debit_fen"),
        (lambda v: v["entries"][1].update(credit_fen=-5), "debits 100000 fen != credits -5"),
        (lambda v: v["entries"][0].update(account_code="6602.99"), "'6602.99' does not exist"),
        (lambda v: v["entries"][0].pop("account_code"), "None does not exist"),
        (lambda v: v["entries"][1].update(credit_fen=99_999), "debits 100000 fen != credits"),
        (lambda v: v.update(entries=[]), "non-empty"),
        (lambda v: v.update(entries=["x"]), "not an object"),
        (lambda v: v.update(period="2026-13"), "YYYY-MM"),
        (lambda v: v.pop("period"), "YYYY-MM"),
        (lambda v: v.update(date="2026-10-31"), "outside period"),
        (lambda v: v.update(date="31/10/2026"), "YYYY-MM-DD"),
        (lambda v: v.update(currency="rmb"), "ISO 4217"),
        (lambda v: v.update(voucher_word=""), "voucher word"),
    ],
)
def test_what_a_real_erp_refuses(mutate: Any, expected: str) -> None:
    body = voucher()
    mutate(body)
    errors = validate_voucher(body, CHART)
    assert any(expected in e for e in errors), errors


@given(st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=8))
def test_balanced_vouchers_pass(amounts: list[int]) -> None:
    assert validate_voucher(voucher(amounts), CHART) == []


@given(
    st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=8),
    st.integers(min_value=-(10**6), max_value=10**6).filter(lambda d: d != 0),
)
def test_any_imbalance_is_refused(amounts: list[int], delta: int) -> None:
    body = voucher(amounts)
    credit = body["entries"][-1]
    credit["credit_fen"] = max(1, credit["credit_fen"] + delta)
    if credit["credit_fen"] == sum(amounts):
        return
    assert any("unbalanced" in e for e in validate_voucher(body, CHART))


def test_digest_ignores_key_order_but_not_values() -> None:
    body = voucher()
    assert request_digest(body) == request_digest(dict(reversed(list(body.items()))))
    assert request_digest(body) != request_digest(voucher([100_001]))


def test_seeded_fault_draws_repeat_and_count_expires() -> None:
    def draws(state: FaultState) -> list[str | None]:
        state.set(FaultSpec(error_rate=0.3, timeout_rate=0.3, drop_rate=0.3, seed=99))
        return [state.draw()[1] for _ in range(40)]

    state = FaultState()
    first, second = draws(state), draws(state)
    assert first == second
    assert {"error", "timeout", "drop", None} <= set(first)

    state.set(FaultSpec(error_rate=1, latency_ms=250, count=2))
    assert [state.draw() for _ in range(3)] == [(0.25, "error"), (0.25, "error"), (0.0, None)]
    assert state.spec is None


def test_fault_spec_is_validated() -> None:
    with pytest.raises(ValueError):
        FaultSpec(error_rate=1.5)
    with pytest.raises(ValueError):
        FaultSpec(surprise=1)  # type: ignore[call-arg]


@pytest.mark.anyio
async def test_erp_app_in_process(tmp_path: Path) -> None:
    app = create_erp_app(tmp_path, "k")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://erp") as http:
        url = "/api/vouchers"
        not_json = await http.post(url, content=b"{", headers={**AUTH, "idempotency-key": "a"})
        assert not_json.status_code == 400
        assert not_json.headers["content-type"] == "application/problem+json"
        created = await http.post(url, json=voucher(), headers={**AUTH, "idempotency-key": "a"})
        assert (created.status_code, created.json()["erp_voucher_no"]) == (201, "记-0001")
        receipt = voucher()
        receipt["voucher_word"] = "收"
        other_word = await http.post(url, json=receipt, headers={**AUTH, "idempotency-key": "b"})
        assert other_word.json()["erp_voucher_no"] == "收-0001"
        assert (await http.get(url, headers=AUTH)).status_code == 400
        assert (await http.get(f"{url}/记-9999", headers=AUTH)).status_code == 404
        erp_id = created.json()["erp_id"]
        by_id = await http.get(f"{url}/{erp_id}", headers=AUTH)
        assert by_id.json()["erp_voucher_no"] == "记-0001"
        assert (await http.get("/_sim/faults")).json()["active"] is None
        bad_faults = await http.post("/_sim/faults", json={"error_rate": 2})
        assert bad_faults.status_code == 422
    assert (tmp_path / "erp.sqlite3").exists()


@pytest.mark.anyio
async def test_oa_app_refuses_malformed_batches(tmp_path: Path) -> None:
    app = create_oa_app(tmp_path, "k", hub_url=None, webhook_secret="s")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://oa") as http:
        url = "/api/todos:batch"
        assert (await http.post(url, json={"items": []})).status_code == 401
        assert (await http.post(url, json=[1], headers=AUTH)).status_code == 400
        assert (await http.post(url, json={"items": {}}, headers=AUTH)).status_code == 400
        big: dict[str, Any] = {"items": [{}] * 1001}
        assert (await http.post(url, json=big, headers=AUTH)).status_code == 413
        mixed = await http.post(
            url,
            json={
                "items": [
                    {"op": "create", "task_id": "T1"},
                    {"idempotency_key": "a", "op": "create", "task_id": "T1"},
                    {"idempotency_key": "b", "op": "create", "task_id": "T2", "assignee_id": "E1"},
                    {
                        "idempotency_key": "c",
                        "op": "create",
                        "task_id": "T3",
                        "assignee_id": "E1",
                        "amount_fen": 1.5,
                    },
                ]
            },
            headers=AUTH,
        )
        results = mixed.json()["results"]
        assert [r["status"] for r in results] == ["error", "error", "ok", "error"]
        assert "assignee_id" in results[1]["error"] and "amount_fen" in results[3]["error"]
        status_url = "/api/status:batch"
        no_status = await http.post(
            status_url, json={"items": [{"idempotency_key": "s", "claim_id": "CL"}]}, headers=AUTH
        )
        assert no_status.json()["results"][0]["error"] == "status is required"
        no_hub = await http.post("/_sim/claims", json={"external_id": "OA-1"})
        assert no_hub.status_code == 409


@pytest.mark.parametrize("decision_batch", [0, 101])
def test_oa_decision_batch_is_bounded(tmp_path: Path, decision_batch: int) -> None:
    with pytest.raises(ValueError, match="decision_batch"):
        create_oa_app(tmp_path, "k", None, "s", decision_batch=decision_batch)
