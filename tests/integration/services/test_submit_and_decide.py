"""Use cases against a real database (SQLite and PostgreSQL): submit, route, decide, vouchers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, update
from support.claims import one_line_claim

from finoa.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from finoa.schemas import ClaimSubmission
from finoa.services.approvals import decide_task
from finoa.services.audit_trail import verify_audit_chain
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.queries import get_claim
from finoa.services.vouchers import record_voucher_posted, reverse_voucher
from finoa.store.tables import audit_events, claims, inbox, outbox, vouchers


def claim_body(
    external_id: str, amount: str = "1090.00", tax: str = "90.00", **overrides: Any
) -> ClaimSubmission:
    fields: dict[str, Any] = {"project_id": "P001", **overrides}
    if "lines" not in fields:
        fields["lines"] = [
            {
                "category": "travel",
                "amount": amount,
                "tax": tax,
                "expense_date": "2026-11-20",
                "invoice_refs": ["26312000000012345678"],
            }
        ]
    return one_line_claim(
        external_id,
        applicant_id=fields.pop("applicant_id", "E0011"),
        department_id=fields.pop("department_id", "D02"),
        category="travel",
        amount=amount,
        tax=tax,
        title="上海出差 Shanghai trip",
        **fields,
    )


def counts(hub: Hub) -> dict[str, int]:
    with hub.db.engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (claims, outbox, audit_events, inbox, vouchers)
        }


def submit(hub: Hub, external_id: str, **kw: Any) -> str:
    return submit_claim(hub, claim_body(external_id, **kw), source="test", actor="t").claim_id


def pending_task(hub: Hub, claim_id: str) -> Any:
    tasks = [t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending"]
    assert len(tasks) == 1, tasks
    return tasks[0]


def approve_all(hub: Hub, claim_id: str) -> list[str]:
    roles = []
    while get_claim(hub.db, claim_id).status == "in_approval":
        task = pending_task(hub, claim_id)
        roles.append(task.role)
        decide_task(hub, task.id, task.assignee_id, True, "同意", actor="t")
    return roles


def test_submission_opens_manager_task_and_queues_oa_messages(hub: Hub) -> None:
    claim_id = submit(hub, "OA-1")
    claim = get_claim(hub.db, claim_id)
    assert claim.status == "in_approval"
    assert claim.total_fen == 109000 and claim.tax_fen == 9000
    assert [(t.role, t.assignee_id) for t in claim.tasks] == [("manager", "E0010")]
    with hub.db.engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.action, outbox.c.payload).where(outbox.c.aggregate_id == claim_id)
        ).all()
    actions = sorted(r.action for r in rows)
    assert actions == ["status.writeback", "status.writeback", "todo.push"]
    statuses = [r.payload["status"] for r in rows if r.action == "status.writeback"]
    assert statuses == ["submitted", "in_approval"]


def test_same_message_or_business_key_twice_changes_nothing(hub: Hub) -> None:
    first = submit_claim(hub, claim_body("OA-2"), source="oa", actor="t", message_id="m-1")
    before = counts(hub)
    again = submit_claim(hub, claim_body("OA-2"), source="oa", actor="t", message_id="m-1")
    resync = submit_claim(hub, claim_body("OA-2"), source="oa", actor="t", message_id="m-2")
    plain = submit_claim(hub, claim_body("OA-2"), source="oa", actor="t")
    assert again.duplicate and resync.duplicate and plain.duplicate
    assert again.claim_id == resync.claim_id == plain.claim_id == first.claim_id
    after = counts(hub)
    # the resync's new message id is remembered; nothing else changes
    assert after == {**before, "inbox": before["inbox"] + 1}
    newer = submit_claim(hub, claim_body("OA-2", version=2), source="oa", actor="t")
    assert not newer.duplicate and newer.claim_id != first.claim_id


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"applicant_id": "E9999"}, "applicant_id"),
        ({"applicant_id": "E0099"}, "applicant_id"),
        ({"department_id": "D99"}, "department_id"),
        ({"cost_center_id": "CC99"}, "cost_center_id"),
        ({"project_id": "P999"}, "project_id"),
    ],
)
def test_unknown_master_data_is_refused_and_writes_nothing(
    hub: Hub, overrides: dict[str, str], field: str
) -> None:
    before = counts(hub)
    with pytest.raises(InvalidInput) as caught:
        submit_claim(
            hub, claim_body("OA-BAD", **overrides), source="t", actor="t", message_id="bad-1"
        )
    assert caught.value.field == field
    assert counts(hub) == before


def test_tax_not_below_amount_is_refused(hub: Hub) -> None:
    before = counts(hub)
    with pytest.raises(InvalidInput) as caught:
        submit(hub, "OA-TAX", amount="100.00", tax="100.00")
    assert caught.value.field == "lines[0].tax"
    assert counts(hub) == before


@pytest.mark.parametrize(
    ("amount", "roles"),
    [
        ("4999.99", ["manager"]),
        ("5000.00", ["manager", "finance_director"]),
        ("49999.99", ["manager", "finance_director"]),
        ("50000.00", ["manager", "finance_director", "cfo"]),
    ],
)
def test_approval_levels_follow_the_amount(hub: Hub, amount: str, roles: list[str]) -> None:
    claim_id = submit(hub, f"OA-L-{amount}", amount=amount, tax="0")
    assert approve_all(hub, claim_id) == roles
    claim = get_claim(hub.db, claim_id)
    assert claim.status == "approved"
    assignees = {t.role: t.assignee_id for t in claim.tasks}
    expected = {"manager": "E0010", "finance_director": "E0003", "cfo": "E0002"}
    assert assignees == {r: expected[r] for r in roles}


def test_nobody_approves_their_own_claim(hub: Hub) -> None:
    # The finance director's own 60,000 claim: her manager, the CFO, approves first; the FD
    # step would go up to the CFO too, who approved already, so it goes on up to the CEO
    # (one approval per person and chain); the CFO step has nobody left but the CFO.
    claim_id = submit(
        hub, "OA-FD", amount="60000.00", tax="0", applicant_id="E0003", department_id="D01"
    )
    approve_all(hub, claim_id)
    tasks = get_claim(hub.db, claim_id).tasks
    assert all(t.assignee_id != "E0003" for t in tasks)
    assert [(t.role, t.assignee_id) for t in tasks] == [
        ("manager", "E0002"),
        ("finance_director", "E0001"),
        ("cfo", "E0002"),
    ]


def test_decision_errors(hub: Hub) -> None:
    claim_id = submit(hub, "OA-D")
    task = pending_task(hub, claim_id)
    before = counts(hub)
    with pytest.raises(NotFound):
        decide_task(hub, "no-such-task", "E0010", True, None, actor="t")
    with pytest.raises(Forbidden) as forbidden:
        decide_task(hub, task.id, "E0012", True, None, actor="t")
    assert forbidden.value.field == "approver_id"
    assert counts(hub) == before
    decide_task(hub, task.id, "E0010", True, "ok", actor="t")
    after_first = counts(hub)
    with pytest.raises(Conflict) as twice:
        decide_task(hub, task.id, "E0010", False, "changed my mind", actor="t")
    assert twice.value.field == "task_id"
    assert counts(hub) == after_first


def test_duplicate_decision_message_is_ignored(hub: Hub) -> None:
    claim_id = submit(hub, "OA-DUP")
    task = pending_task(hub, claim_id)
    first = decide_task(hub, task.id, "E0010", True, "ok", actor="t", source="oa", message_id="d-1")
    before = counts(hub)
    again = decide_task(hub, task.id, "E0010", True, "ok", actor="t", source="oa", message_id="d-1")
    assert again.duplicate and again.claim_status == first.claim_status == "approved"
    assert counts(hub) == before


def test_rejection_ends_the_claim_with_the_reason(hub: Hub) -> None:
    claim_id = submit(hub, "OA-R", amount="8000.00", tax="0")
    task = pending_task(hub, claim_id)
    decide_task(hub, task.id, task.assignee_id, False, "超标准 over the policy", actor="t")
    claim = get_claim(hub.db, claim_id)
    assert claim.status == "rejected" and claim.reason == "超标准 over the policy"
    assert claim.voucher is None
    assert [t.status for t in claim.tasks] == ["rejected"]
    with hub.db.engine.connect() as conn:
        last = conn.execute(
            select(outbox.c.payload)
            .where(outbox.c.aggregate_id == claim_id, outbox.c.action == "status.writeback")
            .order_by(outbox.c.id.desc())
        ).first()
    assert last is not None
    assert last.payload["status"] == "rejected"
    assert last.payload["reason"] == "超标准 over the policy"


def test_approval_generates_a_balanced_numbered_voucher(hub: Hub) -> None:
    first = submit(hub, "OA-V1")
    second = submit(
        hub,
        "OA-V2",
        amount="300.00",
        tax="0",
        lines=[{"category": "entertainment", "amount": "300.00", "expense_date": "2026-11-21"}],
    )
    approve_all(hub, first)
    approve_all(hub, second)
    v1 = get_claim(hub.db, first).voucher
    v2 = get_claim(hub.db, second).voucher
    assert v1 is not None and v2 is not None
    assert v1.period == v2.period
    numbers = sorted([v1.voucher_no, v2.voucher_no])
    assert numbers == ["记-0001", "记-0002"]
    entries = [(e.account_code, e.debit_fen, e.credit_fen) for e in v1.entries]
    assert entries == [("6602.01", 100000, 0), ("2221.01.01", 9000, 0), ("2241", 0, 109000)]
    assert all(e.aux_employee == "E0011" and e.aux_department == "D02" for e in v1.entries)
    assert all(e.aux_project == "P001" for e in v1.entries)
    assert sum(e.debit_fen for e in v2.entries) == sum(e.credit_fen for e in v2.entries) == 30000
    assert [e.account_code for e in v2.entries] == ["6602.03", "2241"]


def test_posting_result_marks_claim_posted_and_reversal_keeps_history(hub: Hub) -> None:
    claim_id = submit(hub, "OA-P")
    approve_all(hub, claim_id)
    voucher = get_claim(hub.db, claim_id).voucher
    assert voucher is not None and voucher.status == "posting"
    with hub.db.uow("erp") as uow:
        record_voucher_posted(uow, voucher.id, {"erp_voucher_no": "记-0042", "erp_id": "x"})
        uow.commit()
    with hub.db.uow("erp") as uow:  # a replayed success changes nothing
        record_voucher_posted(uow, voucher.id, {"erp_voucher_no": "记-9999"})
        uow.commit()
    claim = get_claim(hub.db, claim_id)
    assert claim.status == "posted"
    assert claim.voucher is not None and claim.voucher.erp_voucher_no == "记-0042"
    reversal_id = reverse_voucher(hub, voucher.id, actor="finance")
    with hub.db.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(vouchers))}
    assert rows[voucher.id].status == "reversed"
    assert rows[reversal_id].reversal_of == voucher.id
    assert rows[reversal_id].total_fen == -voucher.total_fen
    with pytest.raises(Conflict):
        reverse_voucher(hub, voucher.id, actor="finance")


def test_audit_chain_verifies_and_detects_tampering(hub: Hub) -> None:
    claim_id = submit(hub, "OA-A", amount=str(Decimal("120.50")), tax="0")
    approve_all(hub, claim_id)
    report = verify_audit_chain(hub.db)
    assert report.ok and report.checked >= 6
    with hub.db.engine.begin() as conn:
        victim = conn.execute(
            select(audit_events.c.seq).where(audit_events.c.action == "task.approved")
        ).scalar_one()
        conn.execute(
            update(audit_events)
            .where(audit_events.c.seq == victim)
            .values(data={"claim_id": claim_id, "approver_id": "E0001", "comment": "forged"})
        )
    broken = verify_audit_chain(hub.db)
    assert not broken.ok
    assert broken.first_broken_seq == victim
    assert broken.checked == victim - 1
