"""Fixtures: the WeCom simulator in its own process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.wecom import WeComSim, start_wecom


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., WeComSim]]:
    started: list[WeComSim] = []

    def run(*args: str) -> WeComSim:
        sim = start_wecom(tmp_path / f"sim{len(started)}", *args)
        started.append(sim)
        return sim

    yield run
    for sim in started:
        sim.server.stop()


@pytest.fixture
def sim(start_sim: Callable[..., WeComSim]) -> WeComSim:
    return start_sim("--no-auto-decide")
