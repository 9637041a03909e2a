"""finoa's claims Web Service for OA systems that push claims by SOAP (F2).

`GET /soap/v1/claims?wsdl` serves the WSDL; `POST /soap/v1/claims` takes SOAP 1.1 calls:

- `SubmitClaim(message_id?, claim)`: the same command as `POST /api/v1/claims`, through the
  group commit: the same validation, master-data checks, idempotency (the `message_id` is the
  REST `Idempotency-Key`: same inbox, same content digests, same 409 on other content) and
  audit (the actor is `client:<client id>`).
- `GetClaimStatus(claim_id | external_id)`: the claim's status and voucher numbers.

Callers authenticate with the REST API's access token (`Authorization: Bearer`), needing
`claims:write` to submit and `claims:read` to query. Every refusal is a SOAP fault whose
`faultstring` is `field: reason` and whose `detail` holds the problem document. Faults
travel with HTTP 500, as SOAP 1.1 and the WS-I Basic Profile require, except a missing or
invalid token (HTTP 401); the problem's own status (400, 403, 404, 409, 422, 503) is in the
detail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from finoa.api.deps import HubDep, authenticate, authorize
from finoa.api.problems import (
    ApiProblem,
    domain_problem,
    problem_body,
    unknown_outcome_problem,
    validation_problem_body,
)
from finoa.api.soap_wsdl import CLAIM_LISTS, CLAIMS_NS, claims_wsdl
from finoa.domain.errors import DomainError
from finoa.schemas import ID, ClaimOut, ClaimSubmission, line_text
from finoa.security.tokens import Principal
from finoa.services.claims import claim_submission
from finoa.services.context import Hub
from finoa.services.queries import get_claim, latest_claim_id
from finoa.soap.envelope import (
    SOAP_CONTENT_TYPE,
    SoapCall,
    SoapRequestError,
    element_data,
    fault_envelope,
    read_call,
    response_envelope,
)
from finoa.store.errors import CommitOutcomeUnknown

SOAP_PATH = "/soap/v1/claims"
router = APIRouter(include_in_schema=False)
MessageId = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(line_text)]


class _SoapIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SubmitClaimIn(_SoapIn):
    message_id: MessageId | None = None
    claim: ClaimSubmission


class ClaimStatusIn(_SoapIn):
    claim_id: str | None = Field(default=None, min_length=1, max_length=40, pattern=ID)
    external_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=ID)

    @model_validator(mode="after")
    def _one_of(self) -> ClaimStatusIn:
        if (self.claim_id is None) == (self.external_id is None):
            raise ValueError("claim_id: give either claim_id or external_id")
        return self


@dataclass(frozen=True)
class Operation:
    scope: str
    run: Callable[[Hub, Principal, dict[str, Any]], Awaitable[Mapping[str, Any]]]


async def submit_claim(hub: Hub, principal: Principal, data: dict[str, Any]) -> Mapping[str, Any]:
    request = SubmitClaimIn.model_validate(data)
    command = claim_submission(
        hub, request.claim, principal.client_id, request.message_id, key_field="message_id"
    )
    result = await hub.commands.run(command, actor=f"client:{principal.client_id}")
    claim = result.claim
    if claim is None:
        claim = await hub.db.run(get_claim, hub.db, result.claim_id)
    return {
        "claim_id": claim.id,
        "status": claim.status.value,
        "duplicate": result.duplicate,
        "total_fen": claim.total_fen,
    }


async def claim_status(hub: Hub, principal: Principal, data: dict[str, Any]) -> Mapping[str, Any]:
    request = ClaimStatusIn.model_validate(data)
    claim_id = request.claim_id
    if claim_id is None:
        assert request.external_id is not None
        claim_id = await hub.db.run(
            latest_claim_id, hub.db, principal.client_id, request.external_id
        )
    claim: ClaimOut = await hub.db.run(get_claim, hub.db, claim_id)
    voucher = claim.voucher
    return {
        "claim_id": claim.id,
        "external_id": claim.external_id,
        "version": claim.version,
        "status": claim.status.value,
        "reason": claim.reason,
        "total_fen": claim.total_fen,
        "voucher_no": voucher.voucher_no if voucher else None,
        "erp_voucher_no": voucher.erp_voucher_no if voucher else None,
        "updated_at": claim.updated_at.isoformat(),
    }


OPERATIONS = {
    "SubmitClaim": Operation("claims:write", submit_claim),
    "GetClaimStatus": Operation("claims:read", claim_status),
}


def _soap_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A claim's fields are named as in REST (`lines[0].amount`), without the `claim` wrapper."""
    if len(loc) > 1 and loc[0] == "claim":
        return loc[1:]
    return loc


def _fault(problem: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    status = 401 if problem.get("status") == 401 else 500
    return Response(
        fault_envelope(CLAIMS_NS, problem),
        status_code=status,
        media_type=SOAP_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


@router.get(SOAP_PATH)
async def wsdl(request: Request) -> Response:
    """The WSDL (any GET of the service URL, by custom `?wsdl`)."""
    location = str(request.url.replace(query="", fragment=""))
    return Response(claims_wsdl(location), media_type=SOAP_CONTENT_TYPE)


@router.post(SOAP_PATH)
async def call(request: Request, hub: HubDep) -> Response:
    try:
        soap = read_call(await request.body(), max_bytes=hub.settings.max_body_bytes)
        operation = _operation(soap)
        principal = authorize(
            authenticate(hub, request.headers.get("authorization")), operation.scope
        )
        data = element_data(soap.element, CLAIMS_NS, CLAIM_LISTS)
        values = await operation.run(hub, principal, data)
    except SoapRequestError as exc:
        return _fault(
            problem_body(
                400, "Malformed SOAP request", str(exc), kind="malformed-soap", field=exc.field
            )
        )
    except ValidationError as exc:
        errors = [{**e, "loc": _soap_loc(tuple(e["loc"]))} for e in exc.errors()]
        return _fault(validation_problem_body(errors))
    except ApiProblem as exc:
        body = problem_body(exc.status, exc.title, exc.detail, kind=exc.kind, field=exc.field)
        return _fault(body, exc.headers)
    except DomainError as exc:
        return _fault(domain_problem(exc))
    except CommitOutcomeUnknown as exc:
        return _fault(unknown_outcome_problem(exc), {"Retry-After": str(exc.retry_after_seconds)})
    return Response(
        response_envelope(CLAIMS_NS, f"{soap.operation}Response", values),
        media_type=SOAP_CONTENT_TYPE,
    )


def _operation(soap: SoapCall) -> Operation:
    operation = OPERATIONS.get(soap.operation)
    if soap.namespace != CLAIMS_NS or operation is None:
        raise SoapRequestError(
            "Body",
            f"unknown operation {{{soap.namespace}}}{soap.operation}; "
            f"this service offers {', '.join(OPERATIONS)} in {CLAIMS_NS}",
        )
    return operation
