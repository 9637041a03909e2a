"""The DingTalk simulator as a real process (`finoa sim dingtalk`), and configs for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from support.processes import Server, free_port, start


@dataclass
class DingTalkSim:
    server: Server
    credentials: dict[str, Any]

    @property
    def url(self) -> str:
        return self.server.url

    def config(self, **extra: Any) -> dict[str, Any]:
        """A `dingtalk` instance config pointed at this simulator."""
        c = self.credentials
        return {
            "app_key": c["appKey"],
            "app_secret": c["appSecret"],
            "token": c["token"],
            "aes_key": c["aesKey"],
            "process_code": c["processCode"],
            "agent_id": c["agentId"],
            "api_base_url": self.url,
            "oapi_base_url": self.url,
            "timeout_seconds": 5,
            **extra,
        }

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=5)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=5)


def start_dingtalk(data_dir: Path, *args: str) -> DingTalkSim:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start(
        f"dingtalk-{port}",
        ["sim", "dingtalk", "--port", str(port), "--data-dir", str(data_dir), *args],
        {},
        "/_sim/stats",
        port,
        data_dir,
    )
    credentials = httpx.get(server.url + "/_sim/credentials", timeout=5).json()
    return DingTalkSim(server, credentials)
