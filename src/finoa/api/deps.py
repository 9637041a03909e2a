"""Request dependencies: the hub, and the caller's identity and scopes.

All are `async def`: they only read memory (tokens are verified by a cached HMAC check), and
a plain `def` dependency would cost every request a hop to the thread pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2

from finoa.api.problems import ApiProblem
from finoa.security.tokens import Principal, TokenError, verify_token
from finoa.services.context import Hub

TOKEN_URL = "/api/v1/oauth/token"
SCOPES = {
    "claims:read": "Read claims with their tasks and voucher",
    "claims:write": "Submit claims",
    "tasks:decide": "Approve or reject approval tasks",
    "ops:read": "Read loop statistics and dead letters",
    "ops:replay": "Send dead letters again",
    "budgets:read": "Read budgets and their execution report",
    "budgets:manage": "Import budgets, request adjustments and transfers",
    "budgets:approve": "Approve or reject budget adjustments and transfers of others",
    "processes:read": "List and export process definitions",
    "processes:manage": "Deploy process definitions (BPMN 2.0 + DMN)",
}

# Declares the client-credentials flow in the OpenAPI document; the header itself is checked
# below, so that every refusal is a problem naming the authorization header.
client_credentials = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(tokenUrl=TOKEN_URL, scopes=SCOPES)
    ),
    scheme_name="clientCredentials",
    description="OAuth 2.0 client credentials: POST the client id and secret to the token URL, "
    "send the access token as `Authorization: Bearer <token>`.",
    auto_error=False,
)


async def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


async def _principal(
    hub: HubDep, header: Annotated[str | None, Depends(client_credentials)]
) -> Principal:
    return authenticate(hub, header)


def authenticate(hub: Hub, header: str | None) -> Principal:
    """The caller of an `Authorization: Bearer <token>` header; ApiProblem 401 naming
    `authorization` when it is missing or the token is not valid."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiProblem(
            401,
            "Unauthorized",
            "authorization: a bearer token is required (POST /api/v1/oauth/token)",
            kind="unauthorized",
            field="authorization",
            headers={"WWW-Authenticate": 'Bearer realm="finoa"'},
        )
    try:
        return verify_token(hub.settings, token.strip())
    except TokenError as exc:
        raise ApiProblem(
            401,
            "Unauthorized",
            f"authorization: {exc}",
            kind="unauthorized",
            field="authorization",
            headers={"WWW-Authenticate": 'Bearer realm="finoa", error="invalid_token"'},
        ) from None


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits callers whose token carries `scope`."""

    # A default rather than Annotated: annotations are strings here, and `scope` is local.
    async def check(principal: Principal = Security(_principal, scopes=[scope])) -> Principal:
        return authorize(principal, scope)

    return check


def authorize(principal: Principal, scope: str) -> Principal:
    """`principal` when its token carries `scope`; else ApiProblem 403 naming `authorization`."""
    if not principal.has(scope):
        raise ApiProblem(
            403,
            "Forbidden",
            f"authorization: the token lacks the scope {scope}",
            kind="insufficient-scope",
            field="authorization",
        )
    return principal
