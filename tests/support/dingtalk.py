"""The DingTalk simulator as a real process (`finoa sim dingtalk`), and configs for it."""

from __future__ import annotations

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
from finoa.connectors.dingtalk.demo import simulator_config
from support.processes import Server, free_port, hub_token, read_claim, start


@dataclass
class DingTalkSim:
    server: Server
    credentials: dict[str, Any]

    @property
    def url(self) -> str:
        return self.server.url

    def config(self, **extra: Any) -> dict[str, Any]:
        """A `dingtalk` instance config pointed at this simulator."""
        return simulator_config(self.url, self.credentials, **{"timeout_seconds": 5, **extra})

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


# A claim as `approval.create` carries it, and an approval todo, for the connector tests.
CLAIM: dict[str, Any] = {
    "id": "CL0001",
    "external_id": "finoa-1",
    "applicant_id": "E0011",
    "department_id": "D02",
    "cost_center_id": None,
    "project_id": None,
    "title": "客户拜访 上海",
    "currency": "CNY",
    "total_fen": 123450,
    "lines": [
        {
            "category": "travel",
            "amount_fen": 100000,
            "tax_fen": 0,
            "expense_date": "2026-11-20",
            "description": "高铁",
        },
        {
            "category": "lodging",
            "amount_fen": 23450,
            "tax_fen": 1327,
            "expense_date": "2026-11-21",
            "description": "",
        },
    ],
}
TODO = {
    "op": "create",
    "task_id": "T-1",
    "claim_id": "CL0001",
    "external_id": "finoa-1",
    "assignee_id": "E0010",
    "role": "manager",
    "title": "报销审批 CL0001",
    "amount_fen": 123450,
    "currency": "CNY",
}


def message(action: str, payload: dict[str, Any], n: int = 1) -> OutboundMessage:
    return OutboundMessage(
        n, action, str(payload.get("claim_id") or payload.get("id")), f"{action}:{n}", payload
    )


@dataclass
class DingTalkStack:
    """The hub on a DingTalk instance, the DingTalk simulator and the ERP simulator."""

    hub: Server
    dingtalk: DingTalkSim
    erp: Server
    client_id: str
    client_secret: str

    def token(self) -> str:
        return hub_token(self.hub.url, self.client_id, self.client_secret)

    def claim(self, claim_id: str) -> dict[str, Any]:
        return read_claim(self.hub.url, self.token(), claim_id)

    def claims_of(self, applicant_id: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.hub.url}/api/v1/claims",
            params={"applicant_id": applicant_id},
            headers={"authorization": f"Bearer {self.token()}"},
            timeout=10,
        )
        response.raise_for_status()
        return list(response.json()["items"])

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(
            f"{self.hub.url}/api/v1/claims",
            json=body,
            headers={"authorization": f"Bearer {self.token()}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def wait_status(self, claim_id: str, status: str, timeout_s: float = 60.0) -> dict[str, Any]:
        from support.processes import wait_for

        def reached() -> dict[str, Any] | None:
            claim = self.claim(claim_id)
            return claim if claim["status"] == status else None

        try:
            return dict(wait_for(reached, timeout_s, f"claim {claim_id} to be {status}"))
        except AssertionError:
            raise AssertionError(
                f"claim {claim_id} is {self.claim(claim_id)['status']}, not {status}\n"
                f"hub log:\n{self.hub.log()[-4000:]}"
            ) from None


@contextmanager
def dingtalk_stack(
    data_dir: Path,
    database_url: str,
    *,
    approvals: str,
    sim_args: tuple[str, ...] = (),
    config: dict[str, Any] | None = None,
) -> Iterator[DingTalkStack]:
    """Hub + DingTalk simulator + ERP simulator, each a real process; the DingTalk instance
    `dingtalk` runs expense claims `approvals` (oa-led or hub-led), `config` added to its
    config."""
    from support.processes import Secrets

    secrets = Secrets.fresh()
    data_dir.mkdir(parents=True, exist_ok=True)
    hub_port, erp_port = free_port(), free_port()
    webhook = f"http://127.0.0.1:{hub_port}/api/v1/webhooks/dingtalk"
    env = {**secrets.env(), "FINOA_DATA_DIR": str(data_dir)}
    erp = start(
        "erp", ["sim", "erp", "--port", str(erp_port)], env, "/_sim/stats", erp_port, data_dir
    )
    dingtalk: DingTalkSim | None = None
    hub: Server | None = None
    try:
        dingtalk = start_dingtalk(
            data_dir / "dingtalk", "--callback-url", webhook, "--retry-scale", "0.05", *sim_args
        )
        config = {
            "connectors": {
                "dingtalk": {
                    "connector": "dingtalk",
                    "default": True,
                    "approvals": {"expense_claim": approvals},
                    "config": dingtalk.config(callback_url=webhook, **(config or {})),
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
        yield DingTalkStack(hub, dingtalk, erp, secrets.client_id, secrets.client_secret)
    finally:
        if hub is not None:
            hub.stop()
        if dingtalk is not None:
            dingtalk.server.stop()
        erp.stop()


def employee_form(category: str, amount: str, title: str = "打车 客户拜访") -> list[dict[str, str]]:
    """The expense form as an employee fills it in DingTalk: one table row."""
    import json

    rows = [
        [
            {"name": "费用类别", "value": category},
            {"name": "金额（元）", "value": amount},
            {"name": "费用日期", "value": "2026-11-20"},
        ]
    ]
    return [
        {"name": "报销事由", "value": title},
        {"name": "费用明细", "value": json.dumps(rows, ensure_ascii=False)},
    ]
