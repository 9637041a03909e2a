"""The DingTalk simulator as a real process (`finoa sim dingtalk`), and configs for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from finoa.connectors.base import OutboundMessage
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
