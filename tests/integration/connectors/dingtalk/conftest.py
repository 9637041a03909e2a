"""Fixtures: the DingTalk simulator in its own process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.dingtalk import DingTalkSim, start_dingtalk


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., DingTalkSim]]:
    started: list[DingTalkSim] = []

    def run(*args: str) -> DingTalkSim:
        sim = start_dingtalk(tmp_path / f"sim{len(started)}", *args)
        started.append(sim)
        return sim

    yield run
    for sim in started:
        sim.server.stop()


@pytest.fixture
def sim(start_sim: Callable[..., DingTalkSim]) -> DingTalkSim:
    return start_sim("--no-auto-decide")
