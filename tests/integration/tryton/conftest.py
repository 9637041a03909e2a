"""A real trytond for the Tryton tests: one site per session (made by `finoa erp tryton init`
in a temp dir, SQLite backend), its server process stopped at the end; the OA and generic ERP
simulators per module; each test a hub on a fresh database (SQLite and PostgreSQL) whose ERP
instance `erp-tryton` is that trytond."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.processes import Secrets, Server, free_port, simulators
from support.tryton import TrytonAdmin, TrytonProcess, init_site, tryton_hub

from finoa.config import Settings
from finoa.services.context import Hub


@pytest.fixture(scope="session")
def trytond(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrytonProcess]:
    directory = tmp_path_factory.mktemp("tryton")
    site = init_site(directory / "site", free_port())
    process = TrytonProcess(site, directory)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def tryton_admin(trytond: TrytonProcess) -> TrytonAdmin:
    return TrytonAdmin(trytond.site)


@pytest.fixture(scope="module")
def secrets() -> Secrets:
    return Secrets.fresh()


@pytest.fixture(scope="module")
def sims(
    tmp_path_factory: pytest.TempPathFactory, secrets: Secrets
) -> Iterator[tuple[Server, Server]]:
    with simulators(
        tmp_path_factory.mktemp("sims"), secrets, free_port(), auto_decide=False
    ) as pair:
        yield pair


@pytest.fixture
def hub(
    settings: Settings, sims: tuple[Server, Server], secrets: Secrets, trytond: TrytonProcess
) -> Iterator[Hub]:
    hub = tryton_hub(settings, sims, secrets, trytond)
    yield hub
    hub.close()
