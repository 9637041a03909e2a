"""Vouchers into Yonyou U8 and NC through the hub's real dispatcher under 20% injected faults
(errors before the work, hangs, answers lost after the voucher was made), with the hub, the
OA simulator and the Yonyou simulator as real processes, on SQLite and PostgreSQL.

Passes with every claim posted or dead-lettered with a reason, and in the simulator's ledger
exactly one voucher per posted claim: none missing, none doubled (U8 through its tradeid and
the posted-lookup, NC, which keeps no idempotency, through the posted-lookup alone)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e.conftest import _database
from e2e.helpers import FINAL, HubClient, claim_body
from support.processes import (
    Secrets,
    Stack,
    free_port,
    start,
    start_configured_hub,
    wait_for,
)
from support.yonyou import yonyou_config, yonyou_simulator

CLAIMS = 24
# About one request in five faulted; seed 32 draws each kind at least thrice in 30 requests.
FAULTS = {"error_rate": 0.07, "timeout_rate": 0.075, "drop_rate": 0.075, "seed": 32}
CASES = [("u8", "sqlite"), ("nc", "sqlite"), ("u8", "postgresql"), ("nc", "postgresql")]


@pytest.fixture(scope="module", params=CASES, ids=lambda p: "-".join(p))
def hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HubClient, str]]:
    profile, backend = request.param
    directory = tmp_path_factory.mktemp(f"yonyou-{profile}-{backend}")
    secrets = Secrets.fresh()
    hub_port, oa_port = free_port(), free_port()
    env = {**secrets.env(), "FINOA_DATA_DIR": str(directory / "data")}
    with (
        _database(backend, directory, request) as database_url,
        yonyou_simulator(directory / "yonyou", profile) as (erp, credentials),
    ):
        oa = start(
            "oa",
            ["sim", "oa", "--port", str(oa_port), "--hub-url", f"http://127.0.0.1:{hub_port}",
             "--reject-rate", "0"],
            env, "/_sim/stats", oa_port, directory,
        )  # fmt: skip
        try:
            connectors = {
                "generic-oa": {"connector": "generic-oa", "default": True, "config": {
                    "base_url": oa.url, "api_key_env": "FINOA_OA_API_KEY",
                    "webhook_secret_env": "FINOA_OA_WEBHOOK_SECRET"}},
                "yonyou": {"connector": f"yonyou-{profile}", "default": True,
                           "config": yonyou_config(profile, erp.url, credentials,
                                                   timeout_seconds=1)},
            }  # fmt: skip
            server = start_configured_hub(env, connectors, database_url, hub_port, directory)
            try:
                with HubClient(Stack(server, oa, erp, secrets, directory)) as client:
                    yield client, profile
            finally:
                server.stop()
        finally:
            oa.stop()


def test_twenty_percent_faults_leave_no_voucher_missing_or_doubled(
    hub: tuple[HubClient, str],
) -> None:
    client, profile = hub
    # The ERP's base data lacks project P003: that claim's voucher is refused, naming it.
    withdrawn = httpx.post(f"{client.erp_url}/_sim/base-data/withdraw", json={"item_id": ["P003"]})
    assert withdrawn.status_code == 200 and "P003" not in withdrawn.json()["item_id"]
    httpx.post(f"{client.erp_url}/_sim/faults", json=FAULTS).raise_for_status()
    claims = [client.submit(claim_body(amount=f"{100 + i}.25")) for i in range(CLAIMS - 1)]
    claims.append(client.submit(claim_body(project_id="P003")))

    def key(claim: dict[str, Any]) -> str:
        return f"finoa-voucher-V{claim['id'][2:]}"

    def dead_vouchers() -> dict[str, dict[str, Any]]:
        letters = client.dead_letters()
        return {d["idempotency_key"]: d for d in letters if d["action"] == "voucher.post"}

    def settled() -> list[dict[str, Any]] | None:
        now = [client.claim(c["id"]) for c in claims]
        dead = dead_vouchers()
        return now if all(c["status"] in FINAL or key(c) in dead for c in now) else None

    final = wait_for(settled, 180, "every claim to be posted or dead-lettered")
    client.quiesce(60)
    stats = httpx.get(f"{client.erp_url}/_sim/stats").json()
    injected = stats["faults"]["injected"]
    assert injected["errors"] and injected["timeouts"] and injected["drops"], injected

    vouchers = httpx.get(f"{client.erp_url}/_sim/vouchers").json()
    per_key = Counter(v["reference"] for v in vouchers)
    assert [k for k, n in per_key.items() if n > 1] == []  # none doubled
    posted = [c for c in final if c["status"] == "posted"]
    expected = {key(c) for c in posted}
    assert set(per_key) == expected  # none missing, none extra
    for claim in posted:
        (mine,) = [v for v in vouchers if v["reference"] == key(claim)]
        assert claim["voucher"]["erp_voucher_no"] == f"{mine['period']}-{mine['voucher_no']}"
    dead = dead_vouchers()
    assert all(letter["reason"] for letter in dead.values()), dead
    unknown_project = dead[key(claims[-1])]
    assert unknown_project["error_class"] == "permanent"
    assert "item_id 'P003' does not exist" in unknown_project["reason"], unknown_project
    assert len(posted) + len(dead) == CLAIMS
    assert all(c["status"] == "posted" or key(c) in dead for c in final)
