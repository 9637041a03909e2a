"""Vouchers (凭证): generate from an approved claim, post exactly once, reverse (红冲)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import bindparam, update

from finoa.archive.service import enqueue_archiving
from finoa.connectors.base import VoucherPayload
from finoa.domain.claim import ClaimStatus, DocumentType, transition
from finoa.domain.errors import Conflict, NotFound
from finoa.domain.voucher import (
    Aux,
    VoucherDraft,
    VoucherEntry,
    build_claim_voucher,
    reversal_of,
)
from finoa.invoices.service import invoice_vat_by_line, with_invoice_vat
from finoa.messaging.outbox import ERP, claim_ref, post_voucher, write_back_status
from finoa.services.budgets import consume_claim_budgets, reverse_claim_budgets
from finoa.services.context import Hub
from finoa.services.periods import place_in_open_period, today
from finoa.store import repositories as repo
from finoa.store.prepared import Prepared
from finoa.store.tables import vouchers
from finoa.store.uow import UnitOfWork
from finoa.store.voucher_numbers import PendingVoucher

VOUCHER_BY_ID = Prepared(vouchers.select().where(vouchers.c.id == bindparam("voucher_id")))
MARK_POSTED = Prepared(
    update(vouchers)
    .where(vouchers.c.id == bindparam("b_voucher_id"))
    .values(
        status="posted",
        erp_voucher_no=bindparam("b_erp_no"),
        erp_id=bindparam("b_erp_id"),
        posted_at=bindparam("b_now"),
    )
)


def create_claim_voucher(hub: Hub, uow: UnitOfWork, claim_row: Any) -> str | None:
    """Generate, number and queue the posting of an approved claim's voucher; returns its id.
    The caller records the voucher id on the claim. A requisition (事前申请) posts nothing:
    None, and it stays approved."""
    if getattr(claim_row, "document_type", None) == DocumentType.REQUISITION.value:
        return None
    claim = repo.claim_from_row(uow.conn, claim_row)
    claim_id = claim.claim_id
    # Lines with invoices post the deductible input VAT their invoices carry.
    claim = with_invoice_vat(claim, invoice_vat_by_line(uow.conn, claim_id))
    people = hub.masterdata.get()
    # Where it is posted is settled first: an org unit no ERP instance takes refuses the
    # approval (409 department_id) before anything is numbered.
    erp_instance = hub.instances.erp_for(claim_row.department_id, people.org_parents)
    applicant = people.employees.get(claim.applicant_id)
    voucher_id = f"V{claim_id[2:]}"
    placement = place_in_open_period(hub, uow, today(hub, uow), voucher_id)
    draft = build_claim_voucher(
        claim, hub.rules, placement.voucher_date, applicant.name if applicant else ""
    )
    voucher = _store_voucher(uow, voucher_id, claim_id, draft, None, erp_instance)
    key = f"finoa-voucher-{voucher_id}"
    _post_when_numbered(
        uow, voucher, erp_instance, key, voucher_payload(voucher_id, claim_id, "", draft)
    )
    return voucher_id


def _post_when_numbered(
    uow: UnitOfWork,
    voucher: PendingVoucher,
    erp_instance: str,
    key: str,
    payload: VoucherPayload,
) -> None:
    """Queue the voucher's posting; its number (`hub_voucher_no`) is filled in at commit."""
    queued = post_voucher(uow, erp_instance, key, payload)
    voucher.when_numbered(lambda _number, voucher_no: queued.update(hub_voucher_no=voucher_no))


def _store_voucher(
    uow: UnitOfWork,
    voucher_id: str,
    claim_id: str,
    draft: VoucherDraft,
    reversal: str | None,
    erp_instance: str,
) -> PendingVoucher:
    """Queue the voucher with its entries and its audit event; the unit of work numbers and
    writes it at commit (`store/voucher_numbers.py`)."""
    row = {
        "id": voucher_id,
        "claim_id": claim_id,
        "period": draft.period,
        "word": draft.word,
        "voucher_date": draft.voucher_date,
        "summary": draft.summary,
        "currency": draft.currency,
        "total_fen": draft.total_fen,
        "status": "posting",
        "idempotency_key": f"finoa-voucher-{voucher_id}",
        "reversal_of": reversal,
        "created_at": uow.now,
        "erp_instance": erp_instance,
    }
    entries = [
        {
            "voucher_id": voucher_id,
            "line": e.line,
            "account_code": e.account_code,
            "summary": e.summary,
            "debit_fen": e.debit_fen,
            "credit_fen": e.credit_fen,
            "aux_department": e.aux.department,
            "aux_employee": e.aux.employee,
            "aux_project": e.aux.project,
        }
        for e in draft.entries
    ]
    voucher = PendingVoucher(draft.period, draft.word, row, entries)
    uow.add_voucher(voucher)
    event: dict[str, Any] = {
        "claim_id": claim_id,
        "voucher_no": "",
        "period": draft.period,
        "total_fen": draft.total_fen,
        "reversal_of": reversal,
    }
    uow.audit("voucher.created", "voucher", voucher_id, event)
    voucher.when_numbered(lambda _number, voucher_no: event.update(voucher_no=voucher_no))
    return voucher


