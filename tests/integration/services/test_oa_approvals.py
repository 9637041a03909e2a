"""OA-led approvals against a real database (SQLite and PostgreSQL): the OA's final result
decides the claim, once; the instance finoa asked the OA to create is kept with the claim."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from support.budgets import budget, load_budgets
from support.claims import one_line_claim, row_counts

from finoa.config import load_settings
from finoa.connectors.base import ApprovalResult, ConcludeApproval
from finoa.connectors.dingtalk.crypto import new_encoding_aes_key
from finoa.domain.errors import Conflict, NotFound
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.oa_approvals import approval_conclusion, record_approval_created
from finoa.store.tables import approval_tasks, audit_events, claims, oa_approvals, outbox, vouchers

SOURCE = "generic-oa"


def claim(external_id: str, amount: str = "120.00"):  # type: ignore[no-untyped-def]
    return one_line_claim(
        external_id, applicant_id="E0011", department_id="D02", category="travel", amount=amount
    )


def conclude(
    hub: Hub, message_id: str, approval_id: str, result: ApprovalResult, source: str = SOURCE, **kw
):  # type: ignore[no-untyped-def]
    command = ConcludeApproval(message_id, approval_id, result, **kw)
    return hub.db.perform(approval_conclusion(hub, source, command), actor="oa")


def test_a_claim_started_in_the_oa_is_decided_by_its_final_result(hub: Hub) -> None:
    submitted = submit_claim(
        hub,
        claim("PI-1"),
        source=SOURCE,
        actor="oa",
        message_id="start-1",
        oa_instance=SOURCE,
        oa_approval_id="PI-1",
    )
    with hub.db.engine.connect() as conn:
        assert (
            conn.execute(
                select(approval_tasks).where(approval_tasks.c.claim_id == submitted.claim_id)
            ).first()
            is None
        )
        link = conn.execute(select(oa_approvals)).one()
    assert (link.oa_approval_id, link.status) == ("PI-1", "running")
    done = conclude(hub, "finish-1", "PI-1", ApprovalResult.AGREE, actor_id="E0010")
    assert (done.claim_status, done.duplicate) == ("approved", False)
    with hub.db.engine.connect() as conn:
        row = conn.execute(select(claims).where(claims.c.id == submitted.claim_id)).one()
        assert row.status == "approved" and row.voucher_id is not None
        assert conn.execute(select(vouchers.c.id)).scalar_one() == row.voucher_id
        posts = conn.execute(select(outbox.c.action).where(outbox.c.action == "voucher.post")).all()
        assert len(posts) == 1
    # the same event again is a duplicate; nothing more is written
    before = row_counts(hub, [audit_events, outbox, vouchers])
    assert conclude(hub, "finish-1", "PI-1", ApprovalResult.AGREE, actor_id="E0010").duplicate
    # the same result under another id changes nothing either; another result is refused
    assert conclude(hub, "finish-1b", "PI-1", ApprovalResult.AGREE).claim_status == "approved"
    assert row_counts(hub, [audit_events, outbox, vouchers]) == before
    with pytest.raises(Conflict, match="already ended with agree"):
        conclude(hub, "finish-2", "PI-1", ApprovalResult.REFUSE)


@pytest.mark.parametrize(
    ("result", "status", "reason"),
    [
        (ApprovalResult.REFUSE, "rejected", "refused in the OA"),
        (ApprovalResult.REVOKE, "withdrawn", "revoked in the OA by the applicant"),
        (ApprovalResult.TERMINATE, "withdrawn", "terminated in the OA"),
    ],
)
def test_other_results_end_the_claim_with_a_reason(
    hub: Hub, result: ApprovalResult, status: str, reason: str
) -> None:
    submitted = submit_claim(
        hub,
        claim("PI-2"),
        source=SOURCE,
        actor="oa",
        message_id="s",
        oa_instance=SOURCE,
        oa_approval_id="PI-2",
    )
    conclude(hub, "f", "PI-2", result)
    with hub.db.engine.connect() as conn:
        row = conn.execute(select(claims).where(claims.c.id == submitted.claim_id)).one()
    assert (row.status, row.reason, row.voucher_id) == (status, reason, None)


@pytest.mark.parametrize("result", [ApprovalResult.REFUSE, ApprovalResult.TERMINATE])
def test_a_claim_ended_in_the_oa_gives_its_budget_back(hub: Hub, result: ApprovalResult) -> None:
    """Sales (D02) has 1,000 元 for the year; a 120 元 claim started in the OA holds 120 of it
    until the OA ends it without approval, and then holds nothing."""
    period = str(hub.db.clock().astimezone(hub.settings.company_zone).year)
    (d02,) = load_budgets(hub, f"org_unit,D02,,{period},1000.00,block\n").budget_ids
    submit_claim(
        hub,
        claim("PI-B"),
        source=SOURCE,
        actor="oa",
        message_id="s-b",
        oa_instance=SOURCE,
        oa_approval_id="PI-B",
    )
    assert budget(hub, d02).occupied_fen == 12_000
    conclude(hub, "f-b", "PI-B", result)
    assert (budget(hub, d02).occupied_fen, budget(hub, d02).balance_fen) == (0, 100_000)


def test_an_unknown_oa_instance_is_refused_naming_it(hub: Hub) -> None:
    before = row_counts(hub, [audit_events, outbox])
    with pytest.raises(NotFound) as caught:
        conclude(hub, "x", "PI-404", ApprovalResult.AGREE)
    assert caught.value.field == "oa_approval_id"
    assert row_counts(hub, [audit_events, outbox]) == before


@pytest.fixture
def oa_led_hub(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    config = {
        "app_key": "dingapp",
        "app_secret": "s",
        "token": "t",
        "aes_key": new_encoding_aes_key(),
        "process_code": "PROC-1",
        "api_base_url": "http://127.0.0.1:9",
        "oapi_base_url": "http://127.0.0.1:9",
    }
    connectors = {
        "dt": {"connector": "dingtalk", "approvals": {"expense_claim": "oa-led"}, "config": config},
        "erp-main": {
            "connector": "generic-erp",
            "config": {"base_url": "http://127.0.0.1:9", "api_key": "k"},
        },
    }
    settings = load_settings(data_dir=tmp_path / "data", database_url=db_url, connectors=connectors)
    hub = Hub.create(settings)
    load_masterdata(hub.db)
    yield hub
    hub.close()


def test_a_claim_started_in_finoa_asks_the_oa_to_create_the_approval(oa_led_hub: Hub) -> None:
    hub = oa_led_hub
    submitted = submit_claim(hub, claim("REST-1", "88.00"), source="api", actor="api")
    assert submitted.claim is not None and submitted.claim.tasks == []
    with hub.db.engine.connect() as conn:
        (create,) = conn.execute(select(outbox).where(outbox.c.action == "approval.create")).all()
        link = conn.execute(select(oa_approvals)).one()
    assert (create.destination, create.idempotency_key) == (
        "dt",
        f"approval:{submitted.claim_id}:create",
    )
    assert (
        create.payload["total_fen"] == 8800 and create.payload["lines"][0]["category"] == "travel"
    )
    assert (link.oa_approval_id, link.status) == (None, "creating")
    with hub.db.uow("dispatcher") as uow:
        record_approval_created(uow, submitted.claim_id, {"oa_approval_id": "PI-77"})
        uow.commit()
    assert conclude(hub, "f", "PI-77", ApprovalResult.AGREE, source="dt").claim_status == "approved"


def test_an_answer_without_an_instance_id_is_an_error(oa_led_hub: Hub) -> None:
    submitted = submit_claim(oa_led_hub, claim("REST-2"), source="api", actor="api")
    with oa_led_hub.db.uow("dispatcher") as uow, pytest.raises(ValueError, match="oa_approval_id"):
        record_approval_created(uow, submitted.claim_id, {})
