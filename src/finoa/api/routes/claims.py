"""Expense claims: submit, read, list."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status
from pydantic import AfterValidator

from finoa.api.deps import HubDep, require
from finoa.api.json_body import StrictJsonRoute
from finoa.api.problems import problem_responses
from finoa.domain.claim import ClaimStatus
from finoa.schemas import ID, ClaimOut, ClaimPage, ClaimSubmission, line_text
from finoa.security.tokens import Principal
from finoa.services.claims import claim_submission
from finoa.services.queries import ClaimFilter, get_claim, list_claims

router = APIRouter(
    prefix="/claims",
    tags=["claims"],
    route_class=StrictJsonRoute,
    responses=problem_responses(401, 403, 422),
)

# Pages: at most MAX_PAGE_SIZE claims (each may carry 200 lines), and page numbers small
# enough that the row offset stays far inside a 64-bit integer.
MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000
ClaimId = Annotated[str, Path(max_length=40, pattern=ID, description="The claim's id")]
MasterDataId = Annotated[str | None, Query(max_length=32), AfterValidator(line_text)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ClaimOut,
    summary="Submit an expense claim",
    responses={
        200: {"description": "Already received: the first claim is returned"},
        **problem_responses(400, 409, 413, 503),
    },
)
async def post_claim(
    submission: ClaimSubmission,
    response: Response,
    hub: HubDep,
    principal: Annotated[Principal, Depends(require("claims:write"))],
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=200), AfterValidator(line_text)
    ] = None,
) -> ClaimOut:
    command = claim_submission(
        hub, submission, principal.client_id, idempotency_key, key_field="Idempotency-Key"
    )
    result = await hub.commands.run(command, actor=f"client:{principal.client_id}")
    if result.duplicate:
        response.status_code = status.HTTP_200_OK
        response.headers["Finoa-Duplicate"] = "true"
    response.headers["Location"] = f"/api/v1/claims/{result.claim_id}"
    if result.claim is not None:
        return result.claim
    return await hub.db.run(get_claim, hub.db, result.claim_id)


@router.get(
    "/{claim_id}",
    response_model=ClaimOut,
    summary="Read one claim",
    responses=problem_responses(404),
)
def read_claim(
    claim_id: ClaimId,
    hub: HubDep,
    _: Annotated[Principal, Depends(require("claims:read"))],
) -> ClaimOut:
    return get_claim(hub.db, claim_id)


@router.get("", response_model=ClaimPage, summary="List claims")
def read_claims(
    hub: HubDep,
    _: Annotated[Principal, Depends(require("claims:read"))],
    status_: Annotated[ClaimStatus | None, Query(alias="status")] = None,
    applicant_id: MasterDataId = None,
    department_id: MasterDataId = None,
    submitted_from: date | None = None,
    submitted_to: date | None = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> ClaimPage:
    flt = ClaimFilter(
        status=status_.value if status_ else None,
        applicant_id=applicant_id,
        department_id=department_id,
        submitted_from=submitted_from,
        submitted_to=submitted_to,
    )
    items, total = list_claims(hub.db, flt, page, page_size)
    return ClaimPage(items=items, total=total, page=page, page_size=page_size)
