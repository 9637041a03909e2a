"""Approval patterns beyond a decision: resubmitting a returned claim, delegations (委托)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field, model_validator

from finoa.api.deps import HubDep, require
from finoa.api.json_body import StrictJsonRoute
from finoa.api.problems import problem_responses
from finoa.domain.claim import ClaimStatus
from finoa.schemas import ID, DecisionResult, Line, Paragraph, UtcDatetime, _In
from finoa.security.tokens import Principal
from finoa.services.approvals import resubmission
from finoa.services.delegations import (
    MAX_DELEGATION_DAYS,
    list_delegations,
    revoke_delegation,
    set_delegation,
)

router = APIRouter(tags=["approvals"], route_class=StrictJsonRoute)


class ResubmissionIn(_In):
    """The applicant sends a returned claim (已退回) back into approval."""

    applicant_id: Line = Field(min_length=1, max_length=32, title="申请人")
    comment: Paragraph | None = Field(default=None, max_length=1000, title="说明")


class DelegationIn(_In):
    """A delegation (委托): from `starts_on` to `ends_on` (company dates, inclusive) the
    delegator's new approval tasks go to the delegate."""

    delegator_id: Line = Field(min_length=1, max_length=32, title="委托人")
    delegate_id: Line = Field(min_length=1, max_length=32, title="受托人")
    starts_on: date = Field(title="开始日期")
    ends_on: date = Field(title="结束日期")
    document_type: Line | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        title="单据类型",
        description="Only this document type (e.g. expense_claim); absent: all",
    )

    @model_validator(mode="after")
    def _window(self) -> DelegationIn:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on: is before starts_on")
        if (self.ends_on - self.starts_on).days >= MAX_DELEGATION_DAYS:
            raise ValueError(f"ends_on: a delegation covers at most {MAX_DELEGATION_DAYS} days")
        if self.delegate_id == self.delegator_id:
            raise ValueError("delegate_id: one cannot delegate to oneself")
        return self


class DelegationOut(BaseModel):
    id: str
    delegator_id: str
    delegate_id: str
    starts_on: date
    ends_on: date
    document_type: str | None
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None


@router.post(
    "/claims/{claim_id}/resubmission",
    summary="Resubmit a claim returned to its applicant (退回后重新提交)",
    response_model=DecisionResult,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def post_resubmission(
    claim_id: Annotated[str, Path(max_length=40, pattern=ID, description="The claim's id")],
    body: ResubmissionIn,
    hub: HubDep,
    principal: Annotated[Principal, Depends(require("claims:write"))],
) -> DecisionResult:
    command = resubmission(hub, claim_id, body.applicant_id, body.comment)
    result = await hub.commands.run(
        command, actor=f"employee:{body.applicant_id} via client:{principal.client_id}"
    )
    return DecisionResult(
        task_id=result.task_id,
        claim_id=result.claim_id,
        claim_status=ClaimStatus(result.claim_status),
    )


@router.post(
    "/delegations",
    summary="Delegate one's approvals for a date window (委托)",
    status_code=201,
    responses=problem_responses(400, 401, 403, 413, 422),
)
async def post_delegation(
    body: DelegationIn,
    hub: HubDep,
    principal: Annotated[Principal, Depends(require("tasks:decide"))],
) -> DelegationOut:
    made = await hub.db.run(
        set_delegation,
        hub.db,
        body.delegator_id,
        body.delegate_id,
        body.starts_on,
        body.ends_on,
        body.document_type,
        actor=f"employee:{body.delegator_id} via client:{principal.client_id}",
    )
    return DelegationOut(**made.__dict__)


@router.get(
    "/delegations",
    summary="Delegations, newest first",
    responses=problem_responses(401, 403, 422),
)
async def get_delegations(
    hub: HubDep,
    _: Annotated[Principal, Depends(require("tasks:decide"))],
    delegator_id: Annotated[
        str | None, Query(max_length=32, pattern=ID, description="Only this delegator's")
    ] = None,
) -> list[DelegationOut]:
    rows = await hub.db.run(list_delegations, hub.db, delegator_id)
    return [DelegationOut(**row.__dict__) for row in rows]


@router.delete(
    "/delegations/{delegation_id}",
    summary="Revoke a delegation now",
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_delegation(
    delegation_id: Annotated[str, Path(max_length=40, pattern=ID)],
    hub: HubDep,
    principal: Annotated[Principal, Depends(require("tasks:decide"))],
) -> DelegationOut:
    done = await hub.db.run(
        revoke_delegation, hub.db, delegation_id, actor=f"client:{principal.client_id}"
    )
    return DelegationOut(**done.__dict__)
