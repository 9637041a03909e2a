"""Valid claim submissions for tests of the use cases."""

from __future__ import annotations

from typing import Any

from finoa.schemas import ClaimSubmission


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
