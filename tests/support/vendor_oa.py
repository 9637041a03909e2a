"""What the DingTalk, Feishu and WeCom test stacks share: a vendor simulator as a real
process (`finoa sim <vendor>`), the hub on one instance of that vendor next to it and the
ERP simulator, and the claim and todo the connector tests send."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx

from finoa.connectors.base import OutboundMessage
from support.processes import (
    Secrets,
    Server,
    free_port,
    hub_token,
    read_claim,
    start,
    start_configured_hub,
    wait_for,
)


@dataclass
class VendorSim:
    """A vendor simulator's process and the credentials it accepts (console names)."""

    vendor: ClassVar[str]
    takes_callback_url: ClassVar[bool] = True  # whether the instance config names it

    server: Server
    credentials: dict[str, Any]

    @property
    def url(self) -> str:
        return self.server.url

    def config(self, **extra: Any) -> dict[str, Any]:
        """An instance config of this vendor pointed at this simulator."""
        raise NotImplementedError

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=5)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=5)

    def wait_callbacks_delivered(self, what: str) -> None:
        """Until every callback the simulator stored is delivered (`what`: how the hub
        acknowledges them)."""
        wait_for(
            lambda: set(self.get("/_sim/stats")["callbacks"]) == {"delivered"},
            30,
            f"every callback answered with {what}",
        )


S = TypeVar("S", bound=VendorSim)


def start_sim(kind: type[S], data_dir: Path, *args: str) -> S:
    """`finoa sim <vendor> ARGS` on a free port, its data in `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start(
        f"{kind.vendor}-{port}",
        ["sim", kind.vendor, "--port", str(port), "--data-dir", str(data_dir), *args],
        {},
        "/_sim/stats",
        port,
        data_dir,
    )
    credentials = httpx.get(server.url + "/_sim/credentials", timeout=5).json()
    return kind(server, credentials)


@contextmanager
def sim_starter(kind: type[S], directory: Path) -> Iterator[Callable[..., S]]:
    """`start(*args)` runs one more simulator of `kind` (its data below `directory`); all
    of them are stopped on leaving."""
    started: list[S] = []

    def start_one(*args: str) -> S:
        sim = start_sim(kind, directory / f"sim{len(started)}", *args)
        started.append(sim)
        return sim

    try:
        yield start_one
    finally:
        for sim in started:
            sim.server.stop()


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
class VendorStack:
    """The hub on a vendor instance, the vendor's simulator and the ERP simulator."""

    hub: Server
    sim: VendorSim
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


T = TypeVar("T", bound=VendorStack)


@contextmanager
def vendor_stack(
    stack_type: type[T],
    sim_type: type[VendorSim],
    data_dir: Path,
    database_url: str,
    *,
    approvals: str,
    retry_scale: str,
    sim_args: tuple[str, ...] = (),
    config: dict[str, Any] | None = None,
) -> Iterator[T]:
    """Hub + vendor simulator + ERP simulator, each a real process; the instance named as
    the vendor runs expense claims `approvals` (oa-led or hub-led), `config` added to its
    config; the simulator's callback retries scaled by `retry_scale`."""
    vendor = sim_type.vendor
    secrets = Secrets.fresh()
    data_dir.mkdir(parents=True, exist_ok=True)
    hub_port, erp_port = free_port(), free_port()
    webhook = f"http://127.0.0.1:{hub_port}/api/v1/webhooks/{vendor}"
    env = {**secrets.env(), "FINOA_DATA_DIR": str(data_dir)}
    erp = start(
        "erp", ["sim", "erp", "--port", str(erp_port)], env, "/_sim/stats", erp_port, data_dir
    )
    sim: VendorSim | None = None
    hub: Server | None = None
    try:
        sim_args = ("--callback-url", webhook, "--retry-scale", retry_scale, *sim_args)
        sim = start_sim(sim_type, data_dir / vendor, *sim_args)
        extra = {"callback_url": webhook} if sim.takes_callback_url else {}
        connectors = {
            vendor: {
                "connector": vendor,
                "default": True,
                "approvals": {"expense_claim": approvals},
                "config": sim.config(**extra, **(config or {})),
            },
            "erp-main": {
                "connector": "generic-erp",
                "config": {"base_url": erp.url, "api_key_env": "FINOA_ERP_API_KEY"},
            },
        }
        hub = start_configured_hub(
            env, connectors, database_url, hub_port, data_dir, connector_timeout="5"
        )
        yield stack_type(hub, sim, erp, secrets.client_id, secrets.client_secret)
    finally:
        if hub is not None:
            hub.stop()
        if sim is not None:
            sim.server.stop()
        erp.stop()
