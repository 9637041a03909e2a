"""A commit whose outcome is unknown is answered 503 problem+json with Retry-After, and the
sender's retry with the same Idempotency-Key is applied at most once (the hub's application
in-process on a real database, SQLite and PostgreSQL; the connection breaks right at COMMIT)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, create_engine, func, select
from sqlalchemy.exc import OperationalError
from support.claims import one_line_claim

from finoa.api.app import create_app
from finoa.config import ALL_SCOPES, ApiClient, load_settings
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.store.tables import claims

SECRET = "s3cret"


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        clients=[ApiClient("oa-bot", SECRET, ALL_SCOPES)],
    )
    seed = Hub.create(settings)
    load_masterdata(seed.db)
    seed.close()
    with TestClient(create_app(settings, dispatch=False)) as test_client:
        yield test_client


def token(client: TestClient) -> dict[str, str]:
    answer = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "oa-bot", "client_secret": SECRET},
    )
    return {"authorization": f"Bearer {answer.json()['access_token']}"}


def lose_the_next_commit_answer(hub: Hub, *, applied: bool) -> None:
    """The next COMMIT breaks: after the database committed (`applied`) or before."""
    fired: list[int] = []

    def hook(conn: Connection) -> None:
        if fired:
            return
        fired.append(1)
        real_commit = conn.commit

        def commit() -> None:
            if applied:
                real_commit()
            raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))

        conn.commit = commit  # type: ignore[method-assign]

    hub.db.before_commit.append(hook)


def claim_count(db_url: str) -> int:
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(claims)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("applied", [True, False], ids=["committed", "not-committed"])
def test_unknown_outcome_is_503_and_the_retry_is_applied_once(
    client: TestClient, db_url: str, applied: bool
) -> None:
    headers = {**token(client), "idempotency-key": "oa-claim-77"}
    body: Any = one_line_claim(
        "OA-77", applicant_id="E0011", department_id="D02", category="travel", amount="88.00"
    ).model_dump(mode="json")
    hub: Hub = client.app.state.hub  # type: ignore[attr-defined]
    lose_the_next_commit_answer(hub, applied=applied)

    first = client.post("/api/v1/claims", json=body, headers=headers)

    assert first.status_code == 503
    assert first.headers["content-type"] == "application/problem+json"
    assert first.headers["retry-after"] == "1"
    problem = first.json()
    assert problem["type"].endswith("/outcome-unknown") and "Idempotency-Key" in problem["detail"]
    assert claim_count(db_url) == (1 if applied else 0)

    again = client.post("/api/v1/claims", json=body, headers=headers)

    assert again.status_code == (200 if applied else 201)
    assert (again.headers.get("finoa-duplicate") == "true") is applied
    assert claim_count(db_url) == 1
