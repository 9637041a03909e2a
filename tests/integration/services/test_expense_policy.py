"""The expense policy at submission, through the real use cases on SQLite and PostgreSQL: a
flagged breach is stored with the claim and tells the approval process; a blocked one writes
nothing; the claim records the version it was checked against."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from support.budgets import SUBMITTED_AT, submit
from support.claims import row_counts
from support.policy import (
    CHEN_CHEN,
    TRAVEL_POLICY,
    allowance,
    dinner,
    load_graded_people,
    lodging,
    trip,
)

from finoa.config import Settings, load_settings
from finoa.domain.errors import DomainError, InvalidInput
from finoa.domain.policy import PolicyBlocked
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.queries import get_claim
from finoa.store.tables import audit_events, claim_lines, claims, outbox, workflow_instances
from finoa.workflow.serialization import load_state


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data", database_url=db_url, policy_file=str(TRAVEL_POLICY)
    )


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    """The sample company with Li Wei (P5) and Chen Chen (no grade), under the travel policy."""
    hub = Hub.create(settings)
    load_masterdata(hub.db)
    load_graded_people(hub)
    hub.db.clock = lambda: SUBMITTED_AT
    yield hub
    hub.close()


def workflow_facts(hub: Hub, claim_id: str) -> dict[str, object]:
    with hub.db.engine.connect() as conn:
        state = conn.execute(
            select(workflow_instances.c.state).where(workflow_instances.c.claim_id == claim_id)
        ).scalar_one()
    return dict(load_state(state)[0].task_tree.data)


def test_a_flagged_breach_is_accepted_shown_and_routed(hub: Hub) -> None:
    """Li Wei, grade P5, stays 3 nights in Shanghai (tier 1) at 650 元 a night and claims
    1,950 元. The limit is 600 元 a night: 1,800 元. The claim is accepted, shows the breach
    with its rule, limit and amount, and the approval process sees policy_breached."""
    result = submit(hub, trip("LW-1", lodging("1950.00", 3)))
    stored = get_claim(hub.db, result.claim_id)
    assert stored.status.value == "in_approval"
    assert stored.policy_check is not None
    assert stored.policy_check.versions == ["2026-H2"]
    (breach,) = stored.policy_check.breaches
    assert (breach.line, breach.rule, breach.limit_fen, breach.amount_fen, breach.action) == (
        0,
        "lodging_per_night",
        180_000,
        195_000,
        "flag",
    )
    assert (breach.grade, breach.tier) == ("P5", "tier1")
    assert workflow_facts(hub, result.claim_id)["policy_breached"] is True


def test_exactly_at_the_limit_is_within_and_not_routed(hub: Hub) -> None:
    """The same stay at exactly 1,800.00 元 is within: checked, no breach."""
    result = submit(hub, trip("LW-2", lodging("1800.00", 3)))
    stored = get_claim(hub.db, result.claim_id)
    assert stored.policy_check is not None
    assert [c.limit_fen for c in stored.policy_check.checks] == [180_000]
    assert stored.policy_check.breaches == []
    assert workflow_facts(hub, result.claim_id)["policy_breached"] is False


def test_a_claim_no_rule_covers_records_no_check(hub: Hub) -> None:
    """Office supplies are not in the policy: nothing to record."""
    office = {"category": "office", "amount": "99.00", "expense_date": "2026-11-10"}
    result = submit(hub, trip("LW-3", office))
    assert get_claim(hub.db, result.claim_id).policy_check is None
    assert workflow_facts(hub, result.claim_id)["policy_breached"] is False


def test_a_blocked_breach_writes_nothing(hub: Hub) -> None:
    """Li Wei's client dinner in Shanghai costs 1,000.01 元, 1 分 above the 1,000 元 a line
    that the entertainment rule blocks. The claim is refused naming the line's amount, the
    rule and the limit; no claim, line, workflow, audit event or OA message is written."""
    tables = [claims, claim_lines, workflow_instances, audit_events, outbox]
    before = row_counts(hub, tables)
    with pytest.raises(PolicyBlocked) as caught:
        submit(hub, trip("LW-4", lodging("600.00", 1), dinner("1000.01")))
    error = caught.value
    assert error.field == "lines[1].amount"
    assert "entertainment_per_line" in error.message and "1000.00 元" in error.message
    assert error.extensions["policy"]["limit_fen"] == 100_000
    assert error.extensions["policy"]["amount_fen"] == 100_001
    assert row_counts(hub, tables) == before
    within = submit(hub, trip("LW-5", dinner("1000.00")))  # exactly the limit passes
    assert get_claim(hub.db, within.claim_id).policy_check is not None


def test_the_per_diem_above_the_allowance_is_flagged(hub: Hub) -> None:
    """Li Wei's 补助 for 4 days in Hangzhou (tier 2, 100 元 a day) is 400 元; he claims 450 元."""
    result = submit(hub, trip("LW-6", allowance("450.00", 4, city="杭州")))
    check = get_claim(hub.db, result.claim_id).policy_check
    assert check is not None
    (breach,) = check.breaches
    assert (breach.rule, breach.limit_fen, breach.amount_fen) == ("per_diem", 40_000, 45_000)


def test_each_line_is_checked_against_the_version_of_its_own_date(hub: Hub) -> None:
    """A trip across the policy change: a Shanghai night at 580 元 on 30 June (2026-H1: 550)
    is over, the same rate on 1 July (2026-H2: 600) within. The claim records both versions."""
    result = submit(
        hub,
        trip(
            "LW-7", lodging("580.00", 1, day="2026-06-30"), lodging("580.00", 1, day="2026-07-01")
        ),
    )
    check = get_claim(hub.db, result.claim_id).policy_check
    assert check is not None
    assert check.versions == ["2026-H1", "2026-H2"]
    assert [(b.line, b.policy_version) for b in check.breaches] == [(0, "2026-H1")]


def test_an_employee_without_a_grade_gets_the_default_grade(hub: Hub) -> None:
    """Chen Chen has no grade: the default P3 falls to the rule's catch-all, 500 元 a night."""
    result = submit(hub, trip("CC-1", lodging("500.01", 1), applicant_id=CHEN_CHEN))
    check = get_claim(hub.db, result.claim_id).policy_check
    assert check is not None
    assert [(b.grade, b.limit_fen) for b in check.breaches] == [("P3", 50_000)]


def test_a_lodging_line_without_nights_is_refused_naming_the_field(hub: Hub) -> None:
    before = row_counts(hub, [claims])
    with pytest.raises(InvalidInput) as caught:
        submit(hub, trip("LW-8", lodging("600.00", None)))
    assert caught.value.field == "lines[0].nights"
    assert row_counts(hub, [claims]) == before


def test_a_broken_policy_file_refuses_submissions_without_writing(
    db_url: str, tmp_path: Path
) -> None:
    """The policy file named in the settings is broken: submissions are refused (503, naming
    policy_file), nothing is written."""
    broken = tmp_path / "policy.yaml"
    broken.write_text("versions: [\n", encoding="utf-8")
    settings = load_settings(data_dir=tmp_path / "d", database_url=db_url, policy_file=str(broken))
    hub = Hub.create(settings)
    try:
        load_masterdata(hub.db)
        load_graded_people(hub)
        with pytest.raises(DomainError) as caught:
            submit(hub, trip("LW-9", lodging("100.00", 1)))
        assert (caught.value.status, caught.value.field) == (503, "policy_file")
        assert row_counts(hub, [claims]) == {"claims": 0}
    finally:
        hub.close()
