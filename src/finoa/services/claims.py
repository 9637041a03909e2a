"""Submitting expense claims (提交报销单): validate, record, start approval, tell the OA."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, or_, select, text
from sqlalchemy.exc import IntegrityError

from finoa.connectors.instances import OA_LED
from finoa.domain.claim import (
    LIVE_STATUSES,
    ClaimLine,
    ClaimStatus,
    DocumentClaim,
    DocumentType,
    check_lines,
    check_new_version,
    superseded_reason,
    transition,
)
from finoa.domain.errors import Conflict, InvalidInput
from finoa.domain.money import format_fen, yuan_to_fen
from finoa.messaging import inbox
from finoa.messaging.outbox import claim_ref, write_back_status
from finoa.schemas import ClaimOut, ClaimSubmission
from finoa.services.approvals import assign_people, open_tasks, withdraw_approval
from finoa.services.budgets import occupy_claim_budgets, release_claim_budgets
from finoa.services.context import Hub
from finoa.services.directory import MasterDataSnapshot
from finoa.services.oa_approvals import start_in_oa
from finoa.services.policy import check_claim_policy, policy_breached
from finoa.services.processes import definition_for
from finoa.store import repositories as repo
from finoa.store.locks import LockClass
from finoa.store.prepared import Prepared
from finoa.store.tables import attachments, claim_lines, claims, vouchers, workflow_instances
from finoa.store.uow import UnitOfWork

RACE_RETRIES = 5
LOCK_DOCUMENT = text("SELECT pg_advisory_xact_lock(:space, hashtext(:document))")
_DOCUMENT = (
    claims.c.source == bindparam("source"),
    claims.c.external_id == bindparam("external_id"),
)
CLAIM_OF_BUSINESS_KEY = Prepared(
    select(claims.c.id, claims.c.content_digest).where(
        *_DOCUMENT, claims.c.version == bindparam("version")
    )
)
_LIVE_CLAIMS = (
    select(claims)
    .where(*_DOCUMENT, or_(*(claims.c.status == status for status in sorted(LIVE_STATUSES))))
    .order_by(claims.c.version)
)
LIVE_CLAIMS = Prepared(_LIVE_CLAIMS)
LIVE_CLAIMS_LOCKED = Prepared(_LIVE_CLAIMS.with_for_update())
LATEST_VERSION = Prepared(select(func.max(claims.c.version)).where(*_DOCUMENT))
VOUCHER_NO = Prepared(select(vouchers.c.voucher_no).where(vouchers.c.id == bindparam("voucher_id")))
INSERT_CLAIM = Prepared(insert(claims))
INSERT_LINES = Prepared(insert(claim_lines))
INSERT_ATTACHMENTS = Prepared(insert(attachments))
INSERT_WORKFLOW = Prepared(insert(workflow_instances))
REQUISITION = Prepared(
    select(claims.c.document_type, claims.c.status, claims.c.total_fen).where(
        claims.c.id == bindparam("id")
    )
)
DRAWN_ON_REQUISITION = Prepared(
    select(func.coalesce(func.sum(claims.c.total_fen), 0)).where(
        claims.c.requisition_id == bindparam("id"),
        claims.c.status != ClaimStatus.REJECTED.value,
        claims.c.status != ClaimStatus.WITHDRAWN.value,
        or_(
            claims.c.source != bindparam("source"),
            claims.c.external_id != bindparam("external_id"),
        ),
    )
)


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
    key_field: str = "message_id",
    oa_instance: str | None = None,
    oa_approval_id: str | None = None,
) -> SubmitResult:
    """Accept a claim once, in a transaction of its own (see `claim_submission`)."""
    command = claim_submission(
        hub,
        submission,
        source,
        message_id,
        key_field=key_field,
        oa_instance=oa_instance,
        oa_approval_id=oa_approval_id,
    )
    return hub.db.perform(command, actor=actor)


def claim_submission(
    hub: Hub,
    submission: ClaimSubmission,
    source: str,
    message_id: str | None = None,
    *,
    key_field: str = "message_id",
    oa_instance: str | None = None,
    oa_approval_id: str | None = None,
) -> Callable[[UnitOfWork], SubmitResult]:
    """The command that records a claim; checks needing master data run right away.

    A repeat (same message id, or same source + external id + version, with the same
    content) returns the first claim and changes nothing. The same message id with other
    content is refused naming `key_field` (where the sender put the id); the same business
    key with other content, or a version not above the document's latest, naming `version`.
    A higher version withdraws the document's open claim and becomes a new claim; once that
    claim is approved or posted, the new version is refused.

    `oa_instance` is the OA connector instance the claim came from, where its todos and
    status write-backs go; None (the REST API) means the default OA instance. The approval
    runs in that OA's own approval app (`finoa.services.oa_approvals`) when the claim comes
    with the OA's approval instance (`oa_approval_id`), or when the instance is configured
    `oa-led` for expense claims; else in finoa's BPMN.
    """
    lines = validate_submission(hub.masterdata.get(), submission)
    instance = oa_instance or hub.instances.oa_for_rest()
    in_oa = oa_approval_id is not None or hub.instances.approval_mode(instance) == OA_LED
    oa_led = (oa_approval_id,) if in_oa else None

    def record(uow: UnitOfWork) -> SubmitResult:
        return _record(hub, uow, submission, lines, source, message_id, key_field, instance, oa_led)

    def command(uow: UnitOfWork) -> SubmitResult:
        if uow.db.is_sqlite:  # one writer at a time: no concurrent twin can slip in
            return record(uow)
        for _ in range(RACE_RETRIES):
            try:
                with uow.step(uow.actor):
                    return record(uow)
            except IntegrityError:
                # A concurrent submission of the same claim (same message id or business
                # key) or another version of its document committed first (PostgreSQL);
                # the unique keys refused ours, another look finds it.
                continue
        return record(uow)

    return command


def _record(
    hub: Hub,
    uow: UnitOfWork,
    submission: ClaimSubmission,
    lines: list[ClaimLine],
    source: str,
    message_id: str | None,
    key_field: str,
    oa_instance: str,
    oa_led: tuple[str | None] | None = None,
) -> SubmitResult:
    content = inbox.content_digest(submission)
    if message_id is not None:
        earlier = inbox.seen(uow, source, message_id, "claim", submission, field=key_field)
        if earlier is not None:
            return SubmitResult(earlier["claim_id"], duplicate=True)
    external_id = submission.external_id or f"finoa-{secrets.token_hex(8)}"
    version = submission.version
    business_key = f"{source}|{external_id}|{version}"
    conn = uow.conn
    document = {"source": source, "external_id": external_id}
    if submission.external_id is not None and not hub.db.is_sqlite:
        # One submission per document at a time (SQLite has one writer anyway): versions
        # racing each other queue here rather than meet in the unique indexes, where two
        # of them can deadlock.
        lock = {"space": int(LockClass.DOCUMENT), "document": f"{source}|{external_id}"}
        conn.execute(LOCK_DOCUMENT, lock)
    same_key = CLAIM_OF_BUSINESS_KEY.first(conn, {**document, "version": version})
    if same_key is not None:
        if not inbox.same_content(same_key.content_digest, submission):
            latest = LATEST_VERSION.first(conn, document)[0]
            raise Conflict(
                "version",
                f"version {version} of {external_id} from {source} was already received with "
                f"different content (claim {same_key.id}); the current version is {latest}, "
                "a changed document needs a higher version",
            )
        _remember(uow, source, message_id, submission, same_key.id, business_key)
        return SubmitResult(same_key.id, duplicate=True)

    # Lock the document's live claims first, then read its latest version: on PostgreSQL a
    # concurrent new version has committed by the time the lock is granted, and one that
    # raced past finds the live-document unique index in its way (IntegrityError: retried).
    live = (LIVE_CLAIMS if hub.db.is_sqlite else LIVE_CLAIMS_LOCKED).all(conn, document)
    latest_version = LATEST_VERSION.first(conn, document)[0]
    check_new_version(version, latest_version, [_document_claim(conn, row) for row in live])

    total_fen = sum(line.amount_fen for line in lines)
    if submission.requisition_id is not None:
        check_requisition(conn, submission, total_fen, source, external_id)
    claim_id = new_claim_id()
    for row in live:
        _withdraw(uow, row, superseded_reason(version, claim_id))
    record = {
        "id": claim_id,
        "source": source,
        "external_id": external_id,
        "version": version,
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
        "content_digest": content,
        "oa_instance": oa_instance,
        "document_type": submission.kind.value,
        "requisition_id": submission.requisition_id,
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
    record["policy_check"] = check_claim_policy(hub, submission, lines)
    record["budget_status"] = occupy_claim_budgets(hub, uow, record, line_rows)
    INSERT_CLAIM.run(conn, record)
    INSERT_LINES.run_many(conn, line_rows)
    INSERT_ATTACHMENTS.run_many(conn, file_rows)
    ref = claim_ref(SimpleNamespace(**record))
    submitted = {
        "source": source,
        "external_id": external_id,
        "version": version,
        "applicant_id": submission.applicant_id,
        "total_fen": total_fen,
    }
    if live:
        submitted["supersedes"] = [row.id for row in live]
    uow.audit("claim.submitted", "claim", claim_id, submitted)
    write_back_status(uow, ref, ClaimStatus.SUBMITTED.value, 1)

    if oa_led is not None:  # the approval runs in the OA's own approval app
        start_in_oa(uow, ref, oa_led[0])
        tasks: list[dict[str, Any]] = []
    else:
        tasks = _start_approval(hub, uow, ref, submission, lines, record)
    uow.audit("claim.status_changed", "claim", claim_id, {"status": "in_approval"})
    write_back_status(uow, ref, ClaimStatus.IN_APPROVAL.value, 2)
    _remember(uow, source, message_id, submission, claim_id, business_key)
    view = ClaimOut.model_validate(
        {**record, "lines": line_rows, "attachments": file_rows, "tasks": tasks}
    )
    return SubmitResult(claim_id, duplicate=False, claim=view)


def check_requisition(
    conn: Connection, submission: ClaimSubmission, total_fen: int, source: str, external_id: str
) -> None:
    """A document drawing on a requisition (事前申请): the requisition must exist and be
    approved, and what its documents draw (this one included, other versions of this document
    not) must stay within its approved amount."""
    requisition_id = submission.requisition_id
    if submission.kind is DocumentType.REQUISITION:
        raise InvalidInput("requisition_id", "a requisition draws on no other requisition")
    row = REQUISITION.first(conn, {"id": requisition_id})
    if row is None:
        raise InvalidInput("requisition_id", f"unknown requisition {requisition_id}")
    if row.document_type != DocumentType.REQUISITION.value:
        raise InvalidInput("requisition_id", f"{requisition_id} is not a requisition")
    if row.status != ClaimStatus.APPROVED.value:
        raise InvalidInput(
            "requisition_id", f"requisition {requisition_id} is {row.status}, not approved"
        )
    drawn = int(
        DRAWN_ON_REQUISITION.first(
            conn, {"id": requisition_id, "source": source, "external_id": external_id}
        )[0]
    )
    if drawn + total_fen > row.total_fen:
        already = f" ({format_fen(drawn)} 元 drawn on it already)" if drawn else ""
        raise InvalidInput(
            "requisition_id",
            f"amount {format_fen(total_fen)} 元 is over requisition {requisition_id}'s "
            f"approved {format_fen(row.total_fen)} 元{already}",
        )


def _start_approval(
    hub: Hub,
    uow: UnitOfWork,
    ref: dict[str, Any],
    submission: ClaimSubmission,
    lines: list[ClaimLine],
    record: dict[str, Any],
) -> list[dict[str, Any]]:
    """Start finoa's BPMN for the claim (`record`, its row as stored), name the people of its
    first countersign / or-sign steps in the engine, and open the first tasks (hub-led)."""
    claim_id = ref["id"]
    state = hub.engine.start(
        {
            "claim_id": claim_id,
            "amount_fen": record["total_fen"],
            "department": submission.department_id,
            "category": lines[0].category.value,
            "budget_exceeded": record["budget_status"] == "exceeded",
            "policy_breached": policy_breached(record),
            "project": submission.project_id or "",
            "cost_center": submission.cost_center_id or "",
            "document_type": submission.kind.value,
        },
        definition=definition_for(uow.conn, submission.kind),
    )
    state, reasons = assign_people(hub, uow, ref, submission.applicant_id, state)
    INSERT_WORKFLOW.run(
        uow.conn,
        {
            "claim_id": claim_id,
            "spec_version": state.spec_version,
            "state": state.state,
            "state_format_version": state.state_format_version,
            "outcome": state.outcome,
            "updated_at": uow.now,
        },
    )
    tasks = open_tasks(
        uow,
        hub.masterdata.get(),
        ref,
        submission.applicant_id,
        state.pending,
        zone=hub.settings.company_zone,
        allow_repeat=hub.settings.allow_repeat_approver,
        fallback_reasons=reasons,
    )
    return tasks


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
        inbox.record(
            uow, source, message_id, "claim", submission, {"claim_id": claim_id}, business_key
        )


def _document_claim(conn: Connection, row: Any) -> DocumentClaim:
    """A live claim of the document, with its voucher number once it has one."""
    voucher = VOUCHER_NO.first(conn, {"voucher_id": row.voucher_id}) if row.voucher_id else None
    return DocumentClaim(
        row.id, row.version, ClaimStatus(row.status), voucher.voucher_no if voucher else None
    )


def _withdraw(uow: UnitOfWork, row: Any, reason: str) -> None:
    """Withdraw an open claim replaced by a newer version of its document: its approval
    stops (tasks withdrawn, todos closed, workflow ended), and the OA hears the new status."""
    status = transition(ClaimStatus(row.status), ClaimStatus.WITHDRAWN)
    seq = row.status_seq + 1
    repo.set_claim_status(uow.conn, row.id, status.value, seq, uow.now, reason=reason)
    ref = claim_ref(row)
    withdraw_approval(uow, ref, reason)
    release_claim_budgets(uow, row)
    uow.audit("claim.status_changed", "claim", row.id, {"status": status.value, "reason": reason})
    write_back_status(uow, ref, status.value, seq, reason=reason)


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
