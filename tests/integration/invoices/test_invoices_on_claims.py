"""Invoices on claim lines against a real database (SQLite and PostgreSQL): attach once across
all claims, release on rejection or withdrawal, and the voucher's VAT lines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support import invoices as build
from support.claims import one_line_claim, row_counts

from finoa.config import load_settings
from finoa.domain.errors import Conflict, InvalidInput, NotFound
from finoa.invoices.service import (
    AttachResult,
    DuplicateInvoice,
    check_upload,
    claim_invoices,
    invoice_attachment,
)
from finoa.invoices.storage import InvoiceFiles, StoredFileDamaged
from finoa.invoices.verification import VerificationState
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.queries import get_claim
from finoa.store.tables import audit_events, invoices, voucher_entries


@pytest.fixture
def hub(db_url: str, tmp_path: Path) -> Iterator[Hub]:
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=db_url, company_tax_id=build.COMPANY_TAX_ID
    )
    hub = Hub.create(settings)
    load_masterdata(hub.db)
    yield hub
    hub.close()


def submit(
    hub: Hub,
    external_id: str,
    *,
    category: str = "travel",
    amount: str = "553.00",
    tax: str = "0",
    version: int = 1,
) -> str:
    submission = one_line_claim(
        external_id,
        applicant_id="E0011",
        department_id="D02",
        category=category,
        amount=amount,
        tax=tax,
        version=version,
    )
    return submit_claim(hub, submission, source="test", actor="t").claim_id


def attach(hub: Hub, claim_id: str, data: bytes, line_no: int = 1) -> AttachResult:
    upload = check_upload(
        data, "ticket.xml", company_tax_id=hub.settings.company_tax_id, max_bytes=1 << 20
    )
    command = invoice_attachment(upload, claim_id, line_no, VerificationState.NOT_CHECKED)
    return hub.db.perform(command, actor="t")


def decide_all(hub: Hub, claim_id: str, approve: bool) -> None:
    while get_claim(hub.db, claim_id).status == "in_approval":
        task = next(t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending")
        decide_task(
            hub, task.id, task.assignee_id, approve, "同意" if approve else "驳回", actor="t"
        )


def entries(hub: Hub, claim_id: str) -> dict[str, tuple[int, int]]:
    voucher = get_claim(hub.db, claim_id).voucher
    assert voucher is not None
    with hub.db.engine.connect() as conn:
        rows = conn.execute(
            select(voucher_entries).where(voucher_entries.c.voucher_id == voucher.id)
        ).all()
    return {row.account_code: (row.debit_fen, row.credit_fen) for row in rows}


def test_railway_ticket_drives_the_vouchers_vat_line(hub: Hub) -> None:
    claim_id = submit(hub, "OA-INV-1", amount="553.00", tax="0")
    result = attach(hub, claim_id, build.railway_xbrl(fare="553.00"))
    assert not result.duplicate
    assert result.invoice["deductible_vat_fen"] == 4566
    listed = claim_invoices(hub.db.engine.connect(), claim_id)
    assert [i["number"] for i in listed] == [result.invoice["number"]]
    decide_all(hub, claim_id, approve=True)
    posted = entries(hub, claim_id)
    assert posted == {
        "6602.01": (55300 - 4566, 0),
        "2221.01.01": (4566, 0),
        "2241": (0, 55300),
    }
    assert sum(d for d, _ in posted.values()) == sum(c for _, c in posted.values())


def test_lines_without_invoices_keep_their_submitted_tax(hub: Hub) -> None:
    claim_id = submit(hub, "OA-INV-2", category="lodging", amount="530.00", tax="30.00")
    decide_all(hub, claim_id, approve=True)
    assert entries(hub, claim_id)["2221.01.01"] == (3000, 0)


def test_entertainment_line_posts_no_input_vat(hub: Hub) -> None:
    claim_id = submit(hub, "OA-INV-3", category="entertainment", amount="530.00", tax="30.00")
    result = attach(hub, claim_id, build.einvoice_xml())
    assert result.invoice["deductible_vat_fen"] == 0
    decide_all(hub, claim_id, approve=True)
    posted = entries(hub, claim_id)
    assert "2221.01.01" not in posted
    assert posted["6602.03"] == (53000, 0)


def test_a_duplicate_invoice_is_refused_naming_the_first_claim(hub: Hub) -> None:
    data = build.railway_xbrl()
    first = submit(hub, "OA-DUP-1")
    attach(hub, first, data)
    second = submit(hub, "OA-DUP-2")
    before = row_counts(hub, [invoices, audit_events])
    with pytest.raises(DuplicateInvoice) as caught:
        attach(hub, second, data)
    assert caught.value.first_claim_id == first and first in str(caught.value)
    assert caught.value.field == "file"
    assert row_counts(hub, [invoices, audit_events]) == before
    # The same invoice as another file (an OFD around the same data) is the same invoice.
    with pytest.raises(DuplicateInvoice):
        attach(hub, second, build.ofd(data))


def test_the_same_file_again_on_the_same_line_changes_nothing(hub: Hub) -> None:
    claim_id = submit(hub, "OA-SAME")
    data = build.railway_xbrl()
    first = attach(hub, claim_id, data)
    again = attach(hub, claim_id, data)
    assert again.duplicate and again.invoice["id"] == first.invoice["id"]
    assert row_counts(hub, [invoices])["invoices"] == 1


def test_rejection_releases_the_invoice(hub: Hub) -> None:
    data = build.railway_xbrl()
    first = submit(hub, "OA-REL-1")
    attach(hub, first, data)
    decide_all(hub, first, approve=False)
    second = submit(hub, "OA-REL-2")
    assert not attach(hub, second, data).duplicate
    released = claim_invoices(hub.db.engine.connect(), first)[0]
    assert released["released_at"] is not None and released["released_reason"] == "claim rejected"


def test_withdrawal_by_a_new_version_releases_the_invoice(hub: Hub) -> None:
    data = build.railway_xbrl()
    first = submit(hub, "OA-VER", version=1)
    attach(hub, first, data)
    second = submit(hub, "OA-VER", version=2)
    assert get_claim(hub.db, first).status == "withdrawn"
    assert attach(hub, second, data).invoice["claim_id"] == second


def test_an_approved_claim_takes_no_more_invoices(hub: Hub) -> None:
    claim_id = submit(hub, "OA-LATE")
    decide_all(hub, claim_id, approve=True)
    with pytest.raises(Conflict) as caught:
        attach(hub, claim_id, build.railway_xbrl())
    assert caught.value.field == "claim_id"


def test_unknown_claim_or_line(hub: Hub) -> None:
    with pytest.raises(NotFound) as caught:
        attach(hub, "CL-nope", build.railway_xbrl())
    assert caught.value.field == "claim_id"
    claim_id = submit(hub, "OA-LINE")
    with pytest.raises(NotFound) as caught:
        attach(hub, claim_id, build.railway_xbrl(), line_no=2)
    assert caught.value.field == "line_no"


def test_invoices_cannot_exceed_the_line(hub: Hub) -> None:
    claim_id = submit(hub, "OA-OVER", amount="500.00")
    with pytest.raises(InvalidInput, match="more than the line amount") as caught:
        attach(hub, claim_id, build.railway_xbrl(fare="553.00"))
    assert caught.value.field == "file"


def test_a_printout_is_kept_for_manual_entry(hub: Hub) -> None:
    claim_id = submit(hub, "OA-MANUAL", category="lodging", amount="530.00", tax="30.00")
    result = attach(hub, claim_id, build.pdf(None))
    invoice: dict[str, Any] = result.invoice
    assert invoice["number"] is None and invoice["verification"] == "manual_entry"
    assert "no embedded invoice XML" in invoice["manual_entry_reason"]
    decide_all(hub, claim_id, approve=True)
    assert entries(hub, claim_id)["2221.01.01"] == (3000, 0)


def test_buyer_of_another_company_is_refused_before_anything_is_written(hub: Hub) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_upload(
            build.einv_xbrl(buyer=build.OTHER_TAX_ID),
            "x.xml",
            company_tax_id=hub.settings.company_tax_id,
            max_bytes=1 << 20,
        )
    assert caught.value.field == "invoice.buyer_tax_id"


def test_files_are_write_once_and_checked_when_read(tmp_path: Path) -> None:
    files = InvoiceFiles(tmp_path / "invoices")
    data = build.pdf(build.einvoice_xml())
    digest = files.put(data)
    assert files.put(data) == digest
    path = files.path(digest)
    assert path.read_bytes() == data and not path.stat().st_mode & 0o222
    assert files.get(digest) == data
    path.chmod(0o644)
    damaged = bytearray(data)
    damaged[100] ^= 0x01
    path.write_bytes(bytes(damaged))
    with pytest.raises(StoredFileDamaged, match=digest):
        files.get(digest)
    with pytest.raises(StoredFileDamaged):
        files.put(data)  # never silently overwritten, even to repair it
