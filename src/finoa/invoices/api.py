"""The invoice API: upload to a claim line (multipart), list a claim's invoices, read an
original as received."""

from __future__ import annotations

import asyncio
import base64
import re
import unicodedata
from datetime import date, datetime
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, File, Path, Response, UploadFile, status
from pydantic import BaseModel

from finoa.api.deps import HubDep, require
from finoa.api.problems import ApiProblem, problem_responses
from finoa.invoices.parsing import OFD_MEDIA_TYPE, PDF_MEDIA_TYPE, XML_MEDIA_TYPE
from finoa.invoices.service import (
    CheckedUpload,
    DuplicateInvoice,
    FileTooLarge,
    attachable_line,
    check_upload,
    claim_invoices,
    invoice_attachment,
    invoice_row,
)
from finoa.invoices.storage import InvoiceFiles
from finoa.invoices.verification import (
    REFUSED_STATES,
    FourElements,
    TaxPlatform,
    VerificationState,
)
from finoa.schemas import ID
from finoa.security.tokens import Principal
from finoa.services.context import Hub

router = APIRouter(tags=["invoices"], responses=problem_responses(401, 403, 422))
UPLOAD_PATH = re.compile(r"/api/v1/claims/[^/]+/lines/[^/]+/invoices")
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file
ClaimId = Annotated[str, Path(max_length=40, pattern=ID, description="The claim's id")]
InvoiceId = Annotated[str, Path(max_length=40, pattern=ID, description="The invoice's id")]
LineNo = Annotated[int, Path(ge=1, le=200, description="The claim line (1-based)")]


class InvoiceOut(BaseModel):
    """An invoice on a claim line. Amounts in fen; `released_at` is set once its claim was
    rejected or withdrawn (the invoice may then back another claim)."""

    id: str
    claim_id: str
    line_no: int
    number: str | None
    kind: str | None
    source_format: str
    issue_date: date | None
    seller_tax_id: str | None
    seller_name: str | None
    buyer_tax_id: str | None
    amount_fen: int | None
    tax_fen: int | None
    total_fen: int | None
    deductible_vat_fen: int
    vat_rule: str
    manual_entry_reason: str | None
    verification: str
    file_name: str
    media_type: str
    data_path: str
    sha256: str
    size: int
    uploaded_at: datetime
    released_at: datetime | None
    released_reason: str | None


class InvoiceList(BaseModel):
    items: list[InvoiceOut]


def bare_file_name(name: str | None) -> str:
    """The uploaded file's name without any directory part or control characters."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()[:255]
    return base if base not in ("", ".", "..") else "invoice"


def invoice_files(hub: Hub) -> InvoiceFiles:
    return InvoiceFiles(hub.settings.invoice_path)


async def verify_upload(hub: Hub, upload: CheckedUpload) -> VerificationState:
    """Ask the tax platform, when one is configured; refuse what it says does not hold."""
    invoice = upload.read.invoice
    if invoice is None:
        return VerificationState.MANUAL_ENTRY
    settings = hub.settings
    if not settings.tax_platform_url:
        return VerificationState.NOT_CHECKED
    elements = FourElements(
        invoice.number, invoice.issue_date, invoice.total_fen, invoice.check_code
    )
    async with httpx.AsyncClient() as http:
        platform = TaxPlatform(
            settings.tax_platform_url,
            settings.tax_platform_api_key,
            http,
            settings.connector_timeout_seconds,
        )
        result = await platform.verify(elements)
    if result.state in REFUSED_STATES:
        raise ApiProblem(
            422,
            "Invoice failed verification",
            f"file: the tax platform says {result.state.value} ({result.detail})",
            kind="invoice-verification-failed",
            field="file",
            extra={"verification": result.state.value},
        )
    return result.state


def _check_line(hub: Hub, claim_id: str, line_no: int) -> None:
    with hub.db.engine.connect() as conn:
        attachable_line(conn, claim_id, line_no)


@router.post(
    "/claims/{claim_id}/lines/{line_no}/invoices",
    status_code=status.HTTP_201_CREATED,
    response_model=InvoiceOut,
    summary="Attach an e-invoice (XML, OFD or PDF) to a claim line",
    responses={
        200: {"description": "The same file is already on this line: it is returned"},
        **problem_responses(404, 409, 413, 415, 503),
    },
)
async def upload_invoice(
    claim_id: ClaimId,
    line_no: LineNo,
    file: Annotated[UploadFile, File(description="The invoice file as received")],
    response: Response,
    hub: HubDep,
    principal: Annotated[Principal, Depends(require("claims:write"))],
) -> InvoiceOut:
    limit = hub.settings.invoice_max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge("file", f"larger than the {limit}-byte limit for invoice files")
    settings = hub.settings
    await hub.db.run(_check_line, hub, claim_id, line_no)  # before the platform is asked
    upload = await asyncio.to_thread(
        check_upload,
        data,
        bare_file_name(file.filename),
        company_tax_id=settings.company_tax_id,
        max_bytes=limit,
    )
    verification = await verify_upload(hub, upload)
    await asyncio.to_thread(invoice_files(hub).put, data)
    command = invoice_attachment(upload, claim_id, line_no, verification)
    try:
        result = await hub.commands.run(command, actor=f"client:{principal.client_id}")
    except DuplicateInvoice as exc:
        raise ApiProblem(
            409,
            exc.title,
            f"{exc.field}: {exc.message}",
            kind="duplicate-invoice",
            field="file",
            extra={"first_claim_id": exc.first_claim_id, "invoice_number": exc.number},
        ) from None
    if result.duplicate:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/api/v1/invoices/{result.invoice['id']}/file"
    return InvoiceOut.model_validate(result.invoice)


@router.get(
    "/claims/{claim_id}/invoices",
    response_model=InvoiceList,
    summary="List a claim's invoices",
    responses=problem_responses(404),
)
def list_invoices(
    claim_id: ClaimId, hub: HubDep, _: Annotated[Principal, Depends(require("claims:read"))]
) -> InvoiceList:
    with hub.db.engine.connect() as conn:
        items = claim_invoices(conn, claim_id)
    return InvoiceList(items=[InvoiceOut.model_validate(item) for item in items])


@router.get(
    "/invoices/{invoice_id}/file",
    summary="Read an invoice file exactly as it was received",
    response_class=Response,
    responses={
        200: {
            "description": "The original bytes; Repr-Digest carries their SHA-256",
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in (XML_MEDIA_TYPE, OFD_MEDIA_TYPE, PDF_MEDIA_TYPE)
            },
        },
        **problem_responses(404),
    },
)
def invoice_file(
    invoice_id: InvoiceId, hub: HubDep, _: Annotated[Principal, Depends(require("claims:read"))]
) -> Response:
    with hub.db.engine.connect() as conn:
        row = invoice_row(conn, invoice_id)
    data = invoice_files(hub).get(row.sha256)
    digest = base64.b64encode(bytes.fromhex(row.sha256)).decode()
    return Response(
        data,
        media_type=row.media_type,
        headers={
            "Repr-Digest": f"sha-256=:{digest}:",
            "Content-Disposition": f"attachment; filename*=UTF-8''{_quoted(row.file_name)}",
        },
    )


def _quoted(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
