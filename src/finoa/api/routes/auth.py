"""OAuth 2.0 token endpoint (client credentials grant)."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Form, Request

from finoa.api.deps import HubDep
from finoa.api.problems import ApiProblem
from finoa.security.tokens import TokenError, issue_token

router = APIRouter(tags=["auth"])


@router.post("/oauth/token", summary="Issue a short-lived access token to a system client")
def token(
    request: Request,
    hub: HubDep,
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form()] = None,
) -> dict[str, object]:
    if grant_type != "client_credentials":
        raise ApiProblem(
            400,
            "Unsupported grant type",
            "grant_type: only client_credentials is supported",
            kind="unsupported-grant-type",
            field="grant_type",
        )
    basic = request.headers.get("authorization", "")
    if basic.lower().startswith("basic "):
        try:
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        except ValueError:
            raise ApiProblem(
                400,
                "Invalid client",
                "authorization: malformed Basic credentials",
                kind="invalid-client",
                field="authorization",
            ) from None
    if not client_id or not client_secret:
        raise ApiProblem(
            400,
            "Invalid client",
            "client_id: client credentials are required",
            kind="invalid-client",
            field="client_id",
        )
    try:
        access_token, expires_in, granted = issue_token(
            hub.settings, client_id, client_secret, scope
        )
    except TokenError as exc:
        if str(exc) == "invalid_scope":
            raise ApiProblem(
                400,
                "Invalid scope",
                "scope: asks for scopes the client does not have",
                kind="invalid-scope",
                field="scope",
            ) from None
        raise ApiProblem(
            401,
            "Invalid client",
            "client_secret: unknown client or wrong secret",
            kind="invalid-client",
            field="client_secret",
        ) from None
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": granted,
    }
