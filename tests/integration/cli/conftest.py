"""Fixtures of the command-line tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from support.databases import pg_admin, pg_url


@pytest.fixture
def empty_postgresql() -> Iterator[str]:
    """A PostgreSQL database that was never migrated."""
    name = f"finoa_cli_{uuid.uuid4().hex[:12]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    yield pg_url(name)
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
