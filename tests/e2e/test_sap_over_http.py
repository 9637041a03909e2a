"""Claims into SAP with the hub, the OA simulator and the SAP gateway simulator as real
processes (SQLite and PostgreSQL): claims submitted over the REST API are approved by the OA's
simulated approvers and posted as FI documents through BAPI_ACC_DOCUMENT_CHECK / POST /
COMMIT, each exactly once under 20% injected faults, and written back with SAP's number."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import yaml
from e2e.conftest import _database
from e2e.helpers import claim_body
from support.processes import (
    Secrets,
    Server,
    free_port,
    hub_token,
    read_claim,
    simulators,
    start,
    wait_for,
)
from support.sap import sap_config, sap_simulator

from finoa.connectors.sap.mapping import voucher_reference


@dataclass
class SapStack:
    hub: Server
    sap: Server
    secrets: Secrets
    http: httpx.Client

    def bearer(self) -> str:
        return hub_token(self.hub.url, self.secrets.client_id, self.secrets.client_secret,
                         http=self.http)  # fmt: skip

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.bearer()}"}

    def claim(self, claim_id: str) -> dict[str, Any]:
        return read_claim(self.hub.url, self.bearer(), claim_id, self.http)


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SapStack]:
    directory = tmp_path_factory.mktemp(f"sap-{request.param}")
    secrets = Secrets.fresh()
    hub_port = free_port()
    with (
        _database(request.param, directory, request) as database_url,
        simulators(directory / "sims", secrets, hub_port, auto_decide=True) as (oa, _),
        sap_simulator(directory / "sap") as (sap, credentials),
    ):
        config = directory / "finoa.yaml"
        config.write_text(yaml.safe_dump({"connectors": {
            "generic-oa": {"connector": "generic-oa", "default": True, "config": {
                "base_url": oa.url, "api_key": secrets.oa_api_key,
                "webhook_secret": secrets.oa_webhook_secret}},
            "sap-cn": {"connector": "sap", "default": True,
                       "config": sap_config(sap.url, credentials, timeout_seconds=1)},
        }}))  # fmt: skip
        env = {**secrets.env(), "FINOA_DATA_DIR": str(directory / "data"),
               "FINOA_CONFIG": str(config), "FINOA_DATABASE_URL": database_url}  # fmt: skip
        subprocess.run(
            [sys.executable, "-m", "finoa", "masterdata", "load"],
            env={**os.environ, **env}, check=True, capture_output=True,
        )  # fmt: skip
        hub = start("hub", ["serve", "--port", str(hub_port)], env, "/ready", hub_port, directory)
        try:
            with httpx.Client(timeout=30) as http:
                yield SapStack(hub, sap, secrets, http)
        finally:
            hub.stop()


def test_claims_are_posted_into_sap_once_each_under_faults(stack: SapStack) -> None:
    faults = {"error_rate": 0.07, "timeout_rate": 0.07, "drop_rate": 0.07, "seed": 3}
    stack.http.post(f"{stack.sap.url}/_sim/faults", json=faults).raise_for_status()
    claim_ids = []
    for _ in range(6):
        answer = stack.http.post(
            f"{stack.hub.url}/api/v1/claims", content=orjson.dumps(claim_body()),
            headers={**stack.auth(), "content-type": "application/json"},
        )  # fmt: skip
        assert answer.status_code == 201, answer.text
        claim_ids.append(answer.json()["id"])

    def all_posted() -> list[dict[str, Any]] | None:
        claims = [stack.claim(claim_id) for claim_id in claim_ids]
        return claims if all(c["status"] == "posted" for c in claims) else None

    claims = wait_for(all_posted, 120, "every claim to be posted into SAP")
    stack.http.delete(f"{stack.sap.url}/_sim/faults")
    ledger = stack.http.get(f"{stack.sap.url}/_sim/documents").json()
    for claim in claims:
        voucher = claim["voucher"]
        mine = [d for d in ledger if d["XBLNR"] == voucher_reference(voucher["id"])]
        assert len(mine) == 1, (voucher["id"], mine)
        (document,) = mine
        number = f"{document['BUKRS']}/{document['BELNR']}/{document['GJAHR']}"
        assert voucher["erp_voucher_no"] == number
    stats = stack.http.get(f"{stack.sap.url}/_sim/stats").json()
    assert sum(stats["faults"]["injected"].values()) > 0  # the faults did happen
    assert not [
        d
        for d in ledger
        if d["XBLNR"] not in {voucher_reference(c["voucher"]["id"]) for c in claims}
    ]  # and nothing else was posted
