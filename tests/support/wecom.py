"""The WeCom simulator as a real process (`finoa sim wecom`), and configs for it."""

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
from finoa.connectors.wecom.simulator import Credentials
from support.processes import Server, free_port, start


@dataclass
class WeComSim:
    server: Server
    credentials: dict[str, Any]

    @property
    def url(self) -> str:
        return self.server.url

    def config(self, **extra: Any) -> dict[str, Any]:
        """A `wecom` instance config pointed at this simulator."""
        return {
            **Credentials.instance_config(self.credentials, self.url),
            "timeout_seconds": 5,
            **extra,
        }

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=5)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=5)


def start_wecom(data_dir: Path, *args: str) -> WeComSim:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start(
        f"wecom-{port}",
        ["sim", "wecom", "--port", str(port), "--data-dir", str(data_dir), *args],
        {},
        "/_sim/stats",
        port,
        data_dir,
    )
    credentials = httpx.get(server.url + "/_sim/credentials", timeout=5).json()
    return WeComSim(server, credentials)


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
class WeComStack:
    """The hub on a WeCom instance, the WeCom simulator and the ERP simulator."""

    hub: Server
    wecom: WeComSim
    erp: Server
    client_id: str
    client_secret: str

    def token(self) -> str:
        response = httpx.post(
            f"{self.hub.url}/api/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def claim(self, claim_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.hub.url}/api/v1/claims/{claim_id}",
            headers={"authorization": f"Bearer {self.token()}"},
            timeout=10,
        )
        response.raise_for_status()
        return dict(response.json())

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
def wecom_stack(
    data_dir: Path,
    database_url: str,
    *,
    approvals: str,
    sim_args: tuple[str, ...] = (),
    config: dict[str, Any] | None = None,
) -> Iterator[WeComStack]:
    """Hub + WeCom simulator + ERP simulator, each a real process; the WeCom instance
    `wecom` runs expense claims `approvals` (oa-led or hub-led), `config` added to its
    config."""
    from support.processes import Secrets

    secrets = Secrets.fresh()
    data_dir.mkdir(parents=True, exist_ok=True)
    hub_port, erp_port = free_port(), free_port()
    webhook = f"http://127.0.0.1:{hub_port}/api/v1/webhooks/wecom"
    env = {**secrets.env(), "FINOA_DATA_DIR": str(data_dir)}
    erp = start(
        "erp", ["sim", "erp", "--port", str(erp_port)], env, "/_sim/stats", erp_port, data_dir
    )
    wecom: WeComSim | None = None
    hub: Server | None = None
    try:
        wecom = start_wecom(
            data_dir / "wecom", "--callback-url", webhook, "--retry-scale", "0.05", *sim_args
        )
        config = {
            "connectors": {
                "wecom": {
                    "connector": "wecom",
                    "default": True,
                    "approvals": {"expense_claim": approvals},
                    "config": wecom.config(**(config or {})),
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
        yield WeComStack(hub, wecom, erp, secrets.client_id, secrets.client_secret)
    finally:
        if hub is not None:
            hub.stop()
        if wecom is not None:
            wecom.server.stop()
        erp.stop()


def employee_approval(
    userid: str, category: str, amount: str, title: str = "打车 客户拜访"
) -> dict[str, Any]:
    """The expense template as an employee fills it in WeCom: one table row."""
    from finoa.connectors.wecom.mapping import day_timestamp

    row = [
        {
            "control": "Selector",
            "id": "Selector-1009",
            "value": {"selector": {"type": "single", "options": [{"key": category}]}},
        },
        {"control": "Money", "id": "Money-1010", "value": {"new_money": amount}},
        {
            "control": "Date",
            "id": "Date-1012",
            "value": {"date": {"type": "day", "s_timestamp": day_timestamp("2026-11-20")}},
        },
    ]
    return {
        "creator_userid": userid,
        "apply_data": {
            "contents": [
                {"control": "Text", "id": "Text-1001", "value": {"text": title}},
                {"control": "Table", "id": "Table-1008", "value": {"children": [{"list": row}]}},
            ]
        },
    }
