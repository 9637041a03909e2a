"""Throwaway PostgreSQL databases for tests, made through the admin connection."""

from __future__ import annotations

import os

import psycopg

PG_ADMIN_URL = os.environ.get("FINOA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


def pg_url(dbname: str) -> str:
    """The URL of database `dbname` on the test server."""
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def pg_admin(sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE …) outside a transaction."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


# The newest migration: written here once, so that adding one is a deliberate change.
HEAD_REVISION = "0020"
