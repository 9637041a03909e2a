"""Approval tasks: decide."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from finoa.api.deps import HubDep, require
from finoa.schemas import DecisionIn
from finoa.security.tokens import Principal
from finoa.services.approvals import task_decision

router = APIRouter(prefix="/tasks", tags=["approvals"])


@router.post("/{task_id}/decision", summary="Approve or reject an approval task")
async def post_decision(
    task_id: str,
    decision: DecisionIn,
    hub: HubDep,
    principal: Annotated[Principal, Depends(require("tasks:decide"))],
) -> dict[str, str]:
    command = task_decision(
        hub, task_id, decision.approver_id, decision.decision == "approve", decision.comment
    )
    result = await hub.commands.run(
        command, actor=f"employee:{decision.approver_id} via client:{principal.client_id}"
    )
    return {
        "task_id": result.task_id,
        "claim_id": result.claim_id,
        "claim_status": result.claim_status,
    }
