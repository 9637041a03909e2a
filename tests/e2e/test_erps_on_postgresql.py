"""The ERPs whose other end-to-end runs use SQLite, end to end with the hub on PostgreSQL:
K/3 Cloud (its simulator) and Tryton (a real trytond on a site made by `finoa erp tryton
init`). The hub, the generic OA simulator and the ERP are real processes, started and
configured through the ERPs' demo profiles, as `finoa demo` does; every approved claim is one
voucher in the ERP, counted in the ERP, also after a claim is sent again."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from e2e.conftest import _database
from e2e.helpers import claim_body
from support.processes import (
    Secrets,
    Server,
    free_port,
    start,
    start_configured_hub,
    wait_for,
)

from finoa.demo_stack import DemoContext, DemoProfile, demo_profile

CLAIMS = 6


@dataclass
class ERPStack:
    hub: Server
    erp: DemoProfile
    ctx: DemoContext
    credentials: dict[str, object]
    secrets: Secrets

    def headers(self) -> dict[str, str]:
        answer = httpx.post(
            f"{self.hub.url}/api/v1/oauth/token",
            data={"grant_type": "client_credentials", "client_id": self.secrets.client_id,
                  "client_secret": self.secrets.client_secret},
            timeout=10,
        )  # fmt: skip
        answer.raise_for_status()
        return {"authorization": f"Bearer {answer.json()['access_token']}"}

    def vouchers(self) -> int:
        return self.erp.vouchers(self.ctx, dict(self.credentials))


@pytest.fixture(scope="module", params=("kingdee", "tryton"))
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ERPStack]:
    name = str(request.param)
    directory = tmp_path_factory.mktemp(f"{name}-postgresql")
    secrets = Secrets.fresh()
    hub_port, oa_port = free_port(), free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    env = {**secrets.env(), "FINOA_DATA_DIR": str(directory)}
    keys = {"oa_api_key": secrets.oa_api_key, "oa_webhook_secret": secrets.oa_webhook_secret,
            "erp_api_key": secrets.erp_api_key}  # fmt: skip
    erp = demo_profile("erp", name)
    ctx = DemoContext(directory, hub_url, free_port(), secrets=keys)
    oa = demo_profile("oa", "generic")
    oa_ctx = DemoContext(directory, hub_url, oa_port, reject_rate=0.0, secrets=keys)
    erp.prepare(ctx)
    credentials = erp.credentials(ctx)
    servers = [start(name, erp.command(ctx), env, erp.ready_path, ctx.port, directory)]
    try:
        servers.append(start("oa", oa.command(oa_ctx), env, oa.ready_path, oa_port, directory))
        connectors = {
            oa.instance_name: oa.instance(oa_ctx, {}),
            erp.instance_name: erp.instance(ctx, credentials),
        }
        with _database("postgresql", directory, request) as database_url:
            hub = start_configured_hub(env, connectors, database_url, hub_port, directory)
            try:
                yield ERPStack(hub, erp, ctx, credentials, secrets)
            finally:
                hub.stop()
    finally:
        for server in reversed(servers):
            server.stop()


def test_every_approved_claim_is_one_voucher_in_the_erp(stack: ERPStack) -> None:
    headers = stack.headers()
    before = stack.vouchers()
    ids = []
    for _ in range(CLAIMS):
        body = claim_body()
        answer = httpx.post(f"{stack.hub.url}/api/v1/claims", json=body, headers=headers,
                            timeout=30)  # fmt: skip
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    again = httpx.post(f"{stack.hub.url}/api/v1/claims", json=body, headers=headers, timeout=30)
    assert again.status_code in (200, 201) and again.json()["id"] == ids[-1]

    def statuses() -> list[str] | None:
        found = [
            httpx.get(f"{stack.hub.url}/api/v1/claims/{i}", headers=headers, timeout=10).json()
            for i in ids
        ]
        values = [c["status"] for c in found]
        return values if all(v == "posted" for v in values) else None

    try:
        wait_for(statuses, 90, "every claim posted")
    except AssertionError:
        raise AssertionError(stack.hub.log()[-5000:]) from None
    assert stack.vouchers() == before + CLAIMS
