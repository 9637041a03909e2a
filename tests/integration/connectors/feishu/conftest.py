"""Fixtures: the Feishu simulator in its own process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.feishu import FeishuSim
from support.vendor_oa import sim_starter


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., FeishuSim]]:
    with sim_starter(FeishuSim, tmp_path) as start:
        yield start


@pytest.fixture
def sim(start_sim: Callable[..., FeishuSim]) -> FeishuSim:
    return start_sim("--no-auto-decide")
