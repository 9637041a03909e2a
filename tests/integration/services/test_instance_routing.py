"""Routing by connector instance: a claim's todos and write-backs go back to the OA instance
it came from (REST claims: the default OA), its voucher and the voucher's reversal to the ERP
its org unit is mapped to, and an org unit no ERP takes refuses the approval."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select
from support.claims import one_line_claim, row_counts

from finoa.config import Settings
from finoa.domain.errors import Conflict
from finoa.security.signatures import new_secret
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.queries import get_claim
from finoa.services.vouchers import record_voucher_posted, reverse_voucher
from finoa.store.tables import claims, outbox, vouchers


def oa(url: str, **extra: Any) -> dict[str, Any]:
    config = {"base_url": url, "api_key": "k", "webhook_secret": new_secret()}
    return {"connector": "generic-oa", "config": config, **extra}


def erp(url: str, **extra: Any) -> dict[str, Any]:
    return {"connector": "generic-erp", "config": {"base_url": url, "api_key": "k"}, **extra}


def routed_hub(settings: Settings, **erps: dict[str, Any]) -> Iterator[Hub]:
    connectors = {
        "hq-oa": oa("http://hq.test", default=True),
        "branch-oa": oa("http://branch.test"),
        **erps,
    }
    hub = Hub.create(replace(settings, extra={**settings.extra, "connectors": connectors}))
    load_masterdata(hub.db)
    yield hub
    hub.close()


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    """Sales (D02) books in its own ERP; the rest of the group (company D00) in another."""
    yield from routed_hub(
        settings,
        **{
            "erp-sales": erp("http://sales.test", org_units=["D02"]),
            "erp-group": erp("http://group.test", companies=["D00"]),
        },
    )


@pytest.fixture
def partial_hub(settings: Settings) -> Iterator[Hub]:
    """Two ERPs that take only D02 and D03, and no default."""
    yield from routed_hub(
        settings,
        **{
            "erp-sales": erp("http://sales.test", org_units=["D02"]),
            "erp-rd": erp("http://rd.test", org_units=["D03"]),
        },
    )


def claim(external_id: str, applicant_id: str, department_id: str) -> Any:
    return one_line_claim(
        external_id,
        applicant_id=applicant_id,
        department_id=department_id,
        category="travel",
        amount="120.00",
    )


def destinations(hub: Hub, aggregate_id: str) -> set[tuple[str, str]]:
    with hub.db.engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.destination, outbox.c.action).where(
                outbox.c.aggregate_id == aggregate_id
            )
        )
        return {(r.destination, r.action) for r in rows}


def approve(hub: Hub, claim_id: str) -> None:
    (task,) = [t for t in get_claim(hub.db, claim_id).tasks if t.status == "pending"]
    decide_task(hub, task.id, task.assignee_id, True, "同意", actor="t")


def test_a_claim_writes_back_to_the_oa_instance_it_came_from(hub: Hub) -> None:
    from_branch = submit_claim(
        hub, claim("BR-1", "E0011", "D02"), source="branch-oa", actor="t", oa_instance="branch-oa"
    ).claim_id
    by_rest = submit_claim(hub, claim("API-1", "E0011", "D02"), source="client", actor="t")
    assert destinations(hub, from_branch) == {
        ("branch-oa", "status.writeback"),
        ("branch-oa", "todo.push"),
    }
    assert destinations(hub, by_rest.claim_id) == {
        ("hq-oa", "status.writeback"),
        ("hq-oa", "todo.push"),
    }
    approve(hub, from_branch)  # closing the todo and the new status go to the branch, too
    assert {d for d, _ in destinations(hub, from_branch)} == {"branch-oa"}
    with hub.db.engine.connect() as conn:
        stored = dict(conn.execute(select(claims.c.id, claims.c.oa_instance)).all())
    assert stored == {from_branch: "branch-oa", by_rest.claim_id: "hq-oa"}


def test_vouchers_and_their_reversals_go_to_the_erp_of_their_org_unit(hub: Hub) -> None:
    sales = submit_claim(hub, claim("S-1", "E0011", "D02"), source="oa", actor="t").claim_id
    rd = submit_claim(hub, claim("R-1", "E0021", "D03"), source="oa", actor="t").claim_id
    approve(hub, sales)
    approve(hub, rd)
    sales_voucher, rd_voucher = f"V{sales[2:]}", f"V{rd[2:]}"
    assert destinations(hub, sales_voucher) == {("erp-sales", "voucher.post")}
    assert destinations(hub, rd_voucher) == {("erp-group", "voucher.post")}  # via company D00
    with hub.db.uow("erp") as uow:
        record_voucher_posted(uow, sales_voucher, {"erp_voucher_no": "记-0100", "erp_id": "e1"})
        uow.commit()
    reversal = reverse_voucher(hub, sales_voucher, actor="t")
    assert destinations(hub, reversal) == {("erp-sales", "voucher.post")}
    with hub.db.engine.connect() as conn:
        stored = dict(conn.execute(select(vouchers.c.id, vouchers.c.erp_instance)).all())
    assert stored == {sales_voucher: "erp-sales", rd_voucher: "erp-group", reversal: "erp-sales"}
    with hub.db.engine.connect() as conn:
        payload = conn.execute(
            select(outbox.c.payload).where(outbox.c.aggregate_id == sales_voucher)
        ).scalar_one()
    assert payload["voucher_id"] == sales_voucher and payload["claim_id"] == sales  # canonical


def test_an_org_unit_no_erp_takes_refuses_the_approval_and_changes_nothing(
    partial_hub: Hub,
) -> None:
    claim_id = submit_claim(
        partial_hub, claim("M-1", "E0031", "D04"), source="oa", actor="t"
    ).claim_id
    before = row_counts(partial_hub, [vouchers, outbox])
    with pytest.raises(Conflict) as refused:
        approve(partial_hub, claim_id)
    assert refused.value.field == "department_id" and "D04" in str(refused.value)
    assert row_counts(partial_hub, [vouchers, outbox]) == before
    after = get_claim(partial_hub.db, claim_id)
    assert after.status == "in_approval" and [t.status for t in after.tasks] == ["pending"]
