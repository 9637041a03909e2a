"""Request dependencies: the hub, and the caller's identity and scopes.

All are `async def`: they only read memory (tokens are verified by a cached HMAC check), and
a plain `def` dependency would cost every request a hop to the thread pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from finoa.api.problems import ApiProblem
from finoa.security.tokens import Principal, TokenError, verify_token
from finoa.services.context import Hub


async def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


async def _principal(request: Request, hub: HubDep) -> Principal:
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


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits callers whose token carries `scope`."""

    async def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
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
