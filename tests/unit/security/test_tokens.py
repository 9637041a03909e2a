"""Tests for finoa.security.tokens: client-credentials JWTs with scopes."""

from __future__ import annotations

import time
from dataclasses import replace

import jwt
import pytest

from finoa.config import ApiClient, Settings
from finoa.security.tokens import (
    AUDIENCE,
    ISSUER,
    Principal,
    TokenError,
    issue_token,
    verify_token,
)

SETTINGS = Settings(
    token_secret="x" * 32,
    clients=(ApiClient("c1", "s1", ("claims:read", "claims:write")),),
)


def test_round_trip_grants_all_client_scopes() -> None:
    token, expires_in, scope = issue_token(SETTINGS, "c1", "s1")
    assert expires_in == SETTINGS.token_ttl_seconds == 900
    assert scope == "claims:read claims:write"
    principal = verify_token(SETTINGS, token)
    assert principal == Principal("c1", frozenset({"claims:read", "claims:write"}))


def test_token_claims() -> None:
    before = int(time.time())
    token, _, _ = issue_token(SETTINGS, "c1", "s1")
    claims = jwt.decode(token, "x" * 32, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["iss"] == ISSUER == "finoa"
    assert claims["aud"] == AUDIENCE == "finoa-api"
    assert claims["sub"] == "c1"
    assert claims["exp"] - claims["iat"] == 900
    assert before <= claims["iat"] <= int(time.time())
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_each_token_has_a_unique_jti() -> None:
    a, _, _ = issue_token(SETTINGS, "c1", "s1")
    b, _, _ = issue_token(SETTINGS, "c1", "s1")
    options = {"verify_signature": False}
    assert jwt.decode(a, options=options)["jti"] != jwt.decode(b, options=options)["jti"]


def test_wrong_secret_is_invalid_client() -> None:
    with pytest.raises(TokenError) as info:
        issue_token(SETTINGS, "c1", "wrong")
    assert str(info.value) == "invalid_client"


def test_unknown_client_is_invalid_client() -> None:
    with pytest.raises(TokenError) as info:
        issue_token(SETTINGS, "nobody", "s1")
    assert str(info.value) == "invalid_client"


@pytest.mark.parametrize("requested", ["ops:replay", "claims:read ops:replay", "claims"])
def test_requesting_a_scope_not_granted_is_invalid_scope(requested: str) -> None:
    with pytest.raises(TokenError) as info:
        issue_token(SETTINGS, "c1", "s1", requested)
    assert str(info.value) == "invalid_scope"


def test_requested_scopes_narrow_the_token() -> None:
    token, _, scope = issue_token(SETTINGS, "c1", "s1", "claims:read")
    assert scope == "claims:read"
    principal = verify_token(SETTINGS, token)
    assert principal.scopes == frozenset({"claims:read"})
    assert principal.has("claims:read")
    assert not principal.has("claims:write")


def test_requested_scopes_are_normalised() -> None:
    _, _, scope = issue_token(SETTINGS, "c1", "s1", "claims:write  claims:read claims:write")
    assert scope == "claims:read claims:write"


def test_expired_token_is_refused() -> None:
    expired = replace(SETTINGS, token_ttl_seconds=-10)
    token, expires_in, _ = issue_token(expired, "c1", "s1")
    assert expires_in == -10
    with pytest.raises(TokenError) as info:
        verify_token(SETTINGS, token)
    assert str(info.value) == "token expired"


def test_token_signed_with_another_secret_is_refused() -> None:
    other = replace(SETTINGS, token_secret="y" * 32)
    token, _, _ = issue_token(other, "c1", "s1")
    with pytest.raises(TokenError) as info:
        verify_token(SETTINGS, token)
    assert str(info.value) == "invalid token"


def _forge(claims: dict, *, secret: str = "x" * 32, algorithm: str = "HS256") -> str:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "c1", "iat": now, "exp": now + 60}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, secret, algorithm)


def test_forged_token_with_right_secret_is_accepted() -> None:
    assert verify_token(SETTINGS, _forge({"scope": "a b"})) == Principal("c1", frozenset("ab"))


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "someone-else"},
        {"iss": "not-finoa"},
        {"exp": None},
        {"iat": None},
        {"sub": None},
        {"aud": None},
        {"iss": None},
    ],
)
def test_wrong_or_missing_registered_claims_are_refused(claims: dict) -> None:
    with pytest.raises(TokenError) as info:
        verify_token(SETTINGS, _forge(claims))
    assert str(info.value) == "invalid token"


def test_other_algorithms_are_refused() -> None:
    token = _forge({}, secret="x" * 64, algorithm="HS512")
    with pytest.raises(TokenError):
        verify_token(replace(SETTINGS, token_secret="x" * 64), token)


def test_unsigned_token_is_refused() -> None:
    token = _forge({}, secret="", algorithm="none")
    with pytest.raises(TokenError):
        verify_token(SETTINGS, token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
def test_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(TokenError) as info:
        verify_token(SETTINGS, token)
    assert str(info.value) == "invalid token"


def test_token_without_scope_has_no_scopes() -> None:
    principal = verify_token(SETTINGS, _forge({}))
    assert principal.scopes == frozenset()
    assert not principal.has("claims:read")


def test_principal_has() -> None:
    p = Principal("c1", frozenset({"claims:read", "ops:read"}))
    assert p.has("claims:read")
    assert p.has("ops:read")
    assert not p.has("claims:write")
    assert not p.has("claims")
    assert not p.has("")
