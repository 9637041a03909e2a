"""Inbound webhooks: `POST /api/v1/webhooks/{instance}`, one endpoint per connector instance.

The route is the same for every vendor: it hands the raw request to the instance's inbound
handler (`finoa.connectors.base.InboundHandler`), which verifies and decrypts it and parses
it into canonical commands; the route applies each command through the group commit (one
failing does not hold back the others) and returns the reply the handler builds from the
outcomes. The handler may ask which claim an OA approval id belongs to (`known_approval`),
so that a callback about an approval finoa knows needs no call back to the vendor. An
instance that is not configured, or takes no webhooks, is a 404 naming
`instance`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader

from finoa.api.deps import HubDep
from finoa.api.json_body import parse_json
from finoa.api.problems import (
    ApiProblem,
    domain_problem,
    problem_body,
    problem_responses,
    unknown_outcome_problem,
)
from finoa.connectors.base import (
    CommandOutcome,
    InboundCommand,
    InboundInvalid,
    InboundRefused,
    InboundRequest,
)
from finoa.connectors.generic_oa.inbound import OAEvent
from finoa.connectors.instances import ConnectorInstances
from finoa.domain.errors import DomainError
from finoa.services.context import Hub
from finoa.services.inbound import command_write
from finoa.services.oa_approvals import known_approval_claim
from finoa.store.errors import CommitOutcomeUnknown

__all__ = ["OAEvent", "router_for"]

# Declares the signature in the OpenAPI document; the instance's handler checks it.
signed = APIKeyHeader(
    name="webhook-signature",
    scheme_name="webhookSignature",
    description="Standard Webhooks: `v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the "
    "headers webhook-id and webhook-timestamp (seconds, plain digits)",
    auto_error=False,
)

log = logging.getLogger(__name__)


def router_for(instances: ConnectorInstances) -> APIRouter:
    """A documented endpoint per instance that takes webhooks, and a 404 for any other."""
    router = APIRouter(prefix="/webhooks", tags=["webhooks"])
    for name, instance in instances.instances.items():
        if instance.inbound is None:
            continue
        model = type(instance.inbound).request_model
        body = {"$ref": f"#/components/schemas/{model.__name__}"} if model is not None else {}
        router.add_api_route(
            f"/{name}",
            _endpoint(name),
            methods=["POST"],
            name=f"webhook_{name}",
            summary=f"Claims and decisions from the {instance.connector} instance {name}",
            dependencies=[Depends(signed)],
            response_model=dict[str, Any],
            responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
            # The body is read raw (the signature covers its bytes), so it is declared here.
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body}},
                }
            },
        )

    @router.post("/{instance}", include_in_schema=False)
    async def unknown(instance: str, request: Request, hub: HubDep) -> Response:
        return await receive(hub, instance, request)

    # A vendor's URL check is a GET (WeCom's `echostr`); the instance's handler answers it.
    @router.get("/{instance}", include_in_schema=False)
    async def url_check(instance: str, request: Request, hub: HubDep) -> Response:
        return await receive(hub, instance, request)

    return router


def _endpoint(instance: str) -> Callable[..., Any]:
    async def webhook(request: Request, hub: HubDep) -> Response:
        return await receive(hub, instance, request)

    return webhook


async def receive(hub: Hub, instance: str, request: Request) -> Response:
    """Verify, parse, apply, reply: the same steps for every connector."""
    handler = hub.instances.inbound(instance)
    if handler is None:
        raise ApiProblem(
            404,
            "Unknown instance",
            f"instance: no connector instance named {instance!r} takes webhooks",
            kind="unknown-instance",
            field="instance",
        )

    async def known_approval(approval_id: str) -> str | None:
        return await hub.db.run(known_approval_claim, hub.db, instance, approval_id)

    inbound = InboundRequest(
        instance=instance,
        headers=dict(request.headers.items()),
        body=await request.body(),
        query=dict(request.query_params.items()),
        read_json=parse_json,
        known_approval=known_approval,
    )
    try:
        message = await handler.verify(inbound)
    except InboundRefused as exc:
        raise ApiProblem(
            exc.status, exc.title, exc.detail, kind=exc.kind, field=exc.field
        ) from None
    try:
        parsed = await handler.parse(message)
    except InboundInvalid as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors]
        raise RequestValidationError(errors) from None
    except InboundRefused as exc:  # e.g. the OA could not be asked for what the event names
        raise ApiProblem(
            exc.status, exc.title, exc.detail, kind=exc.kind, field=exc.field
        ) from None
    outcomes = await asyncio.gather(*(_apply(hub, instance, c) for c in parsed.commands))
    reply = handler.reply(parsed, outcomes)
    return Response(
        reply.body, status_code=reply.status, media_type=reply.media_type, headers=reply.headers
    )


async def _apply(hub: Hub, instance: str, command: InboundCommand) -> CommandOutcome:
    """Run one command through the group commit; its failure becomes its outcome, so the
    writes of all a request's commands share one commit and none holds back the others."""
    try:
        write, actor = command_write(hub, instance, command)
        result = await hub.commands.run(write, actor=actor)
    except DomainError as exc:
        return CommandOutcome(command.message_id, exc.status, problem=domain_problem(exc))
    except CommitOutcomeUnknown as exc:
        return CommandOutcome(
            command.message_id,
            503,
            problem=unknown_outcome_problem(exc),
            retry_after_seconds=exc.retry_after_seconds,
        )
    except Exception:
        log.exception("webhook command %s from %s failed", command.message_id, instance)
        problem = problem_body(
            500, "Internal error", "the event could not be applied; retry it", kind="internal"
        )
        return CommandOutcome(command.message_id, 500, problem=problem)
    return CommandOutcome(command.message_id, 200, result=result)
