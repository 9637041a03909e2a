"""Vouchers into a real Tryton: through the hub's dispatcher, over trytond's JSON-RPC, read
back from the running server; replays, reversal, closed periods, base data and sessions."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from support.claims import one_line_claim
from support.tryton import TrytonAdmin, TrytonProcess, deliver

from finoa.connectors.base import OutboundMessage
from finoa.connectors.tryton.client import TrytonConnector
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.queries import get_claim
from finoa.services.vouchers import reverse_voucher
from finoa.store.tables import outbox, vouchers


def approve_claim(
    hub: Hub, applicant: str = "E0011", department: str = "D02", amount: str = "88.00"
) -> str:
    submission = one_line_claim(
        f"T-{uuid.uuid4().hex[:8]}",
        applicant_id=applicant,
        department_id=department,
        category="travel",
        amount=amount,
        tax="0",
    )
    claim_id = submit_claim(hub, submission, source="t", actor="t").claim_id
    (task,) = get_claim(hub.db, claim_id).tasks
    decide_task(hub, task.id, task.assignee_id, True, "同意", actor="t")
    return claim_id


def voucher_rows(hub: Hub) -> list[Any]:
    with hub.db.engine.connect() as conn:
        return list(conn.execute(select(vouchers).order_by(vouchers.c.id)))


def voucher_outbox(hub: Hub) -> list[Any]:
    with hub.db.engine.connect() as conn:
        return list(
            conn.execute(
                select(outbox).where(outbox.c.action == "voucher.post").order_by(outbox.c.id)
            )
        )


def test_the_cli_made_a_company_chart_periods_and_parties(trytond: TrytonProcess) -> None:
    async def read() -> Any:
        async with httpx.AsyncClient() as http:
            return await TrytonConnector(trytond.site.connector_config(), http).base_data()

    base = asyncio.run(read())
    expense = base.accounts["6602.01"]
    assert (expense.kind, expense.postable, expense.needs_party) == ("expense", True, False)
    assert base.accounts["6602"].postable is False  # a summary account: lines go below it
    payable = base.accounts["2241"]
    assert (payable.kind, payable.postable, payable.needs_party) == ("payable", True, True)
    assert base.accounts["1221.01"].kind == "receivable" and base.accounts["1221.01"].needs_party
    assert base.accounts["2221.01.01"].postable and base.accounts["1002"].kind == "asset"
    assert base.periods is not None
    assert {f"2026-{m:02d}" for m in range(1, 13)} <= set(base.periods)
    assert all(base.periods[f"2027-{m:02d}"].open for m in range(1, 13))
    assert {"E0011", "E0021"} <= base.dimensions["employee"]


def test_vouchers_post_once_and_read_back_from_tryton(hub: Hub, tryton_admin: TrytonAdmin) -> None:
    claims = [
        approve_claim(hub, "E0011", "D02", "88.00"),
        approve_claim(hub, "E0021", "D03", "120.50"),
    ]
    deliver(hub)
    assert [get_claim(hub.db, c).status for c in claims] == ["posted", "posted"]
    rows = voucher_rows(hub)
    moves = tryton_admin.moves([f"finoa:{v.id}" for v in rows])
    assert len(moves) == 2 and all(m["state"] == "posted" for m in moves)
    by_ref = {m["description"]: m for m in moves}
    for voucher in rows:
        move = by_ref[f"finoa:{voucher.id}"]
        assert voucher.erp_voucher_no == move["number"]  # the number read back from Tryton
        assert move["period."]["name"] == voucher.period
    first = by_ref[f"finoa:{rows[0].id}"]
    lines = {line["account."]["code"]: line for line in tryton_admin.lines(first["id"])}
    assert lines["6602.01"]["debit"] == Decimal("88.00") and lines["6602.01"]["party."] is None
    assert lines["2241"]["credit"] == Decimal("88.00")
    assert lines["2241"]["party."]["code"] == "E0011"  # the employee the company owes
    assert "department D02" in lines["6602.01"]["description"]

    # a replay after an unknown outcome finds the move instead of making a second one
    with hub.db.engine.begin() as conn:
        conn.execute(
            update(outbox)
            .where(outbox.c.action == "voucher.post")
            .values(status="pending", needs_lookup=True, next_attempt_at=0)
        )
    deliver(hub)
    assert len(tryton_admin.moves([f"finoa:{v.id}" for v in rows])) == 2
    assert all(r.status == "done" for r in voucher_outbox(hub))


def test_a_draft_left_by_a_lost_answer_is_posted_by_the_lookup_not_doubled(
    hub: Hub, tryton_admin: TrytonAdmin, trytond: TrytonProcess
) -> None:
    approve_claim(hub)
    (row,) = voucher_outbox(hub)
    message = OutboundMessage(
        row.id, row.action, row.aggregate_id, row.idempotency_key, row.payload
    )

    async def create_then_look_up() -> Any:
        async with httpx.AsyncClient() as http:
            connector = TrytonConnector(trytond.site.connector_config(), http)
            await connector.cache.get()
            assert connector._base is not None
            from finoa.connectors.tryton.mapping import move_values

            base = connector._base
            await connector.rpc.call(
                "model.account.move.create",
                [move_values(row.payload, base.ids, base.party_accounts)],
            )  # as if the answer was lost before the post
            (found,) = await connector.lookup([message])  # the dispatcher asks first
            assert found is not None
            again = await connector.lookup([message])
            return found, again

    result, (again,) = asyncio.run(create_then_look_up())
    assert result.ok, result.error
    (move,) = tryton_admin.moves([f"finoa:{row.payload['voucher_id']}"])
    assert move["state"] == "posted" and result.response["erp_voucher_no"] == move["number"]
    assert again is not None and again.response == result.response


def test_reversal_runs_trytons_cancel(hub: Hub, tryton_admin: TrytonAdmin) -> None:
    approve_claim(hub, amount="66.00")
    deliver(hub)
    (original,) = voucher_rows(hub)
    reversal_id = reverse_voucher(hub, original.id, actor="t")
    deliver(hub)
    (orig_move,) = tryton_admin.moves([f"finoa:{original.id}"])
    (cancel,) = tryton_admin.moves([f"finoa:{reversal_id}"])
    assert cancel["state"] == "posted"
    assert cancel["origin"] == f"account.move,{orig_move['id']}"  # Tryton's own cancel
    amounts = {line["account."]["code"]: line for line in tryton_admin.lines(cancel["id"])}
    assert amounts["6602.01"]["debit"] == Decimal("-66.00")  # red ink on the original side
    assert amounts["2241"]["credit"] == Decimal("-66.00")
    rows = {v.id: v for v in voucher_rows(hub)}
    assert rows[reversal_id].erp_voucher_no == cancel["number"]


def test_a_closed_tryton_period_is_refused_naming_it(hub: Hub, tryton_admin: TrytonAdmin) -> None:
    approve_claim(hub)
    (row,) = voucher_outbox(hub)
    period = row.payload["period"]
    period_id = tryton_admin.period_id(period)
    tryton_admin.call("model.account.period.close", [period_id])
    try:
        deliver(hub)
    finally:
        tryton_admin.reopen_period(period_id)
    (row,) = voucher_outbox(hub)
    assert row.status == "dead" and row.error_class == "permanent"
    assert f"period {period} is closed" in row.last_error
    assert tryton_admin.moves([f"finoa:{row.payload['voucher_id']}"]) == []


def test_unknown_codes_are_refused_in_finoa_naming_them(
    hub: Hub, tryton_admin: TrytonAdmin, trytond: TrytonProcess
) -> None:
    approve_claim(hub)
    (row,) = voucher_outbox(hub)

    def changed(index: int, **change: Any) -> OutboundMessage:
        payload = dict(row.payload)
        entries = [dict(e) for e in payload["entries"]]
        entries[index] = {**entries[index], **change}
        payload["entries"] = entries
        return OutboundMessage(row.id, row.action, row.aggregate_id, row.idempotency_key, payload)

    unmapped = changed(0, account_code="6602.99")  # not in finoa's chart: no mapping
    last = len(row.payload["entries"]) - 1
    stranger = changed(last, aux={**row.payload["entries"][last]["aux"], "employee": "E9999"})
    before = len(tryton_admin.moves())

    async def send() -> Any:
        async with httpx.AsyncClient() as http:
            connector = TrytonConnector(trytond.site.connector_config(), http)
            return await connector.deliver([unmapped, stranger])

    first, second = asyncio.run(send())
    assert first.error is not None and first.error.error_class == "permanent"
    assert (
        "entries[0].account_code: account 6602.99 has no mapping in tryton/voucher (default)"
        in first.error.reason
    )
    assert second.error is not None and second.error.error_class == "permanent"
    assert f"entries[{last}].aux.employee: employee E9999 does not exist" in second.error.reason
    assert len(tryton_admin.moves()) == before


def test_an_ended_session_is_renewed(trytond: TrytonProcess) -> None:
    async def run() -> tuple[int, int]:
        async with httpx.AsyncClient() as http:
            connector = TrytonConnector(trytond.site.connector_config(), http)
            assert (await connector.health()).ok
            session = connector.rpc.session
            # the session ends at the server (as on expiry); the client still holds it
            await http.post(
                connector.rpc.url,
                json={"id": 1, "method": "common.db.logout", "params": []},
                headers={"Authorization": f"Session {session}"},
            )
            report = await connector.health()
            assert report.ok, report.detail
            assert connector.rpc.session != session
            return connector.rpc.logins, 2

    logins, expected = asyncio.run(run())
    assert logins == expected


def test_a_wrong_password_is_an_auth_failure_without_the_secret(trytond: TrytonProcess) -> None:
    config = {**trytond.site.connector_config(), "password": "not-the-password-1234"}

    async def run() -> Any:
        async with httpx.AsyncClient() as http:
            connector = TrytonConnector(config, http)
            assert "not-the-password" not in repr(connector)
            return await connector.health()

    report = asyncio.run(run())
    assert not report.ok and "refused the login" in report.detail
    assert "not-the-password" not in report.detail


@pytest.mark.parametrize(
    ("config", "field"),
    [({"database": "x"}, "base_url"), ({"base_url": "ftp://x", "database": "d"}, "base_url")],
)
def test_a_bad_config_names_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}"):
        TrytonConnector.check_config(config)


def test_account_codes_map_finoas_chart_onto_trytons(
    hub: Hub, tryton_admin: TrytonAdmin, trytond: TrytonProcess
) -> None:
    approve_claim(hub)
    (row,) = voucher_outbox(hub)
    message = OutboundMessage(
        row.id, row.action, row.aggregate_id, row.idempotency_key, row.payload
    )

    async def send(codes: dict[str, str]) -> Any:
        config = {**trytond.site.connector_config(), "account_codes": codes}
        async with httpx.AsyncClient() as http:
            return await TrytonConnector(config, http).deliver([message])

    (missing,) = asyncio.run(send({"6602.01": "660299"}))
    assert missing.error is not None and "account 660299 does not exist" in missing.error.reason
    (posted,) = asyncio.run(send({"6602.01": "6602.04"}))
    assert posted.ok, posted.error
    (move,) = tryton_admin.moves([f"finoa:{row.payload['voucher_id']}"])
    codes = sorted(line["account."]["code"] for line in tryton_admin.lines(move["id"]))
    assert codes == ["2241", "6602.04"]


def test_chunks_waiting_for_tryton_go_together_in_one_batch(
    hub: Hub, tryton_admin: TrytonAdmin, trytond: TrytonProcess
) -> None:
    for _ in range(6):
        approve_claim(hub)
    messages = [
        OutboundMessage(r.id, r.action, r.aggregate_id, r.idempotency_key, r.payload)
        for r in voucher_outbox(hub)
    ]

    async def three_chunks_at_once() -> tuple[list[Any], int]:
        async with httpx.AsyncClient() as http:
            connector = TrytonConnector(trytond.site.connector_config(), http)
            chunks = [messages[i : i + 2] for i in range(0, 6, 2)]
            answers = await asyncio.gather(*(connector.deliver(c) for c in chunks))
            return [r for answer in answers for r in answer], connector._batches.calls

    results, calls = asyncio.run(three_chunks_at_once())
    assert all(r.ok for r in results), [r.error for r in results]
    assert calls < 3  # the chunks that waited for the first batch joined the next one
    moves = tryton_admin.moves([f"finoa:{m.payload['voucher_id']}" for m in messages])
    assert len(moves) == 6 and all(m["state"] == "posted" for m in moves)
    numbers = {r.response["erp_voucher_no"] for r in results}
    assert numbers == {m["number"] for m in moves}  # each chunk got its own moves' numbers
