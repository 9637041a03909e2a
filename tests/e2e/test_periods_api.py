"""Accounting periods over real HTTP, on a hub whose closed_period_policy is `refuse`.

The hub runs in its own process, so its clock is the machine's: the tests close both the
current period of company time and the next one, and so hold whenever a month turns over
during the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from e2e.helpers import (
    HubClient,
    StackFactory,
    assert_problem,
    assert_still_pending,
    pending_task,
)

from finoa.domain.periods import Period, company_date


@pytest.fixture(scope="module")
def hub(start_stack: StackFactory) -> Iterator[HubClient]:
    with start_stack(auto_decide=False, extra_env={"FINOA_CLOSED_PERIOD_POLICY": "refuse"}) as h:
        yield h


def this_period() -> Period:
    return Period.of(company_date(datetime.now(UTC), ZoneInfo("Asia/Shanghai")))


def periods_of(hub: HubClient) -> dict[str, dict[str, object]]:
    response = hub.http.get(f"{hub.url}/api/v1/periods", headers=hub.auth())
    assert response.status_code == 200, response.text
    return {p["period"]: p for p in response.json()}


def change(hub: HubClient, period: str, action: str, token: str | None = None) -> dict[str, object]:
    response = hub.http.post(f"{hub.url}/api/v1/periods/{period}/{action}", headers=hub.auth(token))
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_periods_need_the_periods_manage_scope(hub: HubClient) -> None:
    reader = hub.token_with("ops:read")
    for method, path in (
        ("GET", "/api/v1/periods"),
        ("POST", "/api/v1/periods/2026-02/close"),
        ("POST", "/api/v1/periods/2026-02/open"),
    ):
        response = hub.http.request(method, hub.url + path, headers=hub.auth(reader))
        assert_problem(response, 403, field="authorization", detail_contains="periods:manage")
    manager = hub.token_with("periods:manage")
    listed = hub.http.get(f"{hub.url}/api/v1/periods", headers=hub.auth(manager))
    assert listed.status_code == 200 and isinstance(listed.json(), list)


@pytest.mark.parametrize("bad", ["2026-13", "2026-1", "Feb-2026", "2026-02-01", "0000-01"])
@pytest.mark.parametrize("action", ["close", "open"])
def test_bad_period_is_422_naming_period(hub: HubClient, bad: str, action: str) -> None:
    before = periods_of(hub)
    response = hub.http.post(f"{hub.url}/api/v1/periods/{bad}/{action}", headers=hub.auth())
    assert_problem(response, 422, field="period", kind="invalid-input")
    assert periods_of(hub) == before


def test_approval_into_a_closed_period_is_refused_until_it_reopens(hub: HubClient) -> None:
    task = pending_task(hub)
    first = this_period()
    periods = [str(first), str(first.next())]
    for period in periods:
        closed = change(hub, period, "close")
        assert (closed["period"], closed["status"]) == (period, "closed")
        assert str(closed["closed_by"]).startswith("client:")
    listed = periods_of(hub)
    assert all(listed[p]["status"] == "closed" for p in periods)
    with hub.writes_nothing():
        refused = hub.decide(task["id"], {"approver_id": "E0010", "decision": "approve"})
        problem = assert_problem(refused, 409, field="period", kind="conflict")
        assert "is closed" in problem["detail"]
    assert_still_pending(hub, task)
    for period in periods:
        assert change(hub, period, "open")["status"] == "open"
    decided = hub.decide(task["id"], {"approver_id": "E0010", "decision": "approve"})
    assert decided.status_code == 200, decided.text
    claim = hub.wait_claim(task["claim_id"], "posted")
    assert claim["voucher"]["period"] in periods
    assert claim["voucher"]["voucher_date"].startswith(claim["voucher"]["period"])
    (posted,) = hub.erp_vouchers(task["claim_id"])
    assert posted["period"] == claim["voucher"]["period"]
