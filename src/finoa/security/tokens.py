"""OAuth 2.0 client-credentials tokens for systems: short-lived HS256 JWTs with scopes."""

from __future__ import annotations

import functools
import hmac
import time
import uuid
from dataclasses import dataclass

import jwt

from finoa.config import Settings

ISSUER = "finoa"
AUDIENCE = "finoa-api"


class TokenError(Exception):
    """Authentication failed; the message is safe to show (no secrets)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a system client and the scopes it was granted."""

    client_id: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


_NO_CLIENT = _utf8(uuid.uuid4().hex)  # compared against when the client id is unknown


def secret_matches(expected: str | None, given: str) -> bool:
    """Compare secrets as UTF-8 bytes in constant time (any characters, never an error).

    `hmac.compare_digest` refuses str with non-ASCII characters, so text is compared encoded.
    """
    known = expected is not None
    reference = _utf8(expected) if expected is not None else _NO_CLIENT
    return hmac.compare_digest(reference, _utf8(given)) and known


def issue_token(
    settings: Settings, client_id: str, client_secret: str, requested: str | None = None
) -> tuple[str, int, str]:
    """Check client credentials and mint a token; returns (token, expires_in, scope)."""
    client = settings.client(client_id)
    if not secret_matches(client.secret if client else None, client_secret) or client is None:
        raise TokenError("invalid_client")
    granted = set(client.scopes)
    if requested:
        wanted = set(requested.split())
        if not wanted <= granted:
            raise TokenError("invalid_scope")
        granted = wanted
    now = int(time.time())
    ttl = settings.token_ttl_seconds
    scope = " ".join(sorted(granted))
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": client_id,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
        "scope": scope,
    }
    return jwt.encode(claims, settings.token_secret, algorithm="HS256"), ttl, scope


def verify_token(settings: Settings, token: str) -> Principal:
    """The caller behind a bearer token; raises TokenError when it is invalid or expired.

    A token's signature is checked once; later calls with the same token only check expiry.
    """
    principal, expires = _decode(settings.token_secret, token)
    if time.time() >= expires:
        raise TokenError("token expired")
    return principal


@functools.lru_cache(maxsize=4096)
def _decode(secret: str, token: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.PyJWTError:
        raise TokenError("invalid token") from None
    principal = Principal(str(claims["sub"]), frozenset(str(claims.get("scope", "")).split()))
    return principal, float(claims["exp"])
