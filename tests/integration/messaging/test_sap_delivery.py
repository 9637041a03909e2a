"""Vouchers into SAP through the hub's real dispatcher, on both databases, with the SAP
gateway simulator and the OA simulator as real processes: under 20% injected faults (errors
before the work, timeouts, answers lost after the document was posted) every voucher is one
document in SAP, none twice and none missing, and every claim ends posted or dead-lettered
with a reason; a reversal goes through BAPI_ACC_DOCUMENT_REV_POST; a closed posting period is
dead-lettered naming the field."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from support.claims import one_line_claim
from support.processes import Secrets, Server
from support.sap import sap_config, sap_simulator

from finoa.config import Settings
from finoa.connectors.sap.mapping import voucher_reference
from finoa.runtime import build_dispatcher, new_http_client
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.queries import get_claim
from finoa.services.vouchers import reverse_voucher
from finoa.store.tables import outbox, vouchers

Sim = tuple[Server, dict[str, str]]


@pytest.fixture(scope="module")
def sap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with sap_simulator(tmp_path_factory.mktemp("sap")) as running:
        yield running


@pytest.fixture
def sap_hub(
    settings: Settings, sims: tuple[Server, Server], secrets: Secrets, sap: Sim
) -> Iterator[Hub]:
    oa, _ = sims
    server, credentials = sap
    connectors = {
        "hq-oa": {
            "connector": "generic-oa",
            "config": {"base_url": oa.url, "api_key": secrets.oa_api_key,
                       "webhook_secret": secrets.oa_webhook_secret},
        },
        "sap-cn": {
            "connector": "sap",
            "default": True,
            "config": sap_config(server.url, credentials, timeout_seconds=0.5),
        },
    }  # fmt: skip
    hub = Hub.create(
        replace(
            settings,
            retry_base_seconds=0.05,
            retry_cap_seconds=0.2,
            extra={**settings.extra, "connectors": connectors},
        )
    )
    load_masterdata(hub.db)
    yield hub
    hub.close()
    httpx.delete(f"{server.url}/_sim/faults")


def deliver(hub: Hub, max_seconds: float = 90) -> None:
    async def run() -> None:
        http = new_http_client(hub.settings)
        try:
            await build_dispatcher(hub, http).run_until_idle(max_seconds)
        finally:
            await http.aclose()

    asyncio.run(run())


def approved_claim(hub: Hub) -> str:
    submission = one_line_claim(
        f"SAP-{uuid.uuid4().hex[:8]}", applicant_id="E0021", department_id="D03",
        category="training", amount="1090.00",
    )  # fmt: skip
    claim_id = submit_claim(hub, submission, source="t", actor="t").claim_id
    while pending := [t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending"]:
        decide_task(hub, pending[0].id, pending[0].assignee_id, True, "同意", actor="t")
    return claim_id


def ledger(server: Server) -> list[dict[str, Any]]:
    return list(httpx.get(f"{server.url}/_sim/documents").json())


def voucher_rows(hub: Hub) -> list[Any]:
    with hub.db.engine.connect() as conn:
        return list(conn.execute(select(vouchers)).all())


def voucher_messages(hub: Hub) -> list[Any]:
    with hub.db.engine.connect() as conn:
        return list(conn.execute(select(outbox).where(outbox.c.action == "voucher.post")).all())


def test_twenty_percent_faults_post_every_voucher_exactly_once(sap_hub: Hub, sap: Sim) -> None:
    server, _ = sap
    claim_ids = [approved_claim(sap_hub) for _ in range(12)]
    faults = {"error_rate": 0.07, "timeout_rate": 0.07, "drop_rate": 0.07, "seed": 8}
    httpx.post(f"{server.url}/_sim/faults", json=faults).raise_for_status()
    deliver(sap_hub)
    injected = httpx.get(f"{server.url}/_sim/faults").json()["injected"]
    assert injected["errors"] and injected["timeouts"] and injected["drops"]
    httpx.delete(f"{server.url}/_sim/faults")

    messages = voucher_messages(sap_hub)
    assert {m.status for m in messages} <= {"done", "dead"}
    assert all(m.last_error for m in messages if m.status == "dead")
    by_reference: dict[str, int] = {}
    for document in ledger(server):
        by_reference[document["XBLNR"]] = by_reference.get(document["XBLNR"], 0) + 1
    rows = [v for v in voucher_rows(sap_hub) if v.claim_id in claim_ids]
    assert len(rows) == len(claim_ids)
    for row in rows:
        in_sap = by_reference.get(voucher_reference(row.id), 0)
        if row.status == "posted":
            assert in_sap == 1, f"{row.id} is in SAP {in_sap} times"
            assert row.erp_voucher_no.endswith(f"/{row.period[:4]}")
        else:
            dead = [m for m in messages if m.aggregate_id == row.id and m.status == "dead"]
            assert dead and in_sap == 0, (row.status, in_sap)
    for claim_id in claim_ids:
        assert get_claim(sap_hub.db, claim_id).status == "posted"
    assert sum(r.status == "posted" for r in rows) == len(rows)  # nothing was dead-lettered


def test_a_reversal_goes_through_rev_post(sap_hub: Hub, sap: Sim) -> None:
    server, _ = sap
    claim_id = approved_claim(sap_hub)
    deliver(sap_hub)
    original = get_claim(sap_hub.db, claim_id).voucher
    assert original is not None and original.status == "posted"
    reversal_id = reverse_voucher(sap_hub, original.id, actor="finance")
    deliver(sap_hub)
    docs = [d for d in ledger(server) if d["XBLNR"] == voucher_reference(original.id)]
    assert sorted(d["XREVERSAL"] for d in docs) == ["1", "2"]
    reversed_doc = next(d for d in docs if d["XREVERSAL"] == "1")
    reversal_doc = next(d for d in docs if d["XREVERSAL"] == "2")
    assert reversed_doc["STBLG"] == reversal_doc["BELNR"]
    statuses = {v.id: v.status for v in voucher_rows(sap_hub) if v.claim_id == claim_id}
    assert statuses == {original.id: "reversed", reversal_id: "posted"}


def test_a_closed_period_is_dead_lettered_naming_the_field(sap_hub: Hub, sap: Sim) -> None:
    server, credentials = sap
    claim_id = approved_claim(sap_hub)
    voucher = get_claim(sap_hub.db, claim_id).voucher
    assert voucher is not None
    period = {"company_code": credentials["company_code"], "period": voucher.period, "open": False}
    httpx.post(f"{server.url}/_sim/periods", json=period).raise_for_status()
    try:
        deliver(sap_hub)
    finally:
        httpx.post(f"{server.url}/_sim/periods", json={**period, "open": True})
    (dead,) = [m for m in voucher_messages(sap_hub) if m.aggregate_id == voucher.id]
    assert dead.status == "dead"
    year, month = voucher.period.split("-")
    assert f"F5 201 Posting period 0{month} {year} is not open" in dead.last_error
    assert "FIELD PSTNG_DATE" in dead.last_error
    assert not [d for d in ledger(server) if d["XBLNR"] == voucher_reference(voucher.id)]
