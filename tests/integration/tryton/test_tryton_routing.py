"""Which ERP receives a voucher follows its org unit (`routing.erp` in finoa.yaml), and each
ERP connector maps finoa's codes through its `voucher` mapping (overridable under
`mappings:`): one hub, a real Tryton for D02 and the generic ERP for everything else."""

from __future__ import annotations

import uuid
from dataclasses import replace

import httpx
from sqlalchemy import select
from support.claims import one_line_claim
from support.processes import Secrets, Server
from support.tryton import TrytonAdmin, TrytonProcess, deliver

from finoa.config import Settings
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.queries import get_claim
from finoa.store.tables import outbox, vouchers


def routed_hub(
    settings: Settings,
    sims: tuple[Server, Server],
    secrets: Secrets,
    trytond: TrytonProcess,
    mappings: dict[str, object],
) -> Hub:
    oa, erp = sims
    connectors = {
        "hq-oa": {
            "connector": "generic-oa",
            "config": {
                "base_url": oa.url,
                "api_key": secrets.oa_api_key,
                "webhook_secret": secrets.oa_webhook_secret,
            },
        },
        "erp-tryton": {"connector": "tryton", "config": trytond.site.connector_config()},
        "erp-group": {
            "connector": "generic-erp",
            "config": {"base_url": erp.url, "api_key": secrets.erp_api_key},
        },
    }
    routing = {"erp": {"by": "org_unit", "table": {"D02": "erp-tryton"}, "default": "erp-group"}}
    hub = Hub.create(
        replace(
            settings,
            oa_base_url=oa.url,
            oa_api_key=secrets.oa_api_key,
            extra={
                **settings.extra,
                "connectors": connectors,
                "routing": routing,
                "mappings": mappings,
            },
        )
    )
    load_masterdata(hub.db)
    return hub


def approve(hub: Hub, applicant: str, department: str, category: str) -> str:
    submission = one_line_claim(
        f"R-{uuid.uuid4().hex[:8]}",
        applicant_id=applicant,
        department_id=department,
        category=category,
        amount="120.00",
    )
    claim_id = submit_claim(hub, submission, source="t", actor="t").claim_id
    (task,) = get_claim(hub.db, claim_id).tasks
    decide_task(hub, task.id, task.assignee_id, True, "同意", actor="t")
    return claim_id


def test_vouchers_go_where_the_routing_table_says_in_each_erps_codes(
    settings: Settings,
    sims: tuple[Server, Server],
    secrets: Secrets,
    trytond: TrytonProcess,
    tryton_admin: TrytonAdmin,
) -> None:
    # Tryton's chart has no travel account of its own in this company: travel posts to 6602.04
    override = {
        "mapping": "tryton/voucher",
        "version": 2,
        "target": "voucher",
        "code_tables": {
            "accounts": {
                "file": "tryton/tables/accounts.yaml",
                "values": {"6602.01": "6602.04"},
            },
        },
        "fields": {},
    }
    hub = routed_hub(settings, sims, secrets, trytond, {"tryton/voucher": override})
    try:
        to_tryton = approve(hub, "E0011", "D02", "travel")
        to_group = approve(hub, "E0021", "D03", "travel")
        deliver(hub)
        with hub.db.engine.connect() as conn:
            where = {r.claim_id: (r.id, r.erp_instance) for r in conn.execute(select(vouchers))}
            rows = {
                r.aggregate_id: (r.destination, r.status, r.last_error)
                for r in conn.execute(select(outbox).where(outbox.c.action == "voucher.post"))
            }
        statuses = [get_claim(hub.db, c).status for c in (to_tryton, to_group)]
    finally:
        hub.close()
    tryton_voucher, tryton_instance = where[to_tryton]
    group_voucher, group_instance = where[to_group]
    assert (tryton_instance, group_instance) == ("erp-tryton", "erp-group")
    assert rows[tryton_voucher] == ("erp-tryton", "done", None)
    assert rows[group_voucher] == ("erp-group", "done", None)
    assert statuses == ["posted", "posted"]
    (move,) = tryton_admin.moves([f"finoa:{tryton_voucher}"])
    codes = sorted(line["account."]["code"] for line in tryton_admin.lines(move["id"]))
    assert codes == ["2241", "6602.04"]  # the override's code, not finoa's 6602.01
    assert tryton_admin.moves([f"finoa:{group_voucher}"]) == []
    _, erp = sims
    in_group = [
        v
        for v in httpx.get(f"{erp.url}/_sim/vouchers").json()
        if v["reference"].endswith(group_voucher)
    ]
    assert len(in_group) == 1
    accounts = sorted(e["account_code"] for e in in_group[0]["voucher"]["entries"])
    assert accounts == ["2241", "6602.01"]  # the generic ERP keeps finoa's chart


def test_an_account_the_mapping_does_not_list_is_refused_before_posting_naming_it(
    settings: Settings,
    sims: tuple[Server, Server],
    secrets: Secrets,
    trytond: TrytonProcess,
    tryton_admin: TrytonAdmin,
) -> None:
    narrow = {
        "mapping": "tryton/voucher",
        "version": 3,
        "code_tables": {"accounts": {"values": {"2241": "2241", "6602.04": "6602.04"}}},
        "fields": {},
    }
    hub = routed_hub(settings, sims, secrets, trytond, {"tryton/voucher": narrow})
    before = len(tryton_admin.moves())
    try:
        claim_id = approve(hub, "E0011", "D02", "lodging")  # 6602.02, not listed
        deliver(hub)
        with hub.db.engine.connect() as conn:
            (row,) = conn.execute(select(outbox).where(outbox.c.action == "voucher.post")).all()
        status = get_claim(hub.db, claim_id).status
    finally:
        hub.close()
    assert row.destination == "erp-tryton" and row.status == "dead"
    assert "entries[0].account_code: account 6602.02 has no mapping in tryton/voucher" in (
        row.last_error
    )
    assert status == "approved"  # not posted
    assert len(tryton_admin.moves()) == before
