"""The Yonyou simulators as real processes, and the connector configs that fit them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support.processes import Server, free_port, sim_credentials, start


def yonyou_credentials(data_dir: Path, profile: str) -> dict[str, str]:
    """What `finoa sim yonyou --profile P --show-credentials` prints for `data_dir`."""
    return sim_credentials(["sim", "yonyou", "--profile", profile, "--data-dir", str(data_dir)])


@contextmanager
def yonyou_simulator(
    data_dir: Path, profile: str, *, token_ttl: float | None = None
) -> Iterator[tuple[Server, dict[str, str]]]:
    data_dir.mkdir(parents=True, exist_ok=True)
    credentials = yonyou_credentials(data_dir, profile)
    port = free_port()
    args = ["sim", "yonyou", "--profile", profile, "--port", str(port),
            "--data-dir", str(data_dir)]  # fmt: skip
    if token_ttl is not None:
        args += ["--token-ttl", str(token_ttl)]
    server = start(f"yonyou-{profile}", args, {}, "/_sim/stats", port, data_dir)
    try:
        yield server, credentials
    finally:
        server.stop()


def yonyou_config(
    profile: str, url: str, credentials: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    """A `yonyou-u8` / `yonyou-nc` instance config for the simulator at `url`."""
    return {"base_url": url, "timeout_seconds": 5, **credentials, **overrides}
