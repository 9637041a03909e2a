"""Request dependencies: the hub, and the caller's identity and scopes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from finoa.api.problems import ApiProblem
from finoa.security.tokens import Principal, TokenError, verify_token
from finoa.services.context import Hub


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


def _principal(request: Request, hub: HubDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
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


def require(scope: str) -> Callable[..., Principal]:
    """A dependency that admits callers whose token carries `scope`."""

    def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not principal.has(scope):
            raise ApiProblem(
                403,
                "Forbidden",
                f"authorization: the token lacks the scope {scope}",
                kind="insufficient-scope",
                field="authorization",
            )
        return principal

    return check
