"""Budgets for tests: import them from CSV text, move claims through their life, read totals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from finoa.schemas import ClaimSubmission
from finoa.services.approvals import decide_task, resubmission
from finoa.services.budgets import (
    BudgetOut,
    ImportResult,
    import_budgets,
    list_budgets,
    read_budget_file,
)
from finoa.services.claims import SubmitResult, submit_claim
from finoa.services.context import Hub
from finoa.services.queries import get_claim
from finoa.services.vouchers import record_voucher_posted, reverse_voucher
from finoa.store.tables import vouchers
from support.claims import one_line_claim

# 11:00 in Shanghai on 20 November 2026: year 2026, quarter 2026-Q4, month 2026-11
SUBMITTED_AT = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
HEADER = "node_kind,node_id,category,period,amount,mode\n"


def load_budgets(hub: Hub, rows: str, *, header: str = HEADER) -> ImportResult:
    """Import CSV rows (after `header`) as the budget manager `test:manager`."""
    parsed = read_budget_file("budgets.csv", (header + rows).encode())
    result = import_budgets(
        hub.db,
        hub.masterdata.get(),
        parsed,
        default_mode=hub.settings.budget_mode,
        actor="test:manager",
    )
    hub.budgets.invalidate()
    return result


def budget(hub: Hub, budget_id: int) -> BudgetOut:
    (found,) = [b for b in list_budgets(hub.db) if b.id == budget_id]
    return found


def meeting_claim(external_id: str, amount: str, **overrides: Any) -> ClaimSubmission:
    """高远 Gao Yuan of Marketing (D04, manager E0030) claims a meeting."""
    fields: dict[str, Any] = {
        "applicant_id": "E0031",
        "department_id": "D04",
        "category": "meeting",
        "amount": amount,
        "expense_date": "2026-11-12",
        "title": "客户会议 client meeting",
    }
    fields.update(overrides)
    return one_line_claim(external_id, **fields)


def submit(hub: Hub, submission: ClaimSubmission) -> SubmitResult:
    return submit_claim(hub, submission, source="oa", actor="oa:test")


def approve_all(hub: Hub, claim_id: str) -> str:
    """Every approver approves until the claim is decided; returns its status."""
    while True:
        claim = get_claim(hub.db, claim_id)
        pending = [t for t in claim.tasks if t.status == "pending"]
        if not pending:
            return claim.status.value
        for task in pending:
            decide_task(hub, task.id, task.assignee_id, True, "同意", actor="test")


def reject(hub: Hub, claim_id: str) -> None:
    task = next(t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending")
    decide_task(hub, task.id, task.assignee_id, False, "超标 over budget", actor="test")


def return_to_applicant(hub: Hub, claim_id: str) -> None:
    """The first open task's approver sends the claim back to its applicant (退回)."""
    task = next(t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending")
    result = decide_task(
        hub, task.id, task.assignee_id, False, "缺少发票 an invoice is missing", actor="test",
        action="return",
    )  # fmt: skip
    assert result.claim_status == "returned"


def resubmit(hub: Hub, claim_id: str) -> None:
    """The applicant resubmits a returned claim (重新提交)."""
    applicant = get_claim(hub.db, claim_id).applicant_id
    hub.db.perform(resubmission(hub, claim_id, applicant, "发票已补"), actor="test")


def voucher_of(hub: Hub, claim_id: str, *, reversal: bool = False) -> str:
    column = vouchers.c.reversal_of
    with hub.db.engine.connect() as conn:
        return str(
            conn.execute(
                select(vouchers.c.id).where(
                    vouchers.c.claim_id == claim_id,
                    column.is_not(None) if reversal else column.is_(None),
                )
            ).scalar_one()
        )


def erp_accepts(hub: Hub, voucher_id: str) -> None:
    """The ERP answered the voucher's posting: what the dispatcher's settlement records."""
    with hub.db.uow("dispatcher") as uow:
        record_voucher_posted(uow, voucher_id, {"erp_voucher_no": f"ERP-{voucher_id}"})
        uow.commit()


def post(hub: Hub, claim_id: str) -> None:
    erp_accepts(hub, voucher_of(hub, claim_id))


def reverse(hub: Hub, claim_id: str) -> None:
    """Reverse the claim's posted voucher (红冲) and have the ERP accept the reversal."""
    reversal = reverse_voucher(hub, voucher_of(hub, claim_id), actor="test")
    erp_accepts(hub, reversal)
