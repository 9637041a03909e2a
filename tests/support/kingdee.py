"""The K/3 Cloud simulator as a real process, its credentials, and connector configs for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from support.processes import Server, free_port, start


@dataclass
class KingdeeSim:
    server: Server
    credentials: dict[str, Any]

    @property
    def url(self) -> str:
        return self.server.url

    def config(self, auth: str = "app_secret", **overrides: Any) -> dict[str, Any]:
        """A `kingdee` connector config for this account set."""
        c = self.credentials
        config: dict[str, Any] = {
            "server_url": c["server_url"],
            "acct_id": c["acct_id"],
            "user_name": c["user_name"],
            "auth": auth,
            "lcid": c["lcid"],
            "timeout_seconds": 2,
        }
        if auth == "app_secret":
            config |= {"app_id": c["app_id"], "app_secret": c["app_secret"]}
        else:
            config |= {"password": c["password"]}
        return {**config, **overrides}

    def vouchers(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/_sim/vouchers").json())

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/_sim/stats").json())

    def faults(self, **spec: Any) -> None:
        httpx.post(f"{self.url}/_sim/faults", json=spec).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.url}/_sim/faults").raise_for_status()


@contextmanager
def kingdee_simulator(data_dir: Path, session_seconds: float = 1200) -> Iterator[KingdeeSim]:
    """`finoa sim kingdee` in its own process; credentials read with `--show-credentials`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = ["sim", "kingdee", "--port", str(port), "--data-dir", str(data_dir)]
    session = ["--session-seconds", str(session_seconds)]
    server = start("kingdee", [*args, *session], {}, "/_sim/stats", port, data_dir)
    try:
        shown = subprocess.run(
            [sys.executable, "-m", "finoa", *args, "--show-credentials"],
            env=dict(os.environ),
            capture_output=True,
            check=True,
            text=True,
        )
        yield KingdeeSim(server, json.loads(shown.stdout))
    finally:
        server.stop()
