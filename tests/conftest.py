"""Shared fixtures: a fresh database per test on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.databases import BACKENDS, pg_admin, pg_url

from finoa.config import Settings, load_settings
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.store.db import upgrade

# Hubs started by the tests archive only when a test asks for it (the archive keeper's tests
# set FINOA_ARCHIVE_EVERY_SECONDS): a round every 15 s would add outbox rows (the archive's
# OA notices) at moments no test about claims expects.
os.environ.setdefault("FINOA_ARCHIVE_EVERY_SECONDS", "0")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL database that each test copies (CREATE DATABASE … TEMPLATE)."""
    name = f"finoa_tpl_{os.getpid()}"
    pg_admin(f'DROP DATABASE IF EXISTS "{name}"')
    pg_admin(f'CREATE DATABASE "{name}"')
    upgrade(pg_url(name))
    yield name
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: SQLite in a temp dir, or a copy of the PostgreSQL template."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'finoa.db'}"
        upgrade(url)
        yield url
        return
    template = request.getfixturevalue("pg_template")
    name = f"finoa_t_{uuid.uuid4().hex[:12]}"
    pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield pg_url(name)
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", database_url=db_url)


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    """The hub's services on a fresh database with the sample company loaded."""
    hub = Hub.create(settings)
    load_masterdata(hub.db)
    yield hub
    hub.close()
