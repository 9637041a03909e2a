"""A hub with posted vouchers to archive: claims approved, their invoices stored, posted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import invoices as build
from support.claims import one_line_claim

from finoa.archive.service import Archive
from finoa.config import load_settings
from finoa.invoices.service import check_upload, invoice_attachment
from finoa.invoices.storage import InvoiceFiles
from finoa.invoices.verification import VerificationState
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.queries import get_claim
from finoa.services.vouchers import record_voucher_posted


@pytest.fixture
def hub(db_url: str, tmp_path: Path) -> Iterator[Hub]:
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=db_url, company_tax_id=build.COMPANY_TAX_ID
    )
    hub = Hub.create(settings)
    load_masterdata(hub.db)
    yield hub
    hub.close()


@pytest.fixture
def archive(hub: Hub) -> Archive:
    return Archive.from_settings(hub.settings)


def approve(
    hub: Hub, external_id: str, *, invoice: bytes | None = None, amount: str = "553.00"
) -> str:
    """An approved claim (with `invoice` on its line, stored as uploaded); its voucher id."""
    submission = one_line_claim(
        external_id, applicant_id="E0011", department_id="D02", category="travel", amount=amount
    )
    claim_id = submit_claim(hub, submission, source="test", actor="t").claim_id
    if invoice is not None:
        upload = check_upload(
            invoice, "ticket.xml", company_tax_id=hub.settings.company_tax_id, max_bytes=1 << 20
        )
        InvoiceFiles(hub.settings.invoice_path).put(invoice)
        hub.db.perform(
            invoice_attachment(upload, claim_id, 1, VerificationState.NOT_CHECKED), actor="t"
        )
    while get_claim(hub.db, claim_id).status == "in_approval":
        task = next(t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending")
        decide_task(hub, task.id, task.assignee_id, True, "同意", actor="t")
    voucher = get_claim(hub.db, claim_id).voucher
    assert voucher is not None
    return voucher.id


def post(hub: Hub, voucher_id: str) -> None:
    with hub.db.uow("erp") as uow:
        record_voucher_posted(
            uow, voucher_id, {"erp_voucher_no": f"ERP-{voucher_id}", "erp_id": "x"}
        )
        uow.commit()


@pytest.fixture
def approved(hub: Hub) -> Callable[..., str]:
    def make(external_id: str, *, invoice: bytes | None = None, amount: str = "553.00") -> str:
        return approve(hub, external_id, invoice=invoice, amount=amount)

    return make


@pytest.fixture(name="post")
def post_fixture(hub: Hub) -> Callable[[str], None]:
    return lambda voucher_id: post(hub, voucher_id)


@pytest.fixture
def posted(hub: Hub) -> Callable[..., str]:
    def make(external_id: str, *, invoice: bytes | None = None, amount: str = "553.00") -> str:
        voucher_id = approve(hub, external_id, invoice=invoice, amount=amount)
        post(hub, voucher_id)
        return voucher_id

    return make
