"""OpenAPI is published, and no endpoint that reads or changes business data is open."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus, urlencode

import httpx
import pytest
from support.processes import Stack, stack

OPEN = {
    ("post", "/api/v1/oauth/token"),  # client credentials are the authentication
    ("post", "/api/v1/webhooks/generic-oa"),  # signed webhooks are the authentication
    ("get", "/health"),
    ("get", "/ready"),
}


# A client whose id and secret hold characters that Basic credentials must form-encode.
ODD_ID, ODD_SECRET = "odd client", "s+cr%t&x=1"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("openapi")
    clients = f"test-client:test-client-secret:*;{ODD_ID}:{ODD_SECRET}:claims:read"
    with stack(
        work,
        f"sqlite:///{Path(work) / 'hub.db'}",
        auto_decide=False,
        extra_env={"FINOA_CLIENTS": clients},
    ) as started:
        yield started


def token_request(
    running: Stack, data: dict[str, str] | list[tuple[str, str]], **headers: str
) -> httpx.Response:
    """POST a form to the token endpoint (a list of pairs may repeat a name)."""
    assert running.hub is not None
    return httpx.post(
        f"{running.hub.url}/api/v1/oauth/token",
        content=urlencode(data),
        headers={"content-type": "application/x-www-form-urlencoded", **headers},
    )


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-encode id and secret, then base64 them as id:secret."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


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


def test_openapi_declares_client_credentials_and_problem_responses(running: Stack) -> None:
    assert running.hub is not None
    spec = httpx.get(f"{running.hub.url}/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["clientCredentials"]
    flow = scheme["flows"]["clientCredentials"]
    assert scheme["type"] == "oauth2"
    assert flow["tokenUrl"] == "/api/v1/oauth/token"
    assert set(flow["scopes"]) == {
        "claims:read",
        "claims:write",
        "tasks:decide",
        "ops:read",
        "ops:replay",
        "budgets:read",
        "budgets:manage",
        "budgets:approve",
        "processes:read",
        "processes:manage",
    }
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "field", "errors"} <= set(problem["properties"])
    claims = spec["paths"]["/api/v1/claims"]
    assert claims["post"]["security"] == [{"clientCredentials": ["claims:write"]}]
    assert claims["get"]["security"] == [{"clientCredentials": ["claims:read"]}]
    documented: set[str] = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if (method, path) not in OPEN:
                assert operation["security"], (method, path)
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], status
                    ref = response["content"]["application/problem+json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Problem"
                    documented.add(status)
    assert {"401", "403", "404", "409", "413", "422", "503"} <= documented
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_token_answers_are_never_cached(running: Stack) -> None:
    ok = token_request(
        running,
        {
            "grant_type": "client_credentials",
            "client_id": running.secrets.client_id,
            "client_secret": running.secrets.client_secret,
        },
    )
    refused = token_request(running, {"grant_type": "password"})
    malformed = token_request(
        running, {"grant_type": "client_credentials"}, authorization="Basic %%"
    )
    assert [ok.status_code, refused.status_code, malformed.status_code] == [200, 400, 400]
    for response in (ok, refused, malformed):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
    assert refused.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("name", ["client_id", "client_secret", "grant_type", "scope"])
def test_a_token_parameter_given_twice_is_400_invalid_request(running: Stack, name: str) -> None:
    fields = {
        "grant_type": "client_credentials",
        "client_id": running.secrets.client_id,
        "client_secret": running.secrets.client_secret,
        "scope": "claims:read",
    }
    data = [*fields.items(), (name, fields[name])]
    response = token_request(running, data)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["field"] == name
    assert body["error_description"] == body["detail"] == f"{name}: is given more than once"
    assert "access_token" not in body


def test_basic_credentials_are_form_decoded(running: Stack) -> None:
    response = token_request(
        running, {"grant_type": "client_credentials"}, authorization=basic(ODD_ID, ODD_SECRET)
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "claims:read"
    # Sent without form-encoding, the "+" of the secret reads as a space: a wrong secret.
    raw = base64.b64encode(f"{ODD_ID}:{ODD_SECRET}".encode()).decode()
    refused = token_request(
        running, {"grant_type": "client_credentials"}, authorization=f"Basic {raw}"
    )
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_client"
    assert refused.headers["www-authenticate"].startswith("Basic")


def test_an_encoded_colon_belongs_to_the_client_id(running: Stack) -> None:
    """`a%3Ab:c` is the client `a:b` with the secret `c`, not the client `a`."""
    pair = base64.b64encode(b"test-client%3Ax:test-client-secret").decode()
    response = token_request(
        running, {"grant_type": "client_credentials"}, authorization=f"Basic {pair}"
    )
    assert response.status_code == 401, response.text
    pair = base64.b64encode(b"test%2Dclient:test%2Dclient%2Dsecret").decode()
    response = token_request(
        running, {"grant_type": "client_credentials"}, authorization=f"Basic {pair}"
    )
    assert response.status_code == 200, response.text
