"""Inbound webhooks from the generic OA connector, verified in the Standard Webhooks style."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from finoa.api.deps import HubDep
from finoa.api.json_body import parse_json
from finoa.api.problems import (
    ApiProblem,
    domain_problem,
    problem_body,
    problem_responses,
    unknown_outcome_problem,
)
from finoa.domain.errors import DomainError
from finoa.schemas import ID, ClaimSubmission, DecisionIn, Line
from finoa.security.signatures import SignatureError, verify
from finoa.services.approvals import task_decision
from finoa.services.claims import claim_submission
from finoa.services.context import Hub
from finoa.store.errors import CommitOutcomeUnknown
from finoa.store.uow import UnitOfWork

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

# Declares the signature in the OpenAPI document; `verify` checks it with its two companion
# headers (webhook-id, webhook-timestamp) over the raw body.
signed = APIKeyHeader(
    name="webhook-signature",
    scheme_name="webhookSignature",
    description="Standard Webhooks: `v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the "
    "headers webhook-id and webhook-timestamp (seconds, plain digits)",
    auto_error=False,
)

SOURCE = "generic-oa"
log = logging.getLogger(__name__)


class TaskDecided(DecisionIn):
    task_id: str = Field(min_length=1, max_length=64, pattern=ID)


class ClaimSubmittedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["claim.submitted"]
    data: ClaimSubmission


class TaskDecidedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["task.decided"]
    data: TaskDecided


MAX_BATCH_EVENTS = 100


class ClaimSubmittedItem(ClaimSubmittedEvent):
    id: Line = Field(min_length=1, max_length=128, description="the event's idempotency key")


class TaskDecidedItem(TaskDecidedEvent):
    id: Line = Field(min_length=1, max_length=128, description="the event's idempotency key")


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[Annotated[ClaimSubmittedItem | TaskDecidedItem, Field(discriminator="type")]] = (
        Field(min_length=1, max_length=MAX_BATCH_EVENTS)
    )

    @model_validator(mode="after")
    def _ids_unique(self) -> EventBatch:
        seen: set[str] = set()
        for i, event in enumerate(self.events):
            if event.id in seen:
                raise ValueError(f"events[{i}].id: repeats the id {event.id!r} within the batch")
            seen.add(event.id)
        return self


class BatchEvent(BaseModel):
    """Several events in one signed delivery; each is deduplicated by its own `id`."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["batch"]
    data: EventBatch


class OAEvent(
    RootModel[
        Annotated[ClaimSubmittedEvent | TaskDecidedEvent | BatchEvent, Field(discriminator="type")]
    ]
):
    """A webhook body: one of the event types, told apart by `type`."""


EVENT_TYPES = ("claim.submitted", "task.decided", "batch")


def parse_event(body: bytes) -> ClaimSubmittedEvent | TaskDecidedEvent | BatchEvent:
    """Parse a webhook body; errors name the field inside the body (e.g. data.lines[0].amount).

    The JSON is first read by `parse_json`, which refuses a repeated key or an exponent
    number; the model then validates the same bytes in JSON mode.
    """
    parse_json(body)
    try:
        return OAEvent.model_validate_json(body).root
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            if error["type"].startswith("union_tag"):
                loc = (*_without_tags(error["loc"]), "type")
            else:
                loc = _without_tags(error["loc"])
            errors.append({**error, "loc": ("body", *loc)})
        raise RequestValidationError(errors) from None


def _without_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the union tags pydantic puts in an error's location."""
    return tuple(part for part in loc if part not in EVENT_TYPES)


@router.post(
    "/generic-oa",
    summary="Claims and decisions from the generic OA connector",
    dependencies=[Depends(signed)],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
    # The body is read raw (the signature covers its bytes), so it is declared here.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAEvent"}}},
        }
    },
)
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
    if isinstance(event, BatchEvent):
        return {"results": await _apply_batch(hub, event.data.events)}
    command, actor = _command(hub, event, message_id)
    return await hub.commands.run(command, actor=actor)


def _command(
    hub: Hub, event: ClaimSubmittedEvent | TaskDecidedEvent, message_id: str
) -> tuple[Callable[[UnitOfWork], dict[str, Any]], str]:
    """The write an event asks for, answering the webhook's body; and who acts."""
    if isinstance(event, ClaimSubmittedEvent):
        submit = claim_submission(hub, event.data, SOURCE, message_id)

        def submitted(uow: UnitOfWork) -> dict[str, Any]:
            result = submit(uow)
            return {"claim_id": result.claim_id, "duplicate": result.duplicate}

        return submitted, f"oa:{SOURCE}"
    decided = event.data
    decide = task_decision(
        hub,
        decided.task_id,
        decided.approver_id,
        decided.decision == "approve",
        decided.comment,
        SOURCE,
        message_id,
    )

    def decision(uow: UnitOfWork) -> dict[str, Any]:
        outcome = decide(uow)
        return {
            "task_id": outcome.task_id,
            "claim_id": outcome.claim_id,
            "claim_status": outcome.claim_status,
            "duplicate": outcome.duplicate,
        }

    return decision, f"employee:{decided.approver_id} via oa:{SOURCE}"


async def _apply_batch(
    hub: Hub, events: list[ClaimSubmittedItem | TaskDecidedItem]
) -> list[dict[str, Any]]:
    """Each event on its own: one failing does not hold back the others. The writes of all
    of them share the group commit, so a batch costs about one transaction."""

    async def one(event: ClaimSubmittedItem | TaskDecidedItem) -> dict[str, Any]:
        try:
            command, actor = _command(hub, event, event.id)
            result = await hub.commands.run(command, actor=actor)
        except DomainError as exc:
            return {"id": event.id, "status": exc.status, "problem": domain_problem(exc)}
        except CommitOutcomeUnknown as exc:
            return {"id": event.id, "status": 503, "problem": unknown_outcome_problem(exc)}
        except Exception:
            log.exception("webhook event %s failed", event.id)
            problem = problem_body(
                500, "Internal error", "the event could not be applied; retry it", kind="internal"
            )
            return {"id": event.id, "status": 500, "problem": problem}
        return {"id": event.id, "status": 200, "result": result}

    return list(await asyncio.gather(*(one(event) for event in events)))
