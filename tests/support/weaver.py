"""The Weaver e-cology simulator as a real process, and the connector config that fits it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from finoa.connectors.weaver.demo import simulator_config
from support.processes import Server, free_port, sim_credentials, start


def weaver_credentials(data_dir: Path) -> dict[str, str]:
    """What `finoa sim weaver --show-credentials` prints for `data_dir`."""
    return sim_credentials(["sim", "weaver", "--data-dir", str(data_dir)])


@contextmanager
def weaver_simulator(
    data_dir: Path,
    *,
    callback_url: str | None = None,
    auto_decide: bool = True,
    reject_rate: float = 0.0,
    token_ttl: float | None = None,
) -> Iterator[tuple[Server, dict[str, str]]]:
    data_dir.mkdir(parents=True, exist_ok=True)
    credentials = weaver_credentials(data_dir)
    port = free_port()
    args = ["sim", "weaver", "--port", str(port), "--data-dir", str(data_dir),
            "--reject-rate", str(reject_rate)]  # fmt: skip
    if callback_url:
        args += ["--callback-url", callback_url]
    if not auto_decide:
        args.append("--no-auto-decide")
    if token_ttl is not None:
        args += ["--token-ttl", str(token_ttl)]
    server = start("weaver", args, {}, "/_sim/stats", port, data_dir)
    try:
        yield server, credentials
    finally:
        server.stop()


def weaver_config(url: str, credentials: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """A `weaver` instance config for the simulator at `url`."""
    return simulator_config(url, credentials, **{"timeout_seconds": 5, **overrides})
