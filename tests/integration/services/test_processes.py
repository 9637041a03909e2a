"""Process definitions and assignment, as stories, on SQLite and PostgreSQL: deploying
versions, running claims keeping theirs, the four document types with their vouchers, the
requisition a claim draws on, and who approves when the org chart has gaps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from support.claims import one_line_claim, row_counts

from finoa.config import Settings, load_settings
from finoa.domain.errors import InvalidInput
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.processes import deploy_process, export_process, list_processes
from finoa.services.queries import get_claim
from finoa.store.tables import (
    approval_tasks,
    audit_events,
    cost_centers,
    employees,
    org_units,
    outbox,
    process_definitions,
    voucher_entries,
    vouchers,
    workflow_instances,
)
from finoa.workflow.specs import DEFAULT_BPMN, DEFAULT_DMN

CLAIM_BPMN = DEFAULT_BPMN.read_bytes()
LEVELS_DMN = DEFAULT_DMN.read_bytes()
# The company raises the finance director's threshold from 5,000 元 to 10,000 元.
RAISED_DMN = LEVELS_DMN.replace(b"&lt; 500000</text>", b"&lt; 1000000</text>")


def claim(external_id: str, amount: str, **fields: Any) -> Any:
    """周杰 Zhou Jie of Sales (reports to 孙强 Sun Qiang, E0010) asks for `amount` of travel."""
    return one_line_claim(
        external_id,
        applicant_id=fields.pop("applicant_id", "E0011"),
        department_id=fields.pop("department_id", "D02"),
        category="travel",
        amount=amount,
        **fields,
    )


def approve_all(hub: Hub, claim_id: str) -> list[tuple[str, str]]:
    """Every pending task approved by its assignee until none is left: (role, assignee)."""
    seen: list[tuple[str, str]] = []
    while True:
        pending = [t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending"]
        if not pending:
            return seen
        for task in pending:
            seen.append((task.role, task.assignee_id))
            decide_task(hub, task.id, task.assignee_id, True, "ok", actor="test")


def test_deploying_versions_and_exporting_them(hub: Hub) -> None:
    """The controller deploys the claim process with the raised threshold: version 1. The same
    files again are version 1 still; a changed label makes version 2. Each exports as it was
    deployed, and version 0 is the one shipped with finoa."""
    files = [("claim.bpmn", CLAIM_BPMN), ("levels.dmn", RAISED_DMN)]
    first = deploy_process(hub.db, files, actor="controller")
    assert (first.process_key, first.version, first.created) == ("claim_approval", 1, True)
    again = deploy_process(hub.db, files, actor="controller")
    assert (again.version, again.created, again.spec_version) == (1, False, first.spec_version)
    relabelled = CLAIM_BPMN.replace(b"Direct manager approval", b"Line manager approval")
    second = deploy_process(hub.db, [("claim.bpmn", relabelled)], actor="controller")
    assert (second.version, second.created) == (2, True)

    assert export_process(hub.db, "claim_approval", 1)[1:] == (
        CLAIM_BPMN.decode(),
        RAISED_DMN.decode(),
    )
    # without a DMN file, version 2 took the decisions of version 1
    assert export_process(hub.db, "claim_approval") == (2, relabelled.decode(), RAISED_DMN.decode())
    assert export_process(hub.db, "claim_approval", 0)[1] == CLAIM_BPMN.decode()
    versions = [
        (p.process_key, p.version, p.latest)
        for p in list_processes(hub.db)
        if p.process_key == "claim_approval"
    ]
    assert versions == [
        ("claim_approval", 0, False),
        ("claim_approval", 1, False),
        ("claim_approval", 2, True),
    ]
    with hub.db.engine.connect() as conn:
        deployed = conn.execute(
            select(audit_events.c.actor, audit_events.c.data).where(
                audit_events.c.action == "process.deployed"
            )
        ).all()
    assert [(a, d["version"]) for a, d in deployed] == [("controller", 1), ("controller", 2)]


def test_a_refused_definition_stores_nothing(hub: Hub) -> None:
    """A definition naming an unknown role and an employee who left is refused, naming both
    tasks and their lines; no version is stored and nothing is audited."""
    edited = CLAIM_BPMN.replace(b'value="cfo"', b'value="treasurer"').replace(
        b'<camunda:property name="role" value="finance_director" />',
        b'<camunda:property name="role" value="users" />'
        b'<camunda:property name="users" value="E0099" />',
    )
    before = row_counts(hub, [process_definitions, audit_events])
    with pytest.raises(InvalidInput) as caught:
        deploy_process(hub.db, [("edited.bpmn", edited)], actor="controller")
    (problem,) = caught.value.extensions["errors"]
    assert problem["element"] == "cfo_approval" and "treasurer" in problem["problem"]
    assert caught.value.field == "edited.bpmn"
    assert row_counts(hub, [process_definitions, audit_events]) == before

    fixed = edited.replace(b'value="treasurer"', b'value="cfo"')
    with pytest.raises(InvalidInput) as caught:
        deploy_process(hub.db, [("edited.bpmn", fixed)], actor="controller")
    (problem,) = caught.value.extensions["errors"]
    assert problem["element"] == "finance_director_approval"
    assert "E0099" in problem["problem"] and problem["line"] > 0
    assert problem["message"].startswith(f"line {problem['line']}: finance_director_approval")


def test_a_running_claim_keeps_its_version_and_new_ones_take_the_latest(hub: Hub) -> None:
    """Zhou Jie claims 6,000 元 under the shipped process: his manager, then the finance
    director. While it waits, the threshold is raised to 10,000 元. His claim still goes to
    the finance director after his manager; his colleague's 6,000 元 claim, submitted after
    the deploy, needs his manager only."""
    running = submit_claim(hub, claim("PV-1", "6000.00"), source="oa", actor="t").claim_id
    deploy_process(hub.db, [("claim.bpmn", CLAIM_BPMN), ("levels.dmn", RAISED_DMN)], actor="c")
    later = submit_claim(
        hub, claim("PV-2", "6000.00", applicant_id="E0012"), source="oa", actor="t"
    ).claim_id
    assert approve_all(hub, running) == [("manager", "E0010"), ("finance_director", "E0003")]
    assert approve_all(hub, later) == [("manager", "E0010")]
    with hub.db.engine.connect() as conn:
        rows = conn.execute(
            select(workflow_instances.c.claim_id, workflow_instances.c.spec_version)
        ).all()
        versions = {r.claim_id: r.spec_version for r in rows}
        deployed = conn.execute(select(process_definitions.c.spec_version)).scalar_one()
    assert versions[later] == deployed != versions[running] == hub.engine.spec_version
    assert get_claim(hub.db, running).status.value == get_claim(hub.db, later).status.value


@pytest.fixture
def company_with_gaps(hub: Hub) -> Hub:
    """The sample company plus 华南组 South China team (D06, under Sales, no head of its own)
    with 李伟 Li Wei (E0060, reports to Zhou Jie), and cost center CC06 that has no owner."""
    with hub.db.uow("test") as uow:
        uow.conn.execute(
            insert(org_units),
            {"id": "D06", "name": "华南组 South China", "parent_id": "D02", "manager_id": None},
        )
        uow.conn.execute(
            insert(employees),
            {
                "id": "E0060",
                "name": "李伟 Li Wei",
                "department_id": "D06",
                "manager_id": "E0011",
                "role": "employee",
                "active": True,
            },
        )
        uow.conn.execute(
            insert(cost_centers), {"id": "CC06", "name": "华南成本中心", "department_id": "D06"}
        )
        uow.commit()
    hub.masterdata.invalidate()
    return hub


def test_an_advance_goes_up_to_the_first_department_with_a_head(company_with_gaps: Hub) -> None:
    """Li Wei asks for an advance (借款) of 3,000 元 for a trip. His team has no head, so after
    his manager Zhou Jie it goes to Sun Qiang, head of Sales above it; their todos say it is
    an advance. Approved, it posts Dr 1221 其他应收款 (Li Wei) / Cr 1002 银行存款."""
    hub = company_with_gaps
    advance = claim(
        "ADV-1", "3000.00", applicant_id="E0060", department_id="D06", document_type="advance"
    )
    submitted = submit_claim(hub, advance, source="oa", actor="t")
    assert submitted.claim is not None and submitted.claim.document_type == "advance"
    assert approve_all(hub, submitted.claim_id) == [
        ("manager", "E0011"),
        ("department_head", "E0010"),
    ]
    entries = voucher_lines(hub, submitted.claim_id)
    assert entries == [("1221", 300_000, 0, "E0060"), ("1002", 0, 300_000, None)]
    with hub.db.engine.connect() as conn:
        payloads = conn.execute(
            select(outbox.c.payload).where(
                outbox.c.aggregate_id == submitted.claim_id, outbox.c.action == "todo.push"
            )
        ).scalars()
        titles = {p["title"] for p in payloads if p.get("op") == "create"}
    assert titles == {f"借款审批 Advance {submitted.claim_id}: 报销 expense claim 3,000.00 CNY"}


def voucher_lines(hub: Hub, claim_id: str) -> list[tuple[str, int, int, str | None]]:
    with hub.db.engine.connect() as conn:
        voucher_id = conn.execute(
            select(vouchers.c.id).where(vouchers.c.claim_id == claim_id)
        ).scalar_one()
        rows = conn.execute(
            select(voucher_entries)
            .where(voucher_entries.c.voucher_id == voucher_id)
            .order_by(voucher_entries.c.line)
        ).all()
    return [(r.account_code, r.debit_fen, r.credit_fen, r.aux_employee) for r in rows]


@pytest.fixture
def hub_with_fallback(settings: Settings, tmp_path: Path) -> Iterator[Hub]:
    """The hub, configured so that a step nobody holds goes to 钱进 Qian Jin (E0004)."""
    configured = load_settings(
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        fallback_approver="E0004",
    )
    hub = Hub.create(configured)
    load_masterdata(hub.db)
    yield hub
    hub.close()


def test_a_role_nobody_holds_goes_to_the_fallback_approver_flagged(
    hub_with_fallback: Hub,
) -> None:
    """Sun Qiang's payment request (付款申请) of 8,000 元 is paid from cost center CC02, whose
    owner has been cleared. The cost-center owner's step is not skipped: it goes to the
    fallback approver Qian Jin, flagged on the task and in the audit log; then the finance
    director. Approved, it posts Dr 2202 应付账款 / Cr 1002 银行存款."""
    hub = hub_with_fallback
    with hub.db.uow("test") as uow:
        uow.conn.execute(
            update(cost_centers).where(cost_centers.c.id == "CC02").values(owner_id=None)
        )
        uow.commit()
    hub.masterdata.invalidate()
    request = claim("PAY-1", "8000.00", cost_center_id="CC02", document_type="payment_request")
    claim_id = submit_claim(hub, request, source="oa", actor="t").claim_id
    assert approve_all(hub, claim_id) == [
        ("department_head", "E0010"),
        ("cost_center_owner", "E0004"),
        ("finance_director", "E0003"),
    ]
    tasks = {t.role: t for t in get_claim(hub.db, claim_id).tasks}
    assert tasks["cost_center_owner"].fallback_reason == "no owner for cost center CC02"
    assert tasks["department_head"].fallback_reason is None
    with hub.db.engine.connect() as conn:
        flagged = conn.execute(
            select(audit_events.c.object_id, audit_events.c.data).where(
                audit_events.c.action == "task.fallback_assigned"
            )
        ).all()
    assert [(o, d["assignee_id"], d["role"]) for o, d in flagged] == [
        (tasks["cost_center_owner"].id, "E0004", "cost_center_owner")
    ]
    assert voucher_lines(hub, claim_id) == [
        ("2202", 800_000, 0, "E0011"),
        ("1002", 0, 800_000, None),
    ]


def test_without_a_fallback_a_role_nobody_holds_stops_the_approval(company_with_gaps: Hub) -> None:
    """Li Wei's payment request is paid from CC06, which has no owner, and no fallback
    approver is configured. When Sun Qiang approves as department head, the next step would
    have nobody: his decision is refused naming the approver, and the claim waits for him
    still -- the level is never skipped."""
    hub = company_with_gaps
    request = claim(
        "PAY-2",
        "800.00",
        applicant_id="E0060",
        department_id="D06",
        cost_center_id="CC06",
        document_type="payment_request",
    )
    claim_id = submit_claim(hub, request, source="oa", actor="t").claim_id
    (task,) = get_claim(hub.db, claim_id).tasks
    assert (task.role, task.assignee_id) == ("department_head", "E0010")
    before = row_counts(hub, [approval_tasks, audit_events, vouchers])
    with pytest.raises(InvalidInput) as caught:
        decide_task(hub, task.id, "E0010", True, "ok", actor="t")
    assert caught.value.field == "approver"
    assert "no owner for cost center CC06" in caught.value.message
    assert row_counts(hub, [approval_tasks, audit_events, vouchers]) == before
    (still,) = get_claim(hub.db, claim_id).tasks
    assert still.status == "pending"


def test_a_claim_is_checked_against_its_approved_requisition(hub: Hub) -> None:
    """Zhou Jie asks ahead (事前申请) for 3,000 元 for a trade fair. While it is in approval a
    claim drawing on it is refused; approved, it posts no voucher. A claim of 2,000 元 on it
    is accepted; a second of 1,000.01 元 is over what is left and refused naming both
    amounts; an unknown requisition is refused too."""
    requisition = claim("REQ-1", "3000.00", document_type="requisition")
    req_id = submit_claim(hub, requisition, source="oa", actor="t").claim_id

    early = claim("RC-0", "100.00", requisition_id=req_id)
    with pytest.raises(InvalidInput, match=f"requisition {req_id} is in_approval, not approved"):
        submit_claim(hub, early, source="oa", actor="t")

    assert approve_all(hub, req_id) == [("manager", "E0010")]
    assert get_claim(hub.db, req_id).status.value == "approved"
    assert get_claim(hub.db, req_id).voucher is None

    first = submit_claim(
        hub, claim("RC-1", "2000.00", requisition_id=req_id), source="oa", actor="t"
    )
    assert first.claim is not None and first.claim.requisition_id == req_id
    with pytest.raises(InvalidInput) as caught:
        submit_claim(hub, claim("RC-2", "1000.01", requisition_id=req_id), source="oa", actor="t")
    assert caught.value.field == "requisition_id"
    assert caught.value.message == (
        f"amount 1,000.01 元 is over requisition {req_id}'s approved 3,000.00 元 "
        "(2,000.00 元 drawn on it already)"
    )
    submit_claim(hub, claim("RC-3", "1000.00", requisition_id=req_id), source="oa", actor="t")
    with pytest.raises(InvalidInput, match="unknown requisition CLnothing"):
        submit_claim(hub, claim("RC-4", "1.00", requisition_id="CLnothing"), source="oa", actor="t")
