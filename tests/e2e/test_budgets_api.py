"""Budgets over real HTTP against a hub process, on SQLite and PostgreSQL: import (CSV and
Excel, with row errors), a refused claim's problem naming the budget, the scopes, and
adjustments that a second client must approve.

The hub's clock is the machine's, so the budgets cover this year and the next in company
time: a claim lands in one of them whenever the year turns over during the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from zoneinfo import ZoneInfo

import httpx
import pytest
from e2e.helpers import HubClient, StackFactory, assert_problem, claim_body
from openpyxl import Workbook

CHECKER = ("checker", "checker-secret")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def hub(start_stack: StackFactory) -> Iterator[HubClient]:
    clients = (
        f"test-client:test-client-secret:*;{CHECKER[0]}:{CHECKER[1]}:budgets:approve,budgets:read"
    )
    with start_stack(auto_decide=False, extra_env={"FINOA_CLIENTS": clients}) as h:
        yield h


def years() -> tuple[int, int]:
    year = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).year
    return year, year + 1


def checker_token(hub: HubClient) -> str:
    response = hub.http.post(
        f"{hub.url}/api/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CHECKER[0],
            "client_secret": CHECKER[1],
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def upload(
    hub: HubClient, content: bytes, kind: str = "text/csv", token: str | None = None
) -> httpx.Response:
    headers = {**hub.auth(token), "content-type": kind}
    return hub.http.post(f"{hub.url}/api/v1/budgets/import", content=content, headers=headers)


def budgets_of(hub: HubClient, **params: str) -> list[dict[str, object]]:
    response = hub.http.get(f"{hub.url}/api/v1/budgets", params=params, headers=hub.auth())
    assert response.status_code == 200, response.text
    found: list[dict[str, object]] = response.json()
    return found


def test_budgets_need_their_scopes(hub: HubClient) -> None:
    reader = hub.token_with("claims:read")
    for method, path in (
        ("GET", "/api/v1/budgets"),
        ("GET", "/api/v1/budgets/report"),
        ("POST", "/api/v1/budgets/import"),
        ("POST", "/api/v1/budgets/requests/BR1/approve"),
    ):
        response = hub.http.request(method, hub.url + path, headers=hub.auth(reader))
        assert_problem(response, 403, field="authorization", detail_contains="budgets:")
    manager = hub.token_with("budgets:manage")
    response = hub.http.post(
        f"{hub.url}/api/v1/budgets/requests/BR1/approve", headers=hub.auth(manager)
    )
    assert_problem(response, 403, field="authorization", detail_contains="budgets:approve")


def test_a_bad_import_names_its_rows_and_imports_nothing(hub: HubClient) -> None:
    before = budgets_of(hub)
    bad = b"node_kind,node_id,period,amount\norg_unit,D02,2026,12.345\nproject,NOPE,2026-Q9,10\n"
    problem = assert_problem(upload(hub, bad), 422, field="rows[2].amount")
    assert [e["field"] for e in problem["errors"]] == [
        "rows[2].amount",
        "rows[3].node_id",
        "rows[3].period",
    ]
    assert "nothing imported" in problem["detail"]
    assert_problem(upload(hub, b"{}", "application/json"), 422, field="content-type")
    assert_problem(upload(hub, b"PK not really", XLSX), 422, field="file")
    assert budgets_of(hub) == before


def test_a_claim_above_a_block_budget_is_refused_naming_the_budget(hub: HubClient) -> None:
    this, following = years()
    rows = "".join(f"org_unit,D02,travel,{y},1000.00,block\n" for y in (this, following))
    created = upload(hub, ("node_kind,node_id,category,period,amount,mode\n" + rows).encode())
    assert created.status_code == 201, created.text
    assert created.json()["created"] == 2
    body = claim_body(amount="1000.01")  # the travel line alone is over
    with hub.writes_nothing():
        problem = assert_problem(hub.post_claim(body), 409, field="budget")
    assert problem["budget"]["node_id"] == "D02" and problem["budget"]["category"] == "travel"
    assert problem["balance_fen"] == 100_000
    assert (problem["needed_fen"], problem["shortfall_fen"]) == (100_001, 1)
    claim = hub.submit(claim_body(amount="600.00"))
    assert claim["budget_status"] == "within"
    assert hub.claim(claim["id"])["budget_status"] == "within"
    travel = [b for b in budgets_of(hub, node_id="D02") if b["category"] == "travel"]
    assert sorted(b["occupied_fen"] for b in travel) == [0, 60_000]
    report = hub.http.get(f"{hub.url}/api/v1/budgets/report", headers=hub.auth())
    assert report.status_code == 200
    assert max(r["rate"] for r in report.json() if r["node_id"] == "D02") == 0.6


def test_an_excel_import_and_an_adjustment_approved_by_another_client(hub: HubClient) -> None:
    this, _ = years()
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["node_kind", "node_id", "category", "period", "amount", "mode"])
    sheet.append(["cost_center", "CC01", "office", str(this), 2500, "warn"])
    content = BytesIO()
    book.save(content)
    created = upload(hub, content.getvalue(), XLSX)
    assert created.status_code == 201, created.text
    (budget_id,) = created.json()["budget_ids"]

    asked = hub.http.post(
        f"{hub.url}/api/v1/budgets/requests",
        json={"kind": "adjust", "budget_id": budget_id, "amount": "500.00", "reason": "追加"},
        headers=hub.auth(),
    )
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["id"]
    approve = f"{hub.url}/api/v1/budgets/requests/{request_id}/approve"
    own = hub.http.post(approve, json={"comment": "mine"}, headers=hub.auth())
    assert_problem(own, 403, field="request_id", detail_contains="cannot decide it")
    done = hub.http.post(approve, json={"comment": "ok"}, headers=hub.auth(checker_token(hub)))
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["decided_by"]) == ("approved", "client:checker")
    (adjusted,) = [b for b in budgets_of(hub) if b["id"] == budget_id]
    assert adjusted["amount_fen"] == 300_000
    ledger = hub.http.get(f"{hub.url}/api/v1/budgets/{budget_id}/movements", headers=hub.auth())
    assert ledger.status_code == 200, ledger.text
    assert [(m["kind"], m["amount_delta_fen"], m["request_id"]) for m in ledger.json()] == [
        ("allocate", 250_000, None),
        ("adjust", 50_000, request_id),
    ]
    unknown = hub.http.get(f"{hub.url}/api/v1/budgets/999999/movements", headers=hub.auth())
    assert_problem(unknown, 404, field="budget_id")
    again = hub.http.post(approve, headers=hub.auth(checker_token(hub)))
    assert_problem(again, 409, field="request_id")
    missing = hub.http.post(
        f"{hub.url}/api/v1/budgets/requests",
        json={"kind": "adjust", "budget_id": 999_999, "amount": "1", "reason": "x"},
        headers=hub.auth(),
    )
    assert_problem(missing, 404, field="budget_id")
