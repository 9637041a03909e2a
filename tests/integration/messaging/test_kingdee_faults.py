"""Vouchers into K/3 Cloud exactly once under faults, and their red-ink reversals, through
the hub's real dispatcher.

The K/3 Cloud simulator keeps no idempotency keys. A fifth of its requests fail before the
work, a fifth hang until the client gives up, and a fifth do the work and lose the answer.
Sessions end every few seconds, so the connector signs in again mid-run. Afterwards the
simulator's ledger holds each claim's voucher exactly once, audited; no claim is left
half-done; and no Save ever carried an internal id (which would overwrite a voucher).

Half of all requests fail, so the endpoint's circuit breaker opens again and again; its
cooldown is capped at a second here (a minute by default) so the test does not wait on it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from support.claims import one_line_claim
from support.kingdee import KingdeeSim, kingdee_simulator
from support.processes import Secrets, Server, free_port, simulators

from finoa.config import Settings
from finoa.messaging.circuit import CircuitBreaker
from finoa.runtime import build_dispatcher, new_http_client
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.queries import get_claim
from finoa.services.vouchers import reverse_voucher
from finoa.store.tables import outbox

CLAIMS = 24
ERP_INSTANCE = "k3cloud"
APPLICANTS = [("E0011", "D02"), ("E0021", "D03"), ("E0031", "D04"), ("E0041", "D05")]


@pytest.fixture(scope="module")
def oa(tmp_path_factory: pytest.TempPathFactory, secrets: Secrets) -> Iterator[Server]:
    with simulators(tmp_path_factory.mktemp("sims"), secrets, free_port(), auto_decide=False) as (
        oa,
        _,
    ):
        yield oa


@pytest.fixture
def kingdee(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KingdeeSim]:
    with kingdee_simulator(tmp_path_factory.mktemp("kingdee"), session_seconds=3) as sim:
        yield sim


def drain(hub: Hub, deadline_s: float = 300.0) -> None:
    """Run the dispatcher until no row is pending or in flight (or the deadline passes)."""

    async def run() -> None:
        http = new_http_client(hub.settings)
        try:
            dispatcher = build_dispatcher(hub, http)
            dispatcher.breakers[ERP_INSTANCE] = CircuitBreaker(max_cooldown_seconds=1.0)
            deadline = time.monotonic() + deadline_s
            while time.monotonic() < deadline and open_rows(hub):
                await dispatcher.run_until_idle(10)
        finally:
            await http.aclose()

    asyncio.run(run())


def open_rows(hub: Hub) -> list[Any]:
    """(id, action, attempts, last error) of each row not delivered yet."""
    with hub.db.engine.connect() as conn:
        return conn.execute(
            select(outbox.c.id, outbox.c.action, outbox.c.attempts, outbox.c.last_error).where(
                outbox.c.status.in_(("pending", "inflight"))
            )
        ).all()


@pytest.fixture
def hub(
    settings: Settings,
    oa: Server,
    kingdee: KingdeeSim,
    secrets: Secrets,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Hub]:
    """The hub with the OA simulator and one K/3 Cloud instance (password from the env)."""
    monkeypatch.setenv("FINOA_TEST_KINGDEE_PASSWORD", kingdee.credentials["password"])
    erp_config = kingdee.config("password", timeout_seconds=0.5)
    del erp_config["password"]
    erp_config["password_env"] = "FINOA_TEST_KINGDEE_PASSWORD"
    connectors = {
        "hq-oa": {
            "connector": "generic-oa",
            "config": {
                "base_url": oa.url,
                "api_key": secrets.oa_api_key,
                "webhook_secret": secrets.oa_webhook_secret,
            },
        },
        ERP_INSTANCE: {"connector": "kingdee", "config": erp_config, "companies": ["D00"]},
    }
    hub = Hub.create(
        replace(
            settings,
            oa_base_url=oa.url,
            oa_api_key=secrets.oa_api_key,
            retry_base_seconds=0.05,
            retry_cap_seconds=0.2,
            extra={**settings.extra, "connectors": connectors},
        )
    )
    load_masterdata(hub.db)
    yield hub
    hub.close()


def approved_claim(hub: Hub, n: int) -> str:
    applicant, department = APPLICANTS[n % len(APPLICANTS)]
    submission = one_line_claim(
        f"K-{uuid.uuid4().hex[:8]}",
        applicant_id=applicant,
        department_id=department,
        category="travel",
        amount=f"{20 + 7 * n}.50",
    )
    claim_id = submit_claim(hub, submission, source="t", actor="t").claim_id
    (task,) = get_claim(hub.db, claim_id).tasks
    decide_task(hub, task.id, task.assignee_id, True, "同意", actor="t")
    return claim_id


def test_twenty_percent_faults_of_each_kind_leave_no_duplicate_and_no_gap(
    hub: Hub, kingdee: KingdeeSim
) -> None:
    claim_ids = [approved_claim(hub, n) for n in range(CLAIMS)]
    kingdee.faults(error_rate=0.2, timeout_rate=0.2, drop_rate=0.2, seed=8)
    drain(hub)
    injected = kingdee.stats()["faults"]["injected"]
    kingdee.clear_faults()

    assert open_rows(hub) == []
    assert all(injected[kind] > 10 for kind in ("errors", "timeouts", "drops")), injected
    with hub.db.engine.connect() as conn:
        dead = conn.execute(
            select(outbox.c.aggregate_id, outbox.c.last_error).where(outbox.c.status == "dead")
        ).all()
    assert all(reason for _, reason in dead), dead  # a dead letter says why
    claims = {claim_id: get_claim(hub.db, claim_id) for claim_id in claim_ids}
    posted = {cid for cid, claim in claims.items() if claim.status == "posted"}
    assert posted == set(claim_ids), {c: claims[c].status for c in set(claim_ids) - posted}

    ledger = kingdee.vouchers()
    references = Counter(ref for v in ledger for ref in v["References"])
    expected = {f"finoa-voucher-V{cid[2:]}" for cid in claim_ids}
    assert set(references) == expected  # nothing missing, nothing foreign
    assert set(references.values()) == {1}  # nothing doubled
    assert len(ledger) == CLAIMS and {v["DocumentStatus"] for v in ledger} == {"C"}
    assert all(v["Saves"] == 1 for v in ledger)
    stats = kingdee.stats()
    assert stats["overwrites"] == 0  # no Save ever carried an internal id
    assert httpx.get(f"{kingdee.url}/_sim/overwrites").json() == []
    assert stats["logins"] > 1  # sessions ended mid-run and the connector signed in again


def test_a_reversal_is_a_red_ink_voucher_of_its_own(hub: Hub, kingdee: KingdeeSim) -> None:
    claim_id = approved_claim(hub, 3)
    drain(hub)
    voucher_id = f"V{claim_id[2:]}"
    reversal_id = reverse_voucher(hub, voucher_id, actor="finance")
    drain(hub)
    assert open_rows(hub) == []
    by_reference = {v["References"][0]: v for v in kingdee.vouchers()}
    original = by_reference[f"finoa-voucher-{voucher_id}"]
    red = by_reference[f"finoa-voucher-{reversal_id}"]
    assert original["DocumentStatus"] == red["DocumentStatus"] == "C"
    assert original["Saves"] == 1  # the original is never saved over
    assert [e["Account"] for e in red["Entity"]] == [e["Account"] for e in original["Entity"]]
    for o, r in zip(original["Entity"], red["Entity"], strict=True):
        assert (Decimal(r["Debit"]), Decimal(r["Credit"])) == (
            -Decimal(o["Debit"]),
            -Decimal(o["Credit"]),
        )
        assert r["Explanation"].startswith("冲销 ") and r["Detail"] == o["Detail"]
    assert kingdee.stats()["overwrites"] == 0
