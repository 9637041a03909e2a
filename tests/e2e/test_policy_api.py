"""The expense policy over real HTTP against a hub process, on SQLite and PostgreSQL: the
policy file named in FINOA_POLICY_FILE, a flagged breach on the claim, a blocked one refused
as problem+json naming the line, the rule and the limit, and bad line fields.

The sample company's employees have no grade: the travel policy's default grade P3 applies,
which its rules meet with their catch-all (`*`) limits.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e.helpers import HubClient, StackFactory, assert_problem
from support.policy import TRAVEL_POLICY, dinner, lodging, trip_body


@pytest.fixture(scope="module")
def hub(start_stack: StackFactory) -> Iterator[HubClient]:
    with start_stack(auto_decide=False, extra_env={"FINOA_POLICY_FILE": str(TRAVEL_POLICY)}) as h:
        yield h


def gao_yuan(external_id: str, *lines: dict[str, Any]) -> dict[str, Any]:
    """高远 Gao Yuan of Marketing (no grade: P3) claims `lines`."""
    return trip_body(external_id, *lines, applicant_id="E0031")


def test_the_policy_in_force_is_readable_with_the_read_scope(hub: HubClient) -> None:
    reader = hub.token_with("claims:read")
    response = hub.http.get(f"{hub.url}/api/v1/policy", headers=hub.auth(reader))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == str(TRAVEL_POLICY)
    assert [v["version"] for v in body["policy"]["versions"]] == ["2026-H1", "2026-H2"]
    assert body["policy"]["city_tiers"]["tier1"] == ["上海", "北京"]
    lodging_rule = body["policy"]["versions"][1]["rules"][0]
    assert lodging_rule["limits"]["P5"]["tier1"] == "600"
    other = hub.token_with("budgets:read")
    response = hub.http.get(f"{hub.url}/api/v1/policy", headers=hub.auth(other))
    assert_problem(response, 403, field="authorization", detail_contains="claims:read")


def test_a_flagged_breach_is_accepted_and_shown_on_the_claim(hub: HubClient) -> None:
    """Gao Yuan stays 3 nights in Beijing (tier 1) for 1,500.01 元: 1 分 above 3 × 500 元."""
    claim = hub.submit(gao_yuan("PH-1", lodging("1500.01", 3, city="北京")))
    (breach,) = claim["policy_check"]["breaches"]
    assert breach["line"] == 0 and breach["rule"] == "lodging_per_night"
    assert (breach["limit_fen"], breach["amount_fen"], breach["action"]) == (
        150_000,
        150_001,
        "flag",
    )
    assert hub.claim(claim["id"])["policy_check"] == claim["policy_check"]


def test_a_blocked_breach_is_refused_naming_the_line_rule_and_limit(hub: HubClient) -> None:
    """Gao Yuan's client dinner in Shanghai is 800.01 元, 1 分 above the 800 元 a line that
    the entertainment rule blocks: 422, and nothing changes anywhere."""
    body = gao_yuan("PH-2", lodging("400.00", 1), dinner("800.01"))
    with hub.writes_nothing():
        response = hub.post_claim(body)
        problem = assert_problem(
            response, 422, field="lines[1].amount", detail_contains="entertainment_per_line"
        )
    assert "800.00 元" in problem["detail"]
    assert problem["policy"]["limit_fen"] == 80_000
    assert problem["policy"]["amount_fen"] == 80_001
    assert problem["policy"]["policy_version"] == "2026-H2"
    accepted = hub.submit(gao_yuan("PH-3", dinner("800.00")))  # exactly the limit
    assert accepted["policy_check"]["breaches"] == []


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({**lodging("300.00", 1), "nights": 0}, "lines[0].nights"),
        ({**lodging("300.00", 1), "nights": "two"}, "lines[0].nights"),
        ({**lodging("300.00", 1), "city": ""}, "lines[0].city"),
        ({**lodging("300.00", 1), "city": "市" * 65}, "lines[0].city"),
        ({**dinner("10.00"), "days": 367}, "lines[0].days"),
        (lodging("300.00", None), "lines[0].nights"),  # the rule requires nights
    ],
)
def test_bad_policy_fields_on_a_line_are_refused_by_name(
    hub: HubClient, line: dict[str, Any], field: str
) -> None:
    with hub.writes_nothing():
        response = hub.post_claim(gao_yuan("PH-BAD", line))
        assert_problem(response, 422, field=field, prefixed=False)
