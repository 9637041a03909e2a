"""Failed attempts at the token endpoint: lockout per client id and per address, audited.

The hub's application runs in-process on a real database (SQLite and PostgreSQL), with the
limiter's clock injected so that the lockout's end is reached without waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from finoa.api.app import create_app
from finoa.api.limits import FailedAttempts
from finoa.config import ALL_SCOPES, ApiClient, load_settings
from finoa.store.tables import audit_events

SECRET = "the-right-secret"


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(db_url: str, tmp_path: Path, clock: Clock) -> Iterator[TestClient]:
    settings = load_settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        clients=[ApiClient("erp-bot", SECRET, ALL_SCOPES), ApiClient("oa-bot", SECRET, ALL_SCOPES)],
    )
    limiter = FailedAttempts(max_failures=10, window_seconds=300, lockout_seconds=300, clock=clock)
    app = create_app(settings, dispatch=False, failed_attempts=limiter)
    with TestClient(app) as test_client:
        yield test_client


def ask(client: TestClient, client_id: str, secret: str) -> Any:
    return client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


def lockouts(db_url: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    audit_events.c.actor,
                    audit_events.c.object_type,
                    audit_events.c.object_id,
                    audit_events.c.data,
                )
                .where(audit_events.c.action == "auth.locked_out")
                .order_by(audit_events.c.seq)
            )
            return [(r.actor, r.object_type, r.object_id, r.data) for r in rows]
    finally:
        engine.dispose()


def test_ten_failures_lock_the_client_even_against_the_right_secret(
    client: TestClient, clock: Clock, db_url: str
) -> None:
    for attempt in range(10):
        clock.now += 1
        response = ask(client, "erp-bot", f"guess-{attempt}")
        assert response.status_code == 401, (attempt, response.text)
    assert lockouts(db_url) == [
        (
            "system",
            "client",
            "erp-bot",
            {"failures": 10, "window_seconds": 300, "lockout_seconds": 300},
        ),
        (
            "system",
            "address",
            "testclient",
            {"failures": 10, "window_seconds": 300, "lockout_seconds": 300},
        ),
    ]
    locked = ask(client, "erp-bot", SECRET)
    assert locked.status_code == 429, locked.text
    assert locked.headers["retry-after"] == "300"
    assert locked.headers["cache-control"] == "no-store"
    assert locked.headers["content-type"].startswith("application/problem+json")
    body = locked.json()
    assert body["type"] == "https://finoa.dev/problems/too-many-failures"
    assert body["field"] == "client_id"
    assert body["error"] == "temporarily_unavailable"
    assert "access_token" not in body

    clock.now += 299.5
    still = ask(client, "erp-bot", SECRET)
    assert still.status_code == 429
    assert still.headers["retry-after"] == "1"
    assert len(lockouts(db_url)) == 2  # refusals during the lockout are not new lockouts

    clock.now += 0.5
    after = ask(client, "erp-bot", SECRET)
    assert after.status_code == 200, after.text
    assert after.json()["token_type"] == "Bearer"


def test_failures_spread_over_more_than_the_window_do_not_lock(
    client: TestClient, clock: Clock, db_url: str
) -> None:
    for _ in range(30):
        clock.now += 40  # at most 8 failures fall within any 300 s
        assert ask(client, "erp-bot", "wrong").status_code == 401
    assert ask(client, "erp-bot", SECRET).status_code == 200
    assert lockouts(db_url) == []


def test_failures_across_client_ids_lock_the_address(
    client: TestClient, clock: Clock, db_url: str
) -> None:
    for i in range(10):
        assert ask(client, f"unknown-{i}", "wrong").status_code == 401
    assert [(kind, who) for _, kind, who, _ in lockouts(db_url)] == [("address", "testclient")]
    refused = ask(client, "oa-bot", SECRET)  # never failed itself, but asks from that address
    assert refused.status_code == 429, refused.text


def test_a_correct_secret_forgets_the_clients_earlier_failures() -> None:
    clock = Clock()
    limiter = FailedAttempts(max_failures=3, window_seconds=300, lockout_seconds=60, clock=clock)
    key = ("client", "erp-bot")
    assert limiter.failed([key]) == []
    assert limiter.failed([key]) == []
    limiter.succeeded(key)
    assert limiter.failed([key]) == []
    assert limiter.failed([key]) == []
    assert limiter.retry_after([key]) is None
    assert limiter.failed([key]) == [key]
    assert limiter.retry_after([key]) == 60


def test_the_limiter_tracks_a_bounded_number_of_keys() -> None:
    limiter = FailedAttempts(max_failures=2, max_keys=100, clock=Clock())
    for i in range(1000):
        limiter.failed([("client", f"c{i}")])
    assert limiter.failed([("client", "c999")]) == [("client", "c999")]
    assert limiter.failed([("client", "c0")]) == []  # forgotten: counts from one again
