"""Org structure and who approves what (审批人). Pure: works on plain records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from finoa.domain.errors import InvalidInput


class EmployeeRole(StrEnum):
    EMPLOYEE = "employee"
    FINANCE_DIRECTOR = "finance_director"  # 财务总监
    CFO = "cfo"  # 首席财务官


class ApprovalRole(StrEnum):
    MANAGER = "manager"  # 直属上级
    DEPARTMENT_HEAD = "department_head"  # 部门负责人: the first unit up the tree with a head
    COST_CENTER_OWNER = "cost_center_owner"  # 成本中心负责人
    FINANCE_DIRECTOR = "finance_director"
    CFO = "cfo"
    USERS = "users"  # 指定人员: the people the step names


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


@dataclass(frozen=True, slots=True)
class OrgChart:
    """Who heads what: org unit heads (负责人) up the tree, cost-center owners."""

    unit_heads: Mapping[str, str | None] = field(default_factory=dict)  # unit -> head
    unit_parents: Mapping[str, str | None] = field(default_factory=dict)  # unit -> parent
    cost_center_owners: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assignment:
    """The people a step goes to; `fallback_reason` says why the fallback approver got it."""

    assignees: tuple[str, ...]
    fallback_reason: str | None = None


def department_head(org: OrgChart, unit_id: str) -> str | None:
    """The head of `unit_id`, or of the first unit above it that has one."""
    seen: set[str] = set()
    unit: str | None = unit_id
    while unit is not None and unit not in seen:
        seen.add(unit)
        head = org.unit_heads.get(unit)
        if head:
            return head
        unit = org.unit_parents.get(unit)
    return None


def _holder(
    role: ApprovalRole,
    applicant: Employee,
    holders: Mapping[EmployeeRole, str],
    org: OrgChart,
    department_id: str,
    cost_center_id: str | None,
) -> tuple[str | None, str]:
    """The natural holder of `role` for this claim (None: nobody) and what was looked for."""
    if role is ApprovalRole.MANAGER:
        return applicant.manager_id, f"no direct manager for {applicant.employee_id}"
    if role is ApprovalRole.DEPARTMENT_HEAD:
        return department_head(org, department_id), (
            f"no department head for {department_id} or any unit above it"
        )
    if role is ApprovalRole.COST_CENTER_OWNER:
        if not cost_center_id:
            return None, "the claim names no cost center, so no cost-center owner"
        return org.cost_center_owners.get(cost_center_id), (
            f"no owner for cost center {cost_center_id}"
        )
    return holders.get(EmployeeRole(role.value)), f"no employee holds the role {role.value}"


def assign_step(
    role: ApprovalRole,
    applicant: Employee,
    employees: Mapping[str, Employee],
    holders: Mapping[EmployeeRole, str],
    org: OrgChart,
    *,
    department_id: str,
    cost_center_id: str | None = None,
    users: Sequence[str] = (),
    fallback_approver: str | None = None,
) -> Assignment:
    """Who decides a step of `role` for `applicant`'s claim.

    A role is resolved from org data; a ``users`` step goes to the people it names (minus the
    applicant and those who left). When nobody holds the role, the step goes to
    `fallback_approver` with the reason -- it is never skipped; without a fallback the claim
    is refused naming the role.
    """
    if role is ApprovalRole.USERS:
        people = tuple(
            u
            for u in dict.fromkeys(users)
            if u != applicant.employee_id and u in employees and employees[u].active
        )
        if people:
            return Assignment(people)
        reason = f"none of the step's users {list(users)} can decide it"
    else:
        candidate, reason = _holder(role, applicant, holders, org, department_id, cost_center_id)
        if candidate is not None:
            return Assignment((_not_self(candidate, applicant, employees, role),))
    if fallback_approver:
        if fallback_approver not in employees or fallback_approver == applicant.employee_id:
            raise InvalidInput(
                "fallback_approver",
                f"{reason}, and the fallback approver {fallback_approver} cannot decide it",
            )
        return Assignment((fallback_approver,), fallback_reason=reason)
    raise InvalidInput("approver", f"{reason}; configure fallback_approver")


def _not_self(
    candidate: str, applicant: Employee, employees: Mapping[str, Employee], role: ApprovalRole
) -> str:
    seen: set[str] = set()
    current: str | None = candidate
    while current is not None and current not in seen:
        seen.add(current)
        person = employees.get(current)
        if person is None:
            raise InvalidInput("approver", f"approver {current} is not a known employee")
        if person.employee_id != applicant.employee_id and person.active:
            return person.employee_id
        current = person.manager_id
    raise InvalidInput(
        "applicant_id", f"no approver other than {applicant.employee_id} for step {role.value}"
    )
