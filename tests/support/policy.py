"""The test company's travel policy, its graded employees, and their claims."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finoa.schemas import ClaimSubmission
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata

TRAVEL_POLICY = Path(__file__).parent.parent / "fixtures" / "policy" / "travel_policy.yaml"

# 李伟 Li Wei, grade P5, and 陈晨 Chen Chen, who has no grade (the policy's default, P3), both
# of Marketing (D04, manager E0030 He Jing).
GRADED_PEOPLE: dict[str, Any] = {
    "employees": [
        {
            "id": "E0050",
            "name": "李伟 Li Wei",
            "department_id": "D04",
            "manager_id": "E0030",
            "role": "employee",
            "email": "li.wei@example.com",
            "active": True,
            "grade": "P5",
        },
        {
            "id": "E0051",
            "name": "陈晨 Chen Chen",
            "department_id": "D04",
            "manager_id": "E0030",
            "role": "employee",
            "email": "chen@example.com",
            "active": True,
        },
    ]
}
LI_WEI = "E0050"
CHEN_CHEN = "E0051"


def load_graded_people(hub: Hub) -> None:
    load_masterdata(hub.db, GRADED_PEOPLE)
    hub.masterdata.invalidate()


def trip_body(
    external_id: str, *lines: dict[str, Any], applicant_id: str = LI_WEI
) -> dict[str, Any]:
    """A claim of Marketing (D04) with `lines` as given (JSON-ready)."""
    return {
        "external_id": external_id,
        "applicant_id": applicant_id,
        "department_id": "D04",
        "title": "出差 business trip",
        "lines": list(lines),
    }


def trip(external_id: str, *lines: dict[str, Any], applicant_id: str = LI_WEI) -> ClaimSubmission:
    return ClaimSubmission.model_validate(trip_body(external_id, *lines, applicant_id=applicant_id))


def lodging(amount: str, nights: int | None, city: str = "上海", day: str = "2026-11-10") -> dict:
    line: dict[str, Any] = {
        "category": "lodging",
        "amount": amount,
        "expense_date": day,
        "city": city,
    }
    if nights is not None:
        line["nights"] = nights
    return line


def allowance(amount: str, days: int, city: str = "上海", day: str = "2026-11-10") -> dict:
    return {"category": "travel", "amount": amount, "expense_date": day, "city": city, "days": days}


def dinner(amount: str, city: str = "上海", day: str = "2026-11-10") -> dict:
    return {"category": "entertainment", "amount": amount, "expense_date": day, "city": city}
