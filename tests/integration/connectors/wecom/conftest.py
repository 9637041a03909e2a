"""Fixtures: the WeCom simulator in its own process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.vendor_oa import sim_starter
from support.wecom import WeComSim


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., WeComSim]]:
    with sim_starter(WeComSim, tmp_path) as start:
        yield start


@pytest.fixture
def sim(start_sim: Callable[..., WeComSim]) -> WeComSim:
    return start_sim("--no-auto-decide")
