"""`finoa token`: a bearer token for an API client, from the command line.

The token is the one `POST /api/v1/oauth/token` would issue the client (same signing key,
lifetime and scopes), minted with this installation's settings, so that someone holding the
data dir can call the API without typing a client secret:
`curl -H "Authorization: Bearer $(finoa token)" http://127.0.0.1:8700/api/v1/claims`.
"""

from __future__ import annotations

from finoa.cli_errors import CliError, ExitCode
from finoa.config import Settings
from finoa.security.tokens import TokenError, issue_token


def client_token(settings: Settings, client_id: str, scope: str | None) -> str:
    """A token for `client_id` with `scope` (all its scopes when None); a CliError naming
    the option for an unknown client or a scope it lacks."""
    client = settings.client(client_id)
    if client is None:
        known = ", ".join(sorted(c.client_id for c in settings.clients))
        raise CliError(
            ExitCode.BAD_INPUT,
            f"--client: no API client named {client_id!r}",
            f"use one of {known} (FINOA_CLIENTS or clients: in the config file)",
        )
    try:
        token, _, _ = issue_token(settings, client.client_id, client.secret, scope)
    except TokenError:
        raise CliError(
            ExitCode.BAD_INPUT,
            f"--scope: {client_id} may not have {scope!r}",
            f"ask for some of its scopes, separated by spaces: {' '.join(client.scopes)}",
        ) from None
    return token
