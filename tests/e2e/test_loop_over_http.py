"""The whole loop over real HTTP: hub, OA simulator and ERP simulator as separate processes.

claim in (REST or signed OA webhook) → approval todos in the OA → decisions back → one voucher
in the ERP → every status change written back to the OA. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from e2e.helpers import (
    VOUCHER_NO,
    HubClient,
    StackFactory,
    assert_problem,
    claim_body,
    claim_total_fen,
    new_external_id,
)
from support.processes import wait_for

LOOP = ["submitted", "in_approval", "approved", "posted"]


@pytest.fixture(scope="module")
def auto(start_stack: StackFactory) -> Iterator[HubClient]:
    """Simulated approvers approve every todo (reject_rate 0)."""
    with start_stack(auto_decide=True, reject_rate=0.0) as hub:
        yield hub


@pytest.fixture(scope="module")
def manual(start_stack: StackFactory) -> Iterator[HubClient]:
    """Nobody decides in the OA; decisions come through the REST API."""
    with start_stack(auto_decide=False) as hub:
        yield hub


def sixty_thousand_yuan_claim() -> dict[str, Any]:
    return claim_body(
        title="年度经销商大会 Annual dealer conference",
        lines=[
            {"category": "meeting", "amount": "52000.00", "expense_date": "2025-10-20"},
            {
                "category": "lodging",
                "amount": "8000.00",
                "tax": "452.83",
                "expense_date": "2025-10-20",
            },
        ],
    )


def assert_posted_once(hub: HubClient, claim: dict[str, Any], total_fen: int) -> None:
    """One voucher in the ERP for the claim, matching the hub's; the OA heard every status."""
    claim_id, external_id = claim["id"], claim["external_id"]
    assert claim["status"] == "posted"
    assert claim["total_fen"] == total_fen
    voucher = claim["voucher"]
    assert voucher is not None and voucher["status"] == "posted"
    assert re.match(VOUCHER_NO, voucher["voucher_no"]), voucher["voucher_no"]
    assert voucher["total_fen"] == total_fen

    (erp,) = hub.erp_vouchers(claim_id)  # exactly one
    assert erp["idempotency_key"] == f"finoa-voucher-V{claim_id[2:]}"
    assert erp["hub_voucher_no"] == voucher["voucher_no"]
    assert re.match(VOUCHER_NO, erp["erp_voucher_no"]), erp["erp_voucher_no"]
    assert voucher["erp_voucher_no"] == erp["erp_voucher_no"]
    entries = erp["voucher"]["entries"]
    assert sum(e["debit_fen"] for e in entries) == total_fen
    assert sum(e["credit_fen"] for e in entries) == total_fen

    history = hub.wait_history(external_id, "posted")
    assert [h["status"] for h in history] == LOOP
    assert {h["claim_id"] for h in history} == {claim_id}
    assert all(h["voucher_no"] is None and h["erp_voucher_no"] is None for h in history[:-1])
    posted = history[-1]
    assert posted["voucher_no"] == voucher["voucher_no"]
    assert posted["erp_voucher_no"] == erp["erp_voucher_no"]
    assert posted["reason"] is None


