"""End-to-end fixtures: one database per stack, on SQLite and on a fresh PostgreSQL database.

`backend` is module-scoped and parametrized, so every e2e test runs on both backends while the
three processes of a stack are started once per backend per module (pytest groups the tests of
a module by the backend). Each stack gets its own database: two hubs sharing one outbox would
deliver each other's messages to the wrong simulators.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from e2e.helpers import HubClient, StackFactory
from support.databases import BACKENDS, pg_admin, pg_url
from support.processes import stack

from finoa.store.db import upgrade

RUNNING: list[HubClient] = []  # stacks alive now, whose logs a failure report shows


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and RUNNING:
        for client in RUNNING:
            for server, chars in (
                (client.stack.hub, 6000),
                (client.stack.oa, 1500),
                (client.stack.erp, 1500),
            ):
                if server is not None:
                    text = server.log()[-chars:]
                    report.sections.append((f"{server.name} log ({server.url})", text))
    return report


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextmanager
def _database(backend: str, directory: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated database: SQLite in `directory`, or a copy of the PostgreSQL template."""
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'finoa.db'}"
        upgrade(url)
        yield url
        return
    template = request.getfixturevalue("pg_template")
    name = f"finoa_e2e_{uuid.uuid4().hex[:12]}"
    pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield pg_url(name)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def start_stack(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> StackFactory:
    """`with start_stack(auto_decide=..., ...) as hub:` — a whole stack on a fresh database."""

    @contextmanager
    def start(**options: Any) -> Iterator[HubClient]:
        directory = tmp_path_factory.mktemp(f"e2e-{backend}")
        with ExitStack() as exits:
            url = exits.enter_context(_database(backend, directory, request))
            running = exits.enter_context(stack(directory / "data", url, **options))
            client = exits.enter_context(HubClient(running))
            RUNNING.append(client)
            exits.callback(RUNNING.remove, client)
            yield client

    return start
