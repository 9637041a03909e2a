"""Approval tasks: decide."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from finoa.api.deps import HubDep, require
from finoa.api.json_body import StrictJsonRoute
from finoa.api.problems import problem_responses
from finoa.domain.claim import ClaimStatus
from finoa.schemas import ID, DecisionIn, DecisionResult
from finoa.security.tokens import Principal
from finoa.services.approvals import task_decision

router = APIRouter(prefix="/tasks", tags=["approvals"], route_class=StrictJsonRoute)


@router.post(
    "/{task_id}/decision",
    summary="Decide an approval task: approve, reject, transfer, add a signer, return, withdraw",
    response_model=DecisionResult,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def post_decision(
    task_id: Annotated[str, Path(max_length=64, pattern=ID, description="The task's id")],
    decision: DecisionIn,
    hub: HubDep,
    principal: Annotated[Principal, Depends(require("tasks:decide"))],
) -> DecisionResult:
    command = task_decision(
        hub,
        task_id,
        decision.approver_id,
        decision.decision == "approve",
        decision.comment,
        action=decision.decision,
        target=decision.target,
        position=decision.position,
    )
    result = await hub.commands.run(
        command, actor=f"employee:{decision.approver_id} via client:{principal.client_id}"
    )
    return DecisionResult(
        task_id=result.task_id,
        claim_id=result.claim_id,
        claim_status=ClaimStatus(result.claim_status),
    )