def test_rest_claims_are_approved_posted_once_and_written_back(auto: HubClient) -> None:
    bodies = [claim_body(amount=a) for a in ("88.00", "1280.50", "4321.09")]
    big = sixty_thousand_yuan_claim()
    assert claim_total_fen(big) == 6_000_000
    submitted = []
    for body in [*bodies, big]:
        response = auto.post_claim(body)
        assert response.status_code == 201, response.text
        claim = response.json()
        assert response.headers["location"] == f"/api/v1/claims/{claim['id']}"
        assert claim["source"] == auto.stack.secrets.client_id
        assert claim["external_id"] == body["external_id"]
        assert claim["total_fen"] == claim_total_fen(body)
        assert claim["status"] not in ("submitted", "rejected")
        submitted.append((claim["id"], body))

    for claim_id, body in submitted:
        claim = auto.wait_claim(claim_id, "posted")
        assert_posted_once(auto, claim, claim_total_fen(body))

    for claim_id, _ in submitted[:-1]:  # below 5,000 yuan: the manager alone
        tasks = auto.claim(claim_id)["tasks"]
        assert [(t["role"], t["assignee_id"], t["status"]) for t in tasks] == [
            ("manager", "E0010", "approved")
        ]

    big_id = submitted[-1][0]
    tasks = sorted(auto.claim(big_id)["tasks"], key=lambda t: t["created_at"])
    assert [(t["role"], t["assignee_id"], t["status"]) for t in tasks] == [
        ("manager", "E0010", "approved"),
        ("finance_director", "E0003", "approved"),
        ("cfo", "E0002", "approved"),
    ]
    assert all(t["decided_at"] is not None and t["comment"] == "同意" for t in tasks)
    todos = auto.oa_todos(big_id)
    assert sorted((t["role"], t["assignee_id"], t["state"]) for t in todos) == [
        ("cfo", "E0002", "closed"),
        ("finance_director", "E0003", "closed"),
        ("manager", "E0010", "closed"),
    ]
    assert all(t["amount_fen"] == 6_000_000 and t["currency"] == "CNY" for t in todos)

    refs = Counter(v["source_ref"] for v in auto.erp_vouchers())
    assert all(n == 1 for n in refs.values()), refs

    # every submission and decision above went through the group commit
    stats = auto.stats()
    figures = stats["group_commit"]
    assert figures["commands"] >= len(submitted) + len(submitted[:-1]) + len(tasks)
    assert 1 <= figures["batches"] <= figures["commands"]
    assert figures["mean_batch"] == round(figures["commands"] / figures["batches"], 2)
    assert figures["unknown_outcomes"] == 0
    # the in-process dispatcher's counters and a closed circuit per destination it sent to
    delivery = stats["delivery"]
    assert delivery["delivered"] >= len(refs)
    assert delivery["dead_lettered"] == 0
    assert {c["state"] for c in delivery["circuits"].values()} == {"closed"}


def test_oa_webhook_claims_complete_and_a_resend_is_a_duplicate(auto: HubClient) -> None:
    bodies = [claim_body(external_id=new_external_id("OA-WH"), amount=a) for a in ("66.60", "777")]
    reports = [auto.oa_submit(body) for body in bodies]
    for body, report in zip(bodies, reports, strict=True):
        assert report["status_code"] == 200, report
        assert report["webhook_id"] == f"claim-{body['external_id']}-1"
        assert report["body"]["duplicate"] is False
    for body, report in zip(bodies, reports, strict=True):
        claim = auto.wait_claim(report["body"]["claim_id"], "posted")
        assert claim["source"] == "generic-oa"
        assert claim["external_id"] == body["external_id"]
        assert_posted_once(auto, claim, claim_total_fen(body))

    first, report = bodies[0], reports[0]
    with auto.writes_nothing():
        again = auto.oa_submit(first)  # the same webhook id
        assert again["status_code"] == 200, again
        assert again["body"] == {"claim_id": report["body"]["claim_id"], "duplicate": True}
        # the same claim (source, external id, version) under a new message id
        resent = auto.webhook({"type": "claim.submitted", "data": first})
        assert resent.status_code == 200, resent.text
        assert resent.json() == {"claim_id": report["body"]["claim_id"], "duplicate": True}
    assert len(auto.erp_vouchers(report["body"]["claim_id"])) == 1
    assert [h["status"] for h in auto.oa_history(first["external_id"])] == LOOP


