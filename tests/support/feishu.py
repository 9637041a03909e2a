"""The Feishu simulator as a real process (`finoa sim feishu`), and configs for it."""

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
import yaml

from finoa.connectors.base import OutboundMessage
from finoa.connectors.feishu.demo import simulator_config
from support.dingtalk import DingTalkStack
from support.processes import Server, free_port, start


@dataclass
class FeishuSim:
    server: Server
    credentials: dict[str, Any]

    @property
    def url(self) -> str:
        return self.server.url

    def config(self, **extra: Any) -> dict[str, Any]:
        """A `feishu` instance config pointed at this simulator."""
        return simulator_config(self.url, self.credentials, **{"timeout_seconds": 5, **extra})

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=5)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=5)


def start_feishu(data_dir: Path, *args: str) -> FeishuSim:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start(
        f"feishu-{port}",
        ["sim", "feishu", "--port", str(port), "--data-dir", str(data_dir), *args],
        {},
        "/_sim/stats",
        port,
        data_dir,
    )
    credentials = httpx.get(server.url + "/_sim/credentials", timeout=5).json()
    return FeishuSim(server, credentials)


def message(action: str, payload: dict[str, Any], n: int = 1) -> OutboundMessage:
    return OutboundMessage(
        n, action, str(payload.get("claim_id") or payload.get("id")), f"{action}:{n}", payload
    )


def employee_form(category: str, amount: float, title: str = "打车 客户拜访") -> list[Any]:
    """The expense form as an employee fills it in Feishu: one fieldList row."""
    row = [
        {"id": "category", "type": "radioV2", "value": category},
        {"id": "amount", "type": "amount", "value": amount, "currency": "CNY"},
        {"id": "date", "type": "date", "value": "2026-11-20T00:00:00+08:00"},
    ]
    return [
        {"id": "reason", "type": "input", "value": title},
        {"id": "total", "type": "amount", "value": amount, "currency": "CNY"},
        {"id": "details", "type": "fieldList", "value": [row]},
    ]


@dataclass
class FeishuStack:
    """The hub on a Feishu instance, the Feishu simulator and the ERP simulator."""

    hub: Server
    feishu: FeishuSim
    erp: Server
    client_id: str
    client_secret: str

    def _hub(self) -> DingTalkStack:
        # The hub-side helpers (token, claims, waiting) are the DingTalk stack's; they use
        # only the hub and the client credentials.
        return DingTalkStack(self.hub, None, self.erp, self.client_id, self.client_secret)  # type: ignore[arg-type]

    def claim(self, claim_id: str) -> dict[str, Any]:
        return self._hub().claim(claim_id)

    def claims_of(self, applicant_id: str) -> list[dict[str, Any]]:
        return self._hub().claims_of(applicant_id)

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._hub().submit(body)

    def wait_status(self, claim_id: str, status: str, timeout_s: float = 60.0) -> dict[str, Any]:
        return self._hub().wait_status(claim_id, status, timeout_s)


@contextmanager
def feishu_stack(
    data_dir: Path, database_url: str, *, approvals: str, sim_args: tuple[str, ...] = ()
) -> Iterator[FeishuStack]:
    """Hub + Feishu simulator + ERP simulator, each a real process; the Feishu instance
    `feishu` runs expense claims `approvals` (oa-led or hub-led)."""
    from support.processes import Secrets

    secrets = Secrets.fresh()
    data_dir.mkdir(parents=True, exist_ok=True)
    hub_port, erp_port = free_port(), free_port()
    webhook = f"http://127.0.0.1:{hub_port}/api/v1/webhooks/feishu"
    env = {**secrets.env(), "FINOA_DATA_DIR": str(data_dir)}
    erp = start(
        "erp", ["sim", "erp", "--port", str(erp_port)], env, "/_sim/stats", erp_port, data_dir
    )
    feishu: FeishuSim | None = None
    hub: Server | None = None
    try:
        feishu = start_feishu(
            data_dir / "feishu", "--callback-url", webhook, "--retry-scale", "0.01", *sim_args
        )
        config = {
            "connectors": {
                "feishu": {
                    "connector": "feishu",
                    "default": True,
                    "approvals": {"expense_claim": approvals},
                    "config": feishu.config(callback_url=webhook),
                },
                "erp-main": {
                    "connector": "generic-erp",
                    "config": {"base_url": erp.url, "api_key_env": "FINOA_ERP_API_KEY"},
                },
            },
        }
        (data_dir / "finoa.yaml").write_text(
            yaml.safe_dump(config, allow_unicode=True), encoding="utf-8"
        )
        hub_env = {
            **env,
            "FINOA_CONFIG": str(data_dir / "finoa.yaml"),
            "FINOA_DATABASE_URL": database_url,
            "FINOA_CONNECTOR_TIMEOUT_SECONDS": "5",
        }
        subprocess.run(
            [sys.executable, "-m", "finoa", "masterdata", "load"],
            env={**os.environ, **hub_env},
            check=True,
            capture_output=True,
            cwd=data_dir,
        )
        hub = start(
            "hub", ["serve", "--port", str(hub_port)], hub_env, "/ready", hub_port, data_dir
        )
        yield FeishuStack(hub, feishu, erp, secrets.client_id, secrets.client_secret)
    finally:
        if hub is not None:
            hub.stop()
        if feishu is not None:
            feishu.server.stop()
        erp.stop()


def form_values(instance: dict[str, Any]) -> dict[str, Any]:
    """An instance's widgets by id (its `form` JSON string read)."""
    return {w["id"]: w["value"] for w in json.loads(instance["form"])}
