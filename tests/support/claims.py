"""Valid claim submissions, decisions and row counts for tests of the use cases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, select

from finoa.schemas import ClaimSubmission
from finoa.services.approvals import DecisionResult, decide_task
from finoa.services.context import Hub


def one_line_claim(
    external_id: str,
    *,
    applicant_id: str,
    department_id: str,
    category: str,
    amount: str,
    tax: str = "0",
    expense_date: str = "2026-11-10",
    title: str = "报销 expense claim",
    **overrides: Any,
) -> ClaimSubmission:
    """A claim with a single expense line; `overrides` replace top-level fields."""
    return ClaimSubmission.model_validate(
        {
            "external_id": external_id,
            "applicant_id": applicant_id,
            "department_id": department_id,
            "title": title,
            "lines": [
                {"category": category, "amount": amount, "tax": tax, "expense_date": expense_date}
            ],
            **overrides,
        }
    )


def row_counts(hub: Hub, tables: Sequence[Table]) -> dict[str, int]:
    """How many rows each table holds: to show that a refused request wrote nothing."""
    with hub.db.engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in tables
        }


def decide_by_message(
    hub: Hub, task: Any, approve: bool, comment: str | None, message_id: str, source: str = "oa"
) -> DecisionResult:
    """The task's assignee decides it through a message with an id (as the OA sends them)."""
    return decide_task(
        hub,
        task.id,
        task.assignee_id,
        approve,
        comment,
        actor="t",
        source=source,
        message_id=message_id,
    )