def voucher_payload(
    voucher_id: str,
    claim_id: str,
    voucher_no: str,
    draft: VoucherDraft,
    reversal_of: str | None = None,
) -> VoucherPayload:
    """The voucher as every ERP connector receives it (each maps it to its wire format)."""
    return {
        "voucher_id": voucher_id,
        "claim_id": claim_id,
        "hub_voucher_no": voucher_no,
        "word": draft.word,
        "period": draft.period,
        "date": draft.voucher_date.isoformat(),
        "summary": draft.summary,
        "currency": draft.currency,
        "reversal_of": reversal_of,
        "entries": [
            {
                "line": e.line,
                "account_code": e.account_code,
                "summary": e.summary,
                "debit_fen": e.debit_fen,
                "credit_fen": e.credit_fen,
                "aux": {
                    "department": e.aux.department,
                    "employee": e.aux.employee,
                    "project": e.aux.project,
                },
            }
            for e in draft.entries
        ],
    }


def record_voucher_posted(uow: UnitOfWork, voucher_id: str, response: dict[str, Any]) -> None:
    """The ERP accepted the voucher: keep its number, mark the claim posted, tell the OA."""
    voucher = VOUCHER_BY_ID.first(uow.conn, {"voucher_id": voucher_id})
    if voucher is None or voucher.status != "posting":
        return  # already recorded: a replayed delivery changes nothing
    erp_no = str(response.get("erp_voucher_no") or "")
    MARK_POSTED.run(
        uow.conn,
        {
            "b_voucher_id": voucher_id,
            "b_erp_no": erp_no or None,
            "b_erp_id": response.get("erp_id"),
            "b_now": uow.now,
        },
    )
    enqueue_archiving(uow, voucher_id)  # its archive package is built from this queue row
    uow.audit(
        "voucher.posted",
        "voucher",
        voucher_id,
        {"voucher_no": voucher.voucher_no, "erp_voucher_no": erp_no},
    )
    if voucher.reversal_of is not None:
        reverse_claim_budgets(uow, voucher.claim_id)
        return
    claim = repo.claim_row(uow.conn, voucher.claim_id, lock=True)
    consume_claim_budgets(uow, claim)
    status = transition(ClaimStatus(claim.status), ClaimStatus.POSTED)
    seq = claim.status_seq + 1
    repo.set_claim_status(uow.conn, claim.id, status.value, seq, uow.now)
    uow.audit(
        "claim.status_changed",
        "claim",
        claim.id,
        {"status": status.value, "voucher_no": voucher.voucher_no, "erp_voucher_no": erp_no},
    )
    write_back_status(
        uow,
        claim_ref(claim),
        status.value,
        seq,
        voucher_no=voucher.voucher_no,
        erp_voucher_no=erp_no,
    )


def reverse_voucher(hub: Hub, voucher_id: str, *, actor: str, on: date | None = None) -> str:
    """Correct a posted voucher by a red-ink reversal (红字冲销); nothing is deleted.

    The reversal is dated `on`, or today in company time, and follows the closed-period
    policy like any voucher."""
    with hub.db.uow(actor) as uow:
        row = uow.conn.execute(vouchers.select().where(vouchers.c.id == voucher_id)).first()
        if row is None:
            raise NotFound("voucher_id", f"unknown voucher {voucher_id}")
        if row.reversal_of is not None:
            raise Conflict("voucher_id", "a reversal cannot itself be reversed")
        if row.status != "posted":
            raise Conflict("voucher_id", f"voucher {row.voucher_no} is {row.status}, not posted")
        original = VoucherDraft(
            period=row.period,
            voucher_date=row.voucher_date,
            word=row.word,
            summary=row.summary,
            currency=row.currency,
            entries=tuple(
                VoucherEntry(
                    e.line,
                    e.account_code,
                    e.summary,
                    debit_fen=e.debit_fen,
                    credit_fen=e.credit_fen,
                    aux=Aux(e.aux_department, e.aux_employee, e.aux_project),
                )
                for e in repo.voucher_lines(uow.conn, voucher_id)
            ),
        )
        reversal_id = f"R{voucher_id[1:]}"
        placement = place_in_open_period(hub, uow, on or today(hub, uow), reversal_id)
        draft = reversal_of(original, row.voucher_no, placement.voucher_date)
        erp_instance = row.erp_instance or ERP  # where the voucher it reverses went
        reversal = _store_voucher(uow, reversal_id, row.claim_id, draft, voucher_id, erp_instance)
        uow.conn.execute(
            update(vouchers).where(vouchers.c.id == voucher_id).values(status="reversed")
        )
        uow.audit("voucher.reversed", "voucher", voucher_id, {"reversal_id": reversal_id})
        _post_when_numbered(
            uow,
            reversal,
            erp_instance,
            f"finoa-voucher-{reversal_id}",
            voucher_payload(reversal_id, row.claim_id, "", draft, voucher_id),
        )
        uow.commit()
        return reversal_id
