"""Inbound webhooks from the generic OA connector, verified in the Standard Webhooks style."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from finoa.api.deps import HubDep
from finoa.api.problems import ApiProblem
from finoa.schemas import ClaimSubmission, DecisionIn
from finoa.security.signatures import SignatureError, verify
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

SOURCE = "generic-oa"


class TaskDecided(DecisionIn):
    task_id: str = Field(min_length=1, max_length=64)


class ClaimSubmittedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["claim.submitted"]
    data: ClaimSubmission


class TaskDecidedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["task.decided"]
    data: TaskDecided


class OAEvent(
    RootModel[Annotated[ClaimSubmittedEvent | TaskDecidedEvent, Field(discriminator="type")]]
):
    """A webhook body: one of the event types, told apart by `type`."""


EVENT_TYPES = ("claim.submitted", "task.decided")


def parse_event(body: bytes) -> ClaimSubmittedEvent | TaskDecidedEvent:
    """Parse a webhook body; errors name the field inside the body (e.g. data.lines[0].amount)."""
    try:
        return OAEvent.model_validate_json(body).root
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            if loc and loc[0] in EVENT_TYPES:
                loc = loc[1:]
            elif error["type"].startswith("union_tag"):
                loc = ("type",)
            errors.append({**error, "loc": ("body", *loc)})
        raise RequestValidationError(errors) from None


@router.post("/generic-oa", summary="Claims and decisions from the generic OA connector")
async def generic_oa(request: Request, hub: HubDep) -> dict[str, Any]:
    body = await request.body()
    try:
        message_id = verify(
            hub.settings.oa_webhook_secret,
            {k: v for k, v in request.headers.items()},
            body,
            tolerance=hub.settings.webhook_tolerance_seconds,
        )
    except SignatureError as exc:
        raise ApiProblem(
            401, "Invalid signature", str(exc), kind="invalid-signature", field=exc.field
        ) from None
    event = parse_event(body)
    if isinstance(event, ClaimSubmittedEvent):
        result = await hub.db.run(
            submit_claim,
            hub,
            event.data,
            source=SOURCE,
            actor=f"oa:{SOURCE}",
            message_id=message_id,
        )
        return {"claim_id": result.claim_id, "duplicate": result.duplicate}
    decided = event.data
    outcome = await hub.db.run(
        decide_task,
        hub,
        decided.task_id,
        decided.approver_id,
        decided.decision == "approve",
        decided.comment,
        actor=f"employee:{decided.approver_id} via oa:{SOURCE}",
        source=SOURCE,
        message_id=message_id,
    )
    return {
        "task_id": outcome.task_id,
        "claim_id": outcome.claim_id,
        "claim_status": outcome.claim_status,
        "duplicate": outcome.duplicate,
    }
