"""Org structure and who approves what (审批人). Pure: works on plain records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from finoa.domain.errors import InvalidInput


class EmployeeRole(StrEnum):
    EMPLOYEE = "employee"
    FINANCE_DIRECTOR = "finance_director"  # 财务总监
    CFO = "cfo"  # 首席财务官


class ApprovalRole(StrEnum):
    MANAGER = "manager"  # 直属上级
    FINANCE_DIRECTOR = "finance_director"
    CFO = "cfo"


@dataclass(frozen=True, slots=True)
class Employee:
    employee_id: str
    name: str
    department_id: str
    manager_id: str | None
    role: EmployeeRole = EmployeeRole.EMPLOYEE
    active: bool = True
    grade: str | None = None  # 职级, e.g. P5: what the expense policy's limits depend on


def resolve_approver(
    role: ApprovalRole,
    applicant: Employee,
    employees: Mapping[str, Employee],
    holders: Mapping[EmployeeRole, str],
) -> str:
    """The employee who approves `role` for `applicant`'s claim.

    Nobody approves their own claim: when the natural approver is the applicant, the step goes
    to that person's own manager, up the chain until someone else is found.
    """
    if role is ApprovalRole.MANAGER:
        candidate = applicant.manager_id
    else:
        candidate = holders.get(EmployeeRole(role.value))
        if candidate is None:
            raise InvalidInput("approver", f"no employee holds the role {role.value}")
    seen: set[str] = set()
    while candidate is not None and candidate not in seen:
        seen.add(candidate)
        person = employees.get(candidate)
        if person is None:
            raise InvalidInput("approver", f"approver {candidate} is not a known employee")
        if person.employee_id != applicant.employee_id and person.active:
            return person.employee_id
        candidate = person.manager_id
    raise InvalidInput(
        "applicant_id", f"no approver other than {applicant.employee_id} for step {role.value}"
    )
