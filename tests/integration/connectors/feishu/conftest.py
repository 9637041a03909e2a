"""Fixtures: the Feishu simulator in its own process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.feishu import FeishuSim, start_feishu


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., FeishuSim]]:
    started: list[FeishuSim] = []

    def run(*args: str) -> FeishuSim:
        sim = start_feishu(tmp_path / f"sim{len(started)}", *args)
        started.append(sim)
        return sim

    yield run
    for sim in started:
        sim.server.stop()


@pytest.fixture
def sim(start_sim: Callable[..., FeishuSim]) -> FeishuSim:
    return start_sim("--no-auto-decide")
