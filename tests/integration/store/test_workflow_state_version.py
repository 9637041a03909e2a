"""Workflow rows keep their state's format version; rows of the previous release still work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import create_engine, select, update
from support.claims import one_line_claim

from finoa.config import Settings
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.queries import get_claim
from finoa.store.db import alembic_config, upgrade
from finoa.store.tables import approval_tasks, workflow_instances
from finoa.workflow import STATE_FORMAT_VERSION

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "workflow_states_fe7b504.json"
SAVED: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))


def submit_large_claim(hub: Hub) -> str:
    """A 60,000 yuan claim: manager, finance director and CFO approve it."""
    body = one_line_claim(
        "OA-FMT-1",
        applicant_id="E0011",
        department_id="D02",
        category="travel",
        amount="60000.00",
        project_id="P001",
    )
    return submit_claim(hub, body, source="test", actor="t").claim_id


def workflow_row(url: str, claim_id: str) -> Any:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return conn.execute(
                select(workflow_instances).where(workflow_instances.c.claim_id == claim_id)
            ).one()
    finally:
        engine.dispose()


def test_new_rows_record_the_current_format(hub: Hub, db_url: str) -> None:
    claim_id = submit_large_claim(hub)
    row = workflow_row(db_url, claim_id)
    assert row.state_format_version == STATE_FORMAT_VERSION
    assert json.loads(row.state)["format"] == f"finoa.workflow/{STATE_FORMAT_VERSION}"


def test_rows_from_before_the_migration_are_format_1(settings: Settings, db_url: str) -> None:
    hub = Hub.create(settings)
    try:
        load_masterdata(hub.db)
        claim_id = submit_large_claim(hub)
    finally:
        hub.close()
    command.downgrade(alembic_config(db_url), "0005")
    upgrade(db_url)
    assert workflow_row(db_url, claim_id).state_format_version == 1


def test_a_claim_saved_by_the_previous_release_is_approved_to_the_voucher(hub: Hub) -> None:
    claim_id = submit_large_claim(hub)
    (manager_task,) = [t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending"]
    saved = SAVED["states"][0]
    assert saved["pending_step"] == "manager_approval"
    # The row and its task as the previous release left them.
    with hub.db.engine.begin() as conn:
        conn.execute(
            update(workflow_instances)
            .where(workflow_instances.c.claim_id == claim_id)
            .values(state=saved["state"], state_format_version=1)
        )
        conn.execute(
            update(approval_tasks)
            .where(approval_tasks.c.id == manager_task.id)
            .values(id=saved["pending_step_id"], step_id=None, round=None)  # before 0018
        )

    roles: list[str] = []
    while get_claim(hub.db, claim_id).status == "in_approval":
        (task,) = [t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending"]
        roles.append(task.role)
        decide_task(hub, task.id, task.assignee_id, True, "同意", actor="t")

    claim = get_claim(hub.db, claim_id)
    assert roles == ["manager", "finance_director", "cfo"]
    assert claim.status == "approved"
    assert claim.voucher is not None
    # the saved instance went on: the finance director's step already in it became the task
    task_ids = {t.role: t.id for t in claim.tasks}
    assert task_ids["manager"] == saved["pending_step_id"]
    assert task_ids["finance_director"] == SAVED["states"][1]["pending_step_id"]
    with hub.db.engine.connect() as conn:
        row = conn.execute(
            select(workflow_instances).where(workflow_instances.c.claim_id == claim_id)
        ).one()
    assert row.state_format_version == STATE_FORMAT_VERSION
    assert json.loads(row.state)["format"] == f"finoa.workflow/{STATE_FORMAT_VERSION}"
