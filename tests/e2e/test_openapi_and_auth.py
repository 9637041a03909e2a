"""OpenAPI is published, and no endpoint that reads or changes business data is open."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.processes import Stack, stack

OPEN = {
    ("post", "/api/v1/oauth/token"),  # client credentials are the authentication
    ("post", "/api/v1/webhooks/generic-oa"),  # signed webhooks are the authentication
    ("get", "/health"),
    ("get", "/ready"),
}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("openapi")
    with stack(work, f"sqlite:///{Path(work) / 'hub.db'}", auto_decide=False) as started:
        yield started


def test_openapi_and_docs_are_served(running: Stack) -> None:
    assert running.hub is not None
    spec = httpx.get(f"{running.hub.url}/openapi.json").json()
    assert spec["info"]["title"] == "finoa"
    assert "/api/v1/claims" in spec["paths"]
    docs = httpx.get(f"{running.hub.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_every_business_endpoint_needs_a_token(running: Stack) -> None:
    assert running.hub is not None
    url = running.hub.url
    spec = httpx.get(f"{url}/openapi.json").json()
    checked = 0
    for path, operations in spec["paths"].items():
        for method in operations:
            if (method, path) in OPEN:
                continue
            concrete = re.sub(r"\{[^}]+\}", "x1", path)
            response = httpx.request(method.upper(), f"{url}{concrete}", json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["field"] == "authorization"
            checked += 1
    assert checked >= 7


def test_a_forged_or_expired_looking_token_is_refused(running: Stack) -> None:
    assert running.hub is not None
    url = running.hub.url
    token = running.token()
    ok = httpx.get(f"{url}/api/v1/claims", headers={"authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    refused = httpx.get(f"{url}/api/v1/claims", headers={"authorization": f"Bearer {forged}"})
    assert refused.status_code == 401
    assert refused.json()["detail"] == "authorization: invalid token"
