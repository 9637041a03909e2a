"""Submitting expense claims (提交报销单): validate, record, start approval, tell the OA."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from finoa.domain.claim import ClaimLine, ClaimStatus, check_lines
from finoa.domain.errors import InvalidInput
from finoa.domain.money import yuan_to_fen
from finoa.messaging import inbox
from finoa.messaging.outbox import claim_ref, write_back_status
from finoa.schemas import ClaimOut, ClaimSubmission
from finoa.services.approvals import open_tasks
from finoa.services.context import Hub
from finoa.services.directory import MasterDataSnapshot
from finoa.store import repositories as repo
from finoa.store.prepared import Prepared
from finoa.store.tables import attachments, claim_lines, claims, workflow_instances
from finoa.store.uow import UnitOfWork

RACE_RETRIES = 5
INSERT_CLAIM = Prepared(insert(claims))
INSERT_LINES = Prepared(insert(claim_lines))
INSERT_ATTACHMENTS = Prepared(insert(attachments))
INSERT_WORKFLOW = Prepared(insert(workflow_instances))


@dataclass(frozen=True)
class SubmitResult:
    claim_id: str
    duplicate: bool
    claim: ClaimOut | None = None  # the new claim as stored; None for a duplicate


def new_claim_id() -> str:
    """Time-ordered claim id: CL + milliseconds (hex) + random."""
    return f"CL{int(time.time() * 1000):011x}{secrets.token_hex(4)}"


def submit_claim(
    hub: Hub,
    submission: ClaimSubmission,
    *,
    source: str,
    actor: str,
    message_id: str | None = None,
) -> SubmitResult:
    """Accept a claim once, in a transaction of its own (see `claim_submission`)."""
    return hub.db.perform(claim_submission(hub, submission, source, message_id), actor=actor)


def claim_submission(
    hub: Hub, submission: ClaimSubmission, source: str, message_id: str | None = None
) -> Callable[[UnitOfWork], SubmitResult]:
    """The command that records a claim; checks needing master data run right away.

    A repeat (same message id, or same source + external id + version) returns the first
    claim and changes nothing.
    """
    lines = validate_submission(hub.masterdata.get(), submission)

    def command(uow: UnitOfWork) -> SubmitResult:
        if uow.db.is_sqlite:  # one writer at a time: no concurrent twin can slip in
            return _record(hub, uow, submission, lines, source, message_id)
        for _ in range(RACE_RETRIES):
            try:
                with uow.step(uow.actor):
                    return _record(hub, uow, submission, lines, source, message_id)
            except IntegrityError:
                # A concurrent submission of the same claim (same message id or business
                # key) committed first (PostgreSQL); the unique keys refused ours, another
                # look finds it.
                continue
        return _record(hub, uow, submission, lines, source, message_id)

    return command


def _record(
    hub: Hub,
    uow: UnitOfWork,
    submission: ClaimSubmission,
    lines: list[ClaimLine],
    source: str,
    message_id: str | None,
) -> SubmitResult:
    if message_id is not None:
        earlier = inbox.seen(uow, source, message_id, "claim")
        if earlier is not None:
            return SubmitResult(earlier["claim_id"], duplicate=True)
    external_id = submission.external_id or f"finoa-{secrets.token_hex(8)}"
    business_key = f"{source}|{external_id}|{submission.version}"
    existing = repo.claim_id_by_business_key(uow.conn, source, external_id, submission.version)
    if existing is not None:
        _remember(uow, source, message_id, submission, existing, business_key)
        return SubmitResult(existing, duplicate=True)

    claim_id = new_claim_id()
    total_fen = sum(line.amount_fen for line in lines)
    record = {
        "id": claim_id,
        "source": source,
        "external_id": external_id,
        "version": submission.version,
        "applicant_id": submission.applicant_id,
        "department_id": submission.department_id,
        "cost_center_id": submission.cost_center_id,
        "project_id": submission.project_id,
        "currency": submission.currency,
        "title": submission.title,
        "total_fen": total_fen,
        "tax_fen": sum(line.tax_fen for line in lines),
        "status": ClaimStatus.IN_APPROVAL.value,
        "reason": None,
        "voucher_id": None,
        "submitted_at": uow.now,
        "submitted_epoch": uow.now.timestamp(),
        "updated_at": uow.now,
        "status_seq": 2,
    }
    line_rows = [
        {
            "claim_id": claim_id,
            "line_no": i + 1,
            "category": line.category.value,
            "amount_fen": line.amount_fen,
            "tax_fen": line.tax_fen,
            "expense_date": line.expense_date,
            "description": line.description,
            "invoice_refs": list(line.invoice_refs),
        }
        for i, line in enumerate(lines)
    ]
    file_rows = [
        {"claim_id": claim_id, "seq": i + 1, **a.model_dump()}
        for i, a in enumerate(submission.attachments)
    ]
    conn = uow.conn
    INSERT_CLAIM.run(conn, record)
    INSERT_LINES.run_many(conn, line_rows)
    INSERT_ATTACHMENTS.run_many(conn, file_rows)
    ref = claim_ref(SimpleNamespace(**record))
    uow.audit(
        "claim.submitted",
        "claim",
        claim_id,
        {
            "source": source,
            "external_id": external_id,
            "version": submission.version,
            "applicant_id": submission.applicant_id,
            "total_fen": total_fen,
        },
    )
    write_back_status(uow, ref, ClaimStatus.SUBMITTED.value, 1)

    state = hub.engine.start(
        {
            "claim_id": claim_id,
            "amount_fen": total_fen,
            "department": submission.department_id,
            "category": lines[0].category.value,
        }
    )
    INSERT_WORKFLOW.run(
        conn,
        {
            "claim_id": claim_id,
            "spec_version": state.spec_version,
            "state": state.state,
            "state_format_version": state.state_format_version,
            "outcome": state.outcome,
            "updated_at": uow.now,
        },
    )
    tasks = open_tasks(uow, hub.masterdata.get(), ref, submission.applicant_id, state.pending)
    uow.audit("claim.status_changed", "claim", claim_id, {"status": "in_approval"})
    write_back_status(uow, ref, ClaimStatus.IN_APPROVAL.value, 2)
    _remember(uow, source, message_id, submission, claim_id, business_key)
    view = ClaimOut.model_validate(
        {**record, "lines": line_rows, "attachments": file_rows, "tasks": tasks}
    )
    return SubmitResult(claim_id, duplicate=False, claim=view)


def _remember(
    uow: UnitOfWork,
    source: str,
    message_id: str | None,
    submission: ClaimSubmission,
    claim_id: str,
    business_key: str,
) -> None:
    """Record the message in the inbox (when it has an id) with the claim it resolved to."""
    if message_id is not None:
        body = submission.model_dump(mode="json")
        inbox.record(uow, source, message_id, "claim", body, {"claim_id": claim_id}, business_key)


def validate_submission(people: MasterDataSnapshot, submission: ClaimSubmission) -> list[ClaimLine]:
    """Checks that need master data; each failure names its field. Touches no database."""
    applicant = people.employees.get(submission.applicant_id)
    if applicant is None:
        raise InvalidInput("applicant_id", f"unknown employee {submission.applicant_id}")
    if not applicant.active:
        raise InvalidInput("applicant_id", f"employee {submission.applicant_id} has left")
    if submission.department_id not in people.org_units:
        raise InvalidInput("department_id", f"unknown department {submission.department_id}")
    if submission.cost_center_id and submission.cost_center_id not in people.cost_centers:
        raise InvalidInput("cost_center_id", f"unknown cost center {submission.cost_center_id}")
    if submission.project_id and submission.project_id not in people.projects:
        raise InvalidInput("project_id", f"unknown project {submission.project_id}")
    lines = tuple(
        ClaimLine(
            category=line.category,
            amount_fen=yuan_to_fen(line.amount, field=f"lines[{i}].amount"),
            tax_fen=yuan_to_fen(line.tax, field=f"lines[{i}].tax"),
            expense_date=line.expense_date,
            description=line.description,
            invoice_refs=tuple(line.invoice_refs),
        )
        for i, line in enumerate(submission.lines)
    )
    check_lines(lines)
    return list(lines)
