"""Auth providers against a real token endpoint (uvicorn in a thread): the token cache with an
injected clock — refresh margin, expiry, one fetch for concurrent callers — and 401 handling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI, Form, Header
from fastapi.responses import JSONResponse
from support.threaded import serve_in_thread

from finoa.connectors.auth import (
    CachedToken,
    StaticBearer,
    client_credentials,
    delivery_error,
    send_authorized,
)
from finoa.messaging.retry import DeliveryError, ErrorClass

pytestmark = pytest.mark.anyio

CLIENT_ID, CLIENT_SECRET = "hub", "s3cret"
LIFETIME = 100  # seconds a token lives


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Peer:
    """A token endpoint and one protected resource; counts what it was asked."""

    url: str = ""
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    refuse_all: bool = False
    resource_calls: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/token")
        async def token(client_id: str = Form(), client_secret: str = Form()) -> JSONResponse:
            if (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET):
                return JSONResponse({"error": "invalid_client"}, 401)
            value = f"tok-{len(self.issued) + 1}"
            self.issued.append(value)
            return JSONResponse({"access_token": value, "expires_in": LIFETIME})

        @app.get("/resource")
        async def resource(authorization: str = Header("")) -> JSONResponse:
            self.resource_calls += 1
            value = authorization.removeprefix("Bearer ")
            if self.refuse_all or value not in self.issued or value in self.revoked:
                return JSONResponse({"error": "invalid_token"}, 401)
            return JSONResponse({"token": value})

        return app


@pytest.fixture
def peer() -> Iterator[Peer]:
    state = Peer()
    with serve_in_thread(state.app(), "token endpoint") as url:
        state.url = url
        yield state


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def provider(
    peer: Peer, http: httpx.AsyncClient, clock: Clock, secret: str = CLIENT_SECRET
) -> CachedToken:
    fetch = client_credentials(http, f"{peer.url}/token", CLIENT_ID, secret, clock=clock)
    return CachedToken(fetch, clock=clock, refresh_margin_seconds=10)


async def get(http: httpx.AsyncClient, peer: Peer, auth: CachedToken) -> httpx.Response:
    async def send(headers: dict[str, str]) -> httpx.Response:
        return await http.get(f"{peer.url}/resource", headers=headers)

    return await send_authorized(auth, send)


async def test_token_is_cached_until_the_refresh_margin_then_fetched_again(
    peer: Peer, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    auth = provider(peer, http, clock)
    assert await auth.headers() == {"authorization": "Bearer tok-1"}
    clock.now += LIFETIME - 10 - 0.5  # still outside the margin: the cached token
    assert await auth.headers() == {"authorization": "Bearer tok-1"}
    clock.now += 1.0  # inside the 10 s margin before expiry: refreshed ahead of time
    assert await auth.headers() == {"authorization": "Bearer tok-2"}
    clock.now += LIFETIME + 50  # long expired: fetched again
    assert await auth.headers() == {"authorization": "Bearer tok-3"}
    assert peer.issued == ["tok-1", "tok-2", "tok-3"]


async def test_concurrent_callers_share_one_fetch(peer: Peer, http: httpx.AsyncClient) -> None:
    clock = Clock()
    auth = provider(peer, http, clock)
    headers = await asyncio.gather(*(auth.headers() for _ in range(25)))
    assert {h["authorization"] for h in headers} == {"Bearer tok-1"}
    assert peer.issued == ["tok-1"] and auth.fetches == 1
    clock.now += LIFETIME  # expired: 25 callers again, still one fetch
    headers = await asyncio.gather(*(auth.headers() for _ in range(25)))
    assert {h["authorization"] for h in headers} == {"Bearer tok-2"}
    assert peer.issued == ["tok-1", "tok-2"]


async def test_a_401_refreshes_and_retries_once(peer: Peer, http: httpx.AsyncClient) -> None:
    auth = provider(peer, http, Clock())
    assert (await get(http, peer, auth)).json() == {"token": "tok-1"}
    peer.revoked.add("tok-1")  # the peer forgets the token before it expires
    response = await get(http, peer, auth)
    assert response.status_code == 200 and response.json() == {"token": "tok-2"}
    assert peer.issued == ["tok-1", "tok-2"]
    assert peer.resource_calls == 3  # ok, 401, ok after the refresh


async def test_a_second_401_is_an_auth_error(peer: Peer, http: httpx.AsyncClient) -> None:
    auth = provider(peer, http, Clock())
    peer.refuse_all = True
    response = await get(http, peer, auth)
    assert response.status_code == 401
    assert peer.resource_calls == 2 and peer.issued == ["tok-1", "tok-2"]  # one retry only
    assert DeliveryError.from_response(response).error_class is ErrorClass.AUTH


async def test_refused_client_credentials_are_an_auth_error(
    peer: Peer, http: httpx.AsyncClient
) -> None:
    auth = provider(peer, http, Clock(), secret="wrong")
    with pytest.raises(DeliveryError) as refused:
        await auth.headers()
    assert refused.value.error_class is ErrorClass.AUTH
    assert delivery_error(refused.value) is refused.value
    assert "wrong" not in repr(auth) and peer.issued == []


async def test_a_static_key_is_not_retried_and_never_shown(
    peer: Peer, http: httpx.AsyncClient
) -> None:
    auth = StaticBearer("static-key-123")

    async def send(headers: dict[str, str]) -> httpx.Response:
        return await http.get(f"{peer.url}/resource", headers=headers)

    response = await send_authorized(auth, send)
    assert response.status_code == 401 and peer.resource_calls == 1
    assert "static-key-123" not in repr(auth)
