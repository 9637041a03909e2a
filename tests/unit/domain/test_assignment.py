"""Who approves a step (审批人), from org data alone: roles, named users, the fallback."""

from __future__ import annotations

import pytest

from finoa.domain.errors import InvalidInput
from finoa.domain.org import (
    ApprovalRole,
    Assignment,
    Employee,
    EmployeeRole,
    OrgChart,
    assign_step,
    department_head,
)

PEOPLE = {
    e.employee_id: e
    for e in (
        Employee("E1", "王总 Wang", "D0", None),
        Employee("E2", "孙强 Sun Qiang", "D2", "E1"),
        Employee("E3", "周杰 Zhou Jie", "D2", "E2"),
        Employee("E4", "李伟 Li Wei", "D6", "E3"),
        Employee("E5", "赵敏 Zhao Min", "D1", "E1", EmployeeRole.FINANCE_DIRECTOR),
        Employee("E9", "离职 Gone", "D2", "E2", active=False),
    )
}
HOLDERS = {EmployeeRole.FINANCE_DIRECTOR: "E5"}
# South China (D6) has no head; Sales (D2) above it does; CC6 has no owner.
ORG = OrgChart(
    unit_heads={"D0": "E1", "D2": "E2", "D6": None, "D1": "E5"},
    unit_parents={"D0": None, "D2": "D0", "D6": "D2", "D1": "D0"},
    cost_center_owners={"CC2": "E2", "CC6": None},
)


def assign(role: ApprovalRole, applicant: str, **kw: object) -> Assignment:
    person = PEOPLE[applicant]
    options: dict[str, object] = {"department_id": person.department_id, **kw}
    return assign_step(role, person, PEOPLE, HOLDERS, ORG, **options)  # type: ignore[arg-type]


def test_the_department_head_is_found_up_the_tree() -> None:
    assert department_head(ORG, "D6") == "E2"
    assert assign(ApprovalRole.DEPARTMENT_HEAD, "E4") == Assignment(("E2",))
    assert department_head(OrgChart(), "D6") is None


def test_a_head_approving_their_own_claim_is_replaced_by_their_manager() -> None:
    """Sun Qiang heads Sales: his own claim's department-head step goes to Wang."""
    assert assign(ApprovalRole.DEPARTMENT_HEAD, "E2") == Assignment(("E1",))


def test_cost_center_owner_and_role_holders() -> None:
    assert assign(ApprovalRole.COST_CENTER_OWNER, "E3", cost_center_id="CC2").assignees == ("E2",)
    assert assign(ApprovalRole.FINANCE_DIRECTOR, "E3").assignees == ("E5",)
    assert assign(ApprovalRole.MANAGER, "E4").assignees == ("E3",)


def test_named_users_skip_the_applicant_and_those_who_left() -> None:
    step = assign(ApprovalRole.USERS, "E3", users=("E3", "E9", "E5", "E2", "E5"))
    assert step == Assignment(("E5", "E2"))


@pytest.mark.parametrize(
    ("role", "applicant", "options", "reason"),
    [
        (
            ApprovalRole.COST_CENTER_OWNER,
            "E3",
            {"cost_center_id": "CC6"},
            "no owner for cost center CC6",
        ),
        (ApprovalRole.COST_CENTER_OWNER, "E3", {}, "the claim names no cost center"),
        (ApprovalRole.CFO, "E3", {}, "no employee holds the role cfo"),
        (ApprovalRole.MANAGER, "E1", {}, "no direct manager for E1"),
        (ApprovalRole.USERS, "E3", {"users": ("E9",)}, "none of the step's users"),
    ],
)
def test_nobody_holds_the_role(
    role: ApprovalRole, applicant: str, options: dict[str, object], reason: str
) -> None:
    """With a fallback the step goes there, saying why; without one it is refused."""
    flagged = assign(role, applicant, fallback_approver="E5", **options)
    assert flagged.assignees == ("E5",)
    assert flagged.fallback_reason is not None and flagged.fallback_reason.startswith(reason)
    with pytest.raises(InvalidInput) as caught:
        assign(role, applicant, **options)
    assert caught.value.field == "approver" and caught.value.message.startswith(reason)


def test_the_fallback_approver_never_approves_their_own_claim() -> None:
    with pytest.raises(InvalidInput) as caught:
        assign(ApprovalRole.CFO, "E5", fallback_approver="E5")
    assert caught.value.field == "fallback_approver"
