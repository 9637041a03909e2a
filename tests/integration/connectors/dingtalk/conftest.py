"""Fixtures: the DingTalk simulator in its own process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.dingtalk import DingTalkSim
from support.vendor_oa import sim_starter


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., DingTalkSim]]:
    with sim_starter(DingTalkSim, tmp_path) as start:
        yield start


@pytest.fixture
def sim(start_sim: Callable[..., DingTalkSim]) -> DingTalkSim:
    return start_sim("--no-auto-decide")
