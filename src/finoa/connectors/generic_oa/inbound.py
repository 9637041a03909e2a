"""The generic OA's inbound side: Standard Webhooks signatures, its event bodies, its replies.

`verify` checks `webhook-signature` over `{webhook-id}.{webhook-timestamp}.{raw body}` with the
instance's `webhook_secret` (the body is not encrypted). `parse` reads one event
(`claim.submitted`, `task.decided`) or a `batch` of up to 100, each batch event deduplicated
by its own `id`. `reply` answers a single event with its result (or its problem, with the
problem's status), and a batch with one result per event, in order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from finoa.connectors.base import (
    CommandOutcome,
    DecideTask,
    InboundCommand,
    InboundInvalid,
    InboundMessage,
    InboundParse,
    InboundRefused,
    InboundReply,
    InboundRequest,
    SubmitClaim,
)
from finoa.connectors.generic_oa.manifest import DEFAULT_TOLERANCE_SECONDS
from finoa.schemas import ID, ClaimSubmission, DecisionIn, Line
from finoa.security.signatures import SignatureError, verify

MAX_BATCH_EVENTS = 100
PROBLEM_JSON = "application/problem+json"


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
    """Validate a webhook body; InboundInvalid's errors name the field inside the body
    (e.g. `data.lines[0].amount`, `data.events[1].type`)."""
    try:
        return OAEvent.model_validate_json(body).root
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            if error["type"].startswith("union_tag"):
                loc = (*_without_tags(error["loc"]), "type")
            else:
                loc = _without_tags(error["loc"])
            errors.append({**error, "loc": loc})
        raise InboundInvalid(errors) from None


def _without_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the union tags pydantic puts in an error's location."""
    return tuple(part for part in loc if part not in EVENT_TYPES)


def _command(event: ClaimSubmittedEvent | TaskDecidedEvent, message_id: str) -> InboundCommand:
    if isinstance(event, ClaimSubmittedEvent):
        return SubmitClaim(message_id, event.data)
    decided = event.data
    return DecideTask(
        message_id,
        decided.task_id,
        decided.approver_id,
        decided.decision == "approve",
        decided.comment,
        None if decided.decision in ("approve", "reject") else decided.decision,
        decided.target,
        decided.position,
    )


class GenericOAInbound:
    """Inbound handler of a `generic-oa` instance (config: `webhook_secret`,
    `webhook_tolerance_seconds`)."""

    request_model: ClassVar[type[BaseModel] | None] = OAEvent

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._secret, self._tolerance = webhook_config(config)

    def __repr__(self) -> str:
        return f"GenericOAInbound(tolerance={self._tolerance})"

    async def verify(self, request: InboundRequest) -> InboundMessage:
        """The Standard Webhooks signature over the raw body; the body is plaintext."""
        return verify_signed(self._secret, self._tolerance, request)

    async def parse(self, message: InboundMessage) -> InboundParse:
        """One command per event: a batch's events under their own ids, a single event under
        the webhook's id. The JSON is read strictly first, then validated as a model."""
        message.request.read_json(message.body)
        event = parse_event(message.body)
        if isinstance(event, BatchEvent):
            commands = tuple(_command(item, item.id) for item in event.data.events)
            return InboundParse(message, commands, context="batch")
        assert message.message_id is not None
        return InboundParse(message, (_command(event, message.message_id),), context="single")

    async def aclose(self) -> None:
        """Nothing to release: the generic OA's callbacks say everything (no calls back)."""

    def reply(self, parsed: InboundParse, outcomes: Sequence[CommandOutcome]) -> InboundReply:
        """A batch: `{"results": [...]}` with 200. A single event: its result with 200, or
        its problem with the problem's status (and Retry-After when it says when)."""
        if parsed.context == "batch":
            results = [_batch_result(outcome) for outcome in outcomes]
            return InboundReply(200, _json_bytes({"results": results}))
        (outcome,) = outcomes
        return single_reply(outcome)


def webhook_config(config: Mapping[str, Any]) -> tuple[str, int]:
    """`webhook_secret` and `webhook_tolerance_seconds` of an instance whose webhooks are
    signed the Standard Webhooks way; ValueError naming the bad field."""
    secret = config.get("webhook_secret")
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise ValueError("webhook_secret: required, `whsec_` + base64 of the key bytes")
    tolerance = config.get("webhook_tolerance_seconds", DEFAULT_TOLERANCE_SECONDS)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 1:
        raise ValueError("webhook_tolerance_seconds: must be a positive whole number")
    return secret, tolerance


def verify_signed(secret: str, tolerance: int, request: InboundRequest) -> InboundMessage:
    """Check the Standard Webhooks signature over the raw body (plaintext); InboundRefused
    (401) naming the header that is wrong."""
    try:
        message_id = verify(secret, dict(request.headers), request.body, tolerance=tolerance)
    except SignatureError as exc:
        raise InboundRefused(
            401, "Invalid signature", str(exc), kind="invalid-signature", field=exc.field
        ) from None
    return InboundMessage(request, message_id, request.body)


def single_reply(outcome: CommandOutcome) -> InboundReply:
    """One event's answer: its result with 200, or its problem with the problem's status
    (and Retry-After when it says when)."""
    if outcome.ok:
        return InboundReply(outcome.status, _json_bytes(outcome.result or {}))
    headers = {}
    if outcome.retry_after_seconds is not None:
        headers["retry-after"] = str(outcome.retry_after_seconds)
    return InboundReply(outcome.status, _json_bytes(outcome.problem or {}), PROBLEM_JSON, headers)


def _batch_result(outcome: CommandOutcome) -> dict[str, Any]:
    if outcome.ok:
        return {"id": outcome.message_id, "status": outcome.status, "result": outcome.result}
    return {"id": outcome.message_id, "status": outcome.status, "problem": outcome.problem}


def _json_bytes(value: dict[str, Any]) -> bytes:
    # A problem may quote what the caller sent, lone surrogates included: those are written
    # as JSON escapes rather than failing to encode.
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")
