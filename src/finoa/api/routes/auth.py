"""OAuth 2.0 token endpoint (client credentials grant, RFC 6749 §4.4).

Client credentials come as form fields or as HTTP Basic, whose id and secret are form-encoded
before base64 (§2.3.1: `a%3Ab` is the id `a:b`). Every answer carries `Cache-Control:
no-store` (added by `NoStore` in the app). A parameter given twice is refused. Errors are
problems that also carry the OAuth `error` code (§5.2). Failed attempts are limited per
client id and per remote address; a lockout is written to the audit chain.
"""

from __future__ import annotations

import base64
from typing import Annotated
from urllib.parse import unquote_plus

from fastapi import APIRouter, Form, Request

from finoa.api.deps import HubDep
from finoa.api.json_body import StrictJsonRoute
from finoa.api.limits import AttemptKey, FailedAttempts
from finoa.api.problems import ApiProblem, problem_responses
from finoa.schemas import TokenOut, line_text
from finoa.security.tokens import TokenError, issue_token
from finoa.services.context import Hub
from finoa.store.uow import UnitOfWork

router = APIRouter(tags=["auth"], route_class=StrictJsonRoute)

# The longest value each form field may have.
MAX_LENGTH = {"grant_type": 64, "client_id": 64, "client_secret": 512, "scope": 500}
TITLES = {
    "invalid_request": "Invalid request",
    "invalid_client": "Invalid client",
    "invalid_scope": "Invalid scope",
    "unsupported_grant_type": "Unsupported grant type",
    "temporarily_unavailable": "Too many failed attempts",
}


def oauth_error(
    status: int,
    error: str,
    field: str,
    reason: str,
    *,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
) -> ApiProblem:
    """A problem that is also an OAuth error response (`error`, `error_description`)."""
    detail = f"{field}: {reason}"
    return ApiProblem(
        status,
        TITLES[error],
        detail,
        kind=kind or error.replace("_", "-"),
        field=field,
        headers=headers,
        extra={"error": error, "error_description": detail},
    )


def _checked(field: str, value: str) -> str:
    """A credential or parameter of sane length without control characters."""
    if len(value) > MAX_LENGTH[field]:
        raise oauth_error(
            400, "invalid_request", field, f"longer than {MAX_LENGTH[field]} characters"
        )
    try:
        return line_text(value)
    except ValueError as exc:
        raise oauth_error(400, "invalid_request", field, str(exc)) from None


def basic_credentials(credentials: str) -> tuple[str, str]:
    """Client id and secret from the part of a Basic header after `Basic `."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        client_id, colon, secret = decoded.partition(":")
        if not colon:
            raise ValueError("no colon")
        return unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict")
    except ValueError:
        raise oauth_error(
            400,
            "invalid_request",
            "authorization",
            "malformed Basic credentials (base64 of form-encoded id:secret)",
        ) from None


async def _lockout_audited(hub: Hub, key: AttemptKey, limiter: FailedAttempts) -> None:
    kind, who = key
    data = {
        "failures": limiter.max_failures,
        "window_seconds": limiter.window_seconds,
        "lockout_seconds": limiter.lockout_seconds,
    }

    def record(uow: UnitOfWork) -> None:
        uow.audit("auth.locked_out", kind, who, data)

    await hub.db.run(hub.db.perform, record, actor="system")


@router.post(
    "/oauth/token",
    summary="Issue a short-lived access token to a system client",
    response_model=TokenOut,
    responses=problem_responses(400, 401, 413, 422, 429),
)
async def token(
    request: Request,
    hub: HubDep,
    grant_type: Annotated[str | None, Form(description="client_credentials")] = None,
    client_id: Annotated[str | None, Form(description="unless sent as HTTP Basic")] = None,
    client_secret: Annotated[str | None, Form(description="unless sent as HTTP Basic")] = None,
    scope: Annotated[str | None, Form(description="space-separated; default all")] = None,
) -> TokenOut:
    form = await request.form()
    for name in MAX_LENGTH:
        if len(form.getlist(name)) > 1:
            raise oauth_error(400, "invalid_request", name, "is given more than once")
    if grant_type is None:
        raise oauth_error(400, "invalid_request", "grant_type", "is required")
    if _checked("grant_type", grant_type) != "client_credentials":
        raise oauth_error(
            400, "unsupported_grant_type", "grant_type", "only client_credentials is supported"
        )
    header = request.headers.get("authorization", "")
    basic = header[:6].lower() == "basic "
    if basic:
        if client_secret is not None:
            raise oauth_error(
                400,
                "invalid_request",
                "client_secret",
                "give the client credentials either as Basic or in the body, not both",
            )
        client_id, client_secret = basic_credentials(header[6:])
    if not client_id or not client_secret:
        raise oauth_error(400, "invalid_client", "client_id", "client credentials are required")
    client_id = _checked("client_id", client_id)
    client_secret = _checked("client_secret", client_secret)
    if scope is not None:
        scope = _checked("scope", scope)

    limiter: FailedAttempts = request.app.state.failed_attempts
    address = request.client.host if request.client else "unknown"
    keys: list[AttemptKey] = [("client", client_id), ("address", address)]
    wait = limiter.retry_after(keys)
    if wait is not None:
        raise oauth_error(
            429,
            "temporarily_unavailable",
            "client_id",
            f"too many failed attempts; locked for another {wait} s",
            kind="too-many-failures",
            headers={"Retry-After": str(wait)},
        )
    try:
        access_token, expires_in, granted = issue_token(
            hub.settings, client_id, client_secret, scope
        )
    except TokenError as exc:
        if str(exc) == "invalid_scope":
            raise oauth_error(
                400, "invalid_scope", "scope", "asks for scopes the client does not have"
            ) from None
        for key in limiter.failed(keys):
            await _lockout_audited(hub, key, limiter)
        raise oauth_error(
            401,
            "invalid_client",
            "client_secret",
            "unknown client or wrong secret",
            headers={"WWW-Authenticate": 'Basic realm="finoa"'} if basic else None,
        ) from None
    limiter.succeeded(("client", client_id))
    return TokenOut(
        access_token=access_token, token_type="Bearer", expires_in=expires_in, scope=granted
    )
