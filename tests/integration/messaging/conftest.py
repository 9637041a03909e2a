"""Fixtures for delivery against the real simulators: the simulators run once per module as
their own processes; each test gets a hub on a fresh database pointed at them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from support.processes import Secrets, Server, free_port, simulators

from finoa.config import Settings
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata


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
def loop_hub(settings: Settings, sims: tuple[Server, Server], secrets: Secrets) -> Iterator[Hub]:
    oa, erp = sims
    configured = replace(
        settings,
        oa_base_url=oa.url,
        erp_base_url=erp.url,
        oa_api_key=secrets.oa_api_key,
        erp_api_key=secrets.erp_api_key,
        connector_timeout_seconds=0.5,
        retry_base_seconds=0.05,
        retry_cap_seconds=0.2,
    )
    hub = Hub.create(configured)
    load_masterdata(hub.db)
    yield hub
    hub.close()
    httpx.delete(f"{erp.url}/_sim/faults")
