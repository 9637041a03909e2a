"""Tests for finoa.domain.org.resolve_approver."""

from __future__ import annotations

import pytest

from finoa.domain.errors import InvalidInput
from finoa.domain.org import ApprovalRole, Employee, EmployeeRole, resolve_approver

# CEO <- CFO <- FD <- MGR <- STAFF ; MGR <- STAFF2
CEO = Employee("ceo", "总经理", "D0", None)
CFO = Employee("cfo", "首席财务官", "D1", "ceo", EmployeeRole.CFO)
FD = Employee("fd", "财务总监", "D1", "cfo", EmployeeRole.FINANCE_DIRECTOR)
MGR = Employee("mgr", "经理", "D2", "fd")
STAFF = Employee("staff", "员工", "D2", "mgr")
STAFF2 = Employee("staff2", "员工二", "D2", "mgr")
HOLDERS = {EmployeeRole.FINANCE_DIRECTOR: "fd", EmployeeRole.CFO: "cfo"}


def org(*people: Employee) -> dict[str, Employee]:
    base = {e.employee_id: e for e in (CEO, CFO, FD, MGR, STAFF, STAFF2)}
    base.update({e.employee_id: e for e in people})
    return base


def test_manager_is_the_applicants_manager() -> None:
    assert resolve_approver(ApprovalRole.MANAGER, STAFF, org(), HOLDERS) == "mgr"
    assert resolve_approver(ApprovalRole.MANAGER, MGR, org(), HOLDERS) == "fd"


def test_finance_director_and_cfo_come_from_holders() -> None:
    assert resolve_approver(ApprovalRole.FINANCE_DIRECTOR, STAFF, org(), HOLDERS) == "fd"
    assert resolve_approver(ApprovalRole.CFO, STAFF, org(), HOLDERS) == "cfo"


def test_holders_map_decides_not_the_employee_role_field() -> None:
    holders = {EmployeeRole.FINANCE_DIRECTOR: "staff2", EmployeeRole.CFO: "cfo"}
    assert resolve_approver(ApprovalRole.FINANCE_DIRECTOR, STAFF, org(), holders) == "staff2"


def test_role_holder_applying_goes_to_their_manager() -> None:
    assert resolve_approver(ApprovalRole.FINANCE_DIRECTOR, FD, org(), HOLDERS) == "cfo"
    assert resolve_approver(ApprovalRole.CFO, CFO, org(), HOLDERS) == "ceo"


def test_employee_listed_as_own_manager_has_no_other_approver() -> None:
    # a data error: self is skipped, the chain loops back to self, so nobody is eligible
    loop = Employee("loop", "自环", "D2", "loop")
    with pytest.raises(InvalidInput) as info:
        resolve_approver(ApprovalRole.MANAGER, loop, org(loop), HOLDERS)
    assert info.value.field == "applicant_id"


def test_inactive_approver_is_skipped_to_their_manager() -> None:
    gone = Employee("mgr", "经理", "D2", "fd", active=False)
    assert resolve_approver(ApprovalRole.MANAGER, STAFF, org(gone), HOLDERS) == "fd"


def test_inactive_role_holder_is_skipped_to_their_manager() -> None:
    gone = Employee("fd", "财务总监", "D1", "cfo", EmployeeRole.FINANCE_DIRECTOR, active=False)
    assert resolve_approver(ApprovalRole.FINANCE_DIRECTOR, STAFF, org(gone), HOLDERS) == "cfo"


def test_several_inactive_and_self_are_all_skipped() -> None:
    mgr = Employee("mgr", "经理", "D2", "fd", active=False)
    fd = Employee("fd", "财务总监", "D1", "cfo", EmployeeRole.FINANCE_DIRECTOR, active=False)
    # applicant is the CFO; the chain from MGR goes mgr (inactive) -> fd (inactive) -> cfo (self)
    applicant = Employee("cfo", "首席财务官", "D1", "mgr", EmployeeRole.CFO)
    cfo_reporting_to_ceo = Employee("cfo", "首席财务官", "D1", "ceo", EmployeeRole.CFO)
    people = org(mgr, fd, cfo_reporting_to_ceo)
    assert resolve_approver(ApprovalRole.MANAGER, applicant, people, HOLDERS) == "ceo"


def test_no_manager_means_no_eligible_approver() -> None:
    with pytest.raises(InvalidInput) as info:
        resolve_approver(ApprovalRole.MANAGER, CEO, org(), HOLDERS)
    assert info.value.field == "applicant_id"
    assert "ceo" in info.value.message


def test_top_of_chain_role_holder_has_no_eligible_approver() -> None:
    boss = Employee("cfo", "首席财务官", "D1", None, EmployeeRole.CFO)
    with pytest.raises(InvalidInput) as info:
        resolve_approver(ApprovalRole.CFO, boss, org(boss), HOLDERS)
    assert info.value.field == "applicant_id"


def test_chain_of_only_inactive_people_has_no_eligible_approver() -> None:
    people = org(
        Employee("mgr", "经理", "D2", "fd", active=False),
        Employee("fd", "财务总监", "D1", None, active=False),
    )
    with pytest.raises(InvalidInput) as info:
        resolve_approver(ApprovalRole.MANAGER, STAFF, people, HOLDERS)
    assert info.value.field == "applicant_id"


def test_management_cycle_terminates() -> None:
    a = Employee("a", "A", "D", "b")
    b = Employee("b", "B", "D", "a", active=False)
    with pytest.raises(InvalidInput) as info:
        resolve_approver(ApprovalRole.MANAGER, a, {"a": a, "b": b}, HOLDERS)
    assert info.value.field == "applicant_id"


def test_role_without_holder_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as info:
        resolve_approver(ApprovalRole.CFO, STAFF, org(), {EmployeeRole.FINANCE_DIRECTOR: "fd"})
    assert info.value.field == "approver"
    assert "cfo" in info.value.message


def test_unknown_role_holder_is_invalid_input() -> None:
    holders = {EmployeeRole.FINANCE_DIRECTOR: "ghost", EmployeeRole.CFO: "cfo"}
    with pytest.raises(InvalidInput) as info:
        resolve_approver(ApprovalRole.FINANCE_DIRECTOR, STAFF, org(), holders)
    assert info.value.field == "approver"
    assert "ghost" in info.value.message


def test_unknown_manager_is_invalid_input() -> None:
    orphan = Employee("orphan", "孤儿", "D2", "ghost")
    with pytest.raises(InvalidInput) as info:
        resolve_approver(ApprovalRole.MANAGER, orphan, org(orphan), HOLDERS)
    assert info.value.field == "approver"
    assert "ghost" in info.value.message