def test_rejection_by_rest_decision_is_written_back_without_voucher(manual: HubClient) -> None:
    manual.quiesce()
    erp_before = manual.erp_stats()
    body = claim_body()
    claim = manual.submit(body)
    claim_id = claim["id"]
    (task,) = claim["tasks"]
    assert (task["role"], task["assignee_id"], task["status"]) == ("manager", "E0010", "pending")
    wait_for(
        lambda: [t["state"] for t in manual.oa_todos(claim_id)] == ["open"],
        15,
        "the approval todo in E0010's OA list",
    )

    reason = "发票抬头错误 / wrong invoice title"
    response = manual.decide(
        task["id"], {"approver_id": "E0010", "decision": "reject", "comment": reason}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "task_id": task["id"],
        "claim_id": claim_id,
        "claim_status": "rejected",
    }

    claim = manual.claim(claim_id)
    assert claim["status"] == "rejected"
    assert claim["reason"] == reason
    assert claim["voucher"] is None
    (task,) = claim["tasks"]
    assert (task["status"], task["comment"]) == ("rejected", reason)

    history = manual.wait_history(body["external_id"], "rejected")
    assert [h["status"] for h in history] == ["submitted", "in_approval", "rejected"]
    assert history[-1]["reason"] == reason
    assert history[-1]["voucher_no"] is None and history[-1]["erp_voucher_no"] is None
    wait_for(
        lambda: [t["state"] for t in manual.oa_todos(claim_id)] == ["closed"],
        15,
        "the todo to be closed",
    )

    manual.quiesce()
    assert manual.erp_vouchers(claim_id) == []
    erp_after = manual.erp_stats()
    assert (erp_after["vouchers"], erp_after["requests"]) == (
        erp_before["vouchers"],
        erp_before["requests"],
    )


def test_dropped_erp_answer_still_posts_exactly_one_voucher(auto: HubClient) -> None:
    auto.quiesce()
    before = auto.erp_stats()
    auto.erp_faults(drop_rate=1.0, count=1)  # the voucher is stored, the answer never sent
    try:
        body = claim_body(amount="2345.60")
        claim = auto.submit(body)
        claim = auto.wait_claim(claim["id"], "posted", timeout_s=45)
    finally:
        auto.clear_erp_faults()
    after = auto.erp_stats()
    assert after["faults"]["injected"]["drops"] == before["faults"]["injected"]["drops"] + 1
    assert after["vouchers"] == before["vouchers"] + 1
    # the next attempt asked the ERP first (posted-lookup by reference) and found the voucher:
    # nothing was posted again, so the ERP never even saw a repeated idempotency key
    assert after["duplicates"] == before["duplicates"]
    assert_posted_once(auto, claim, claim_total_fen(body))


def test_permanent_erp_refusal_is_dead_lettered_and_replayed(auto: HubClient) -> None:
    auto.quiesce()
    auto.erp_faults(error_rate=1.0, error_status=422)
    try:
        body = claim_body(amount="999.99")
        claim_id = auto.submit(body)["id"]

        def letter_for_claim() -> dict[str, Any] | None:
            return next(
                (
                    d
                    for d in auto.dead_letters()
                    if d["action"] == "voucher.post" and d["payload"]["claim_id"] == claim_id
                ),
                None,
            )

        letter = wait_for(letter_for_claim, 30, "the voucher.post dead letter")
    finally:
        auto.clear_erp_faults()

    claim = auto.claim(claim_id)
    assert claim["status"] == "approved"
    assert claim["voucher"]["status"] == "posting"
    assert letter["destination"] == "generic-erp"  # the default ERP instance
    assert letter["aggregate_id"] == f"V{claim_id[2:]}"
    assert letter["idempotency_key"] == f"finoa-voucher-V{claim_id[2:]}"
    assert letter["error_class"] == "permanent"
    assert letter["attempts"] == 1
    assert "HTTP 422" in letter["reason"] and "simulated HTTP 422" in letter["reason"]
    assert letter["payload"]["hub_voucher_no"] == claim["voucher"]["voucher_no"]
    debits = sum(e["debit_fen"] for e in letter["payload"]["entries"])
    assert debits == claim_total_fen(body)
    assert auto.erp_vouchers(claim_id) == []
    history = auto.wait_history(body["external_id"], "approved")
    assert [h["status"] for h in history] == LOOP[:3]

    response = auto.http.post(
        f"{auto.url}/api/v1/dead-letters/{letter['id']}/replay", headers=auto.auth()
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"replayed": [letter["id"]]}

    claim = auto.wait_claim(claim_id, "posted")
    assert_posted_once(auto, claim, claim_total_fen(body))
    assert letter["id"] not in [d["id"] for d in auto.dead_letters()]
    again = auto.http.post(
        f"{auto.url}/api/v1/dead-letters/{letter['id']}/replay", headers=auto.auth()
    )
    assert_problem(again, 404, field="id")
