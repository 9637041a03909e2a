"""Exactly once into a real Tryton under faults: 20% of the model calls fail (half before the
work, half with the answer lost after it), and the trytond process is killed and restarted
in the middle of the burst, right after it made a move whose answer never came."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from dataclasses import replace

from sqlalchemy import select
from support.claims import one_line_claim
from support.processes import Secrets, Server
from support.tryton import FaultProxy, TrytonAdmin, TrytonProcess, tryton_hub

from finoa.config import Settings
from finoa.runtime import build_dispatcher, new_http_client
from finoa.services.approvals import decide_task
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.queries import get_claim
from finoa.store.tables import outbox, vouchers

CLAIMS = 40
KILL_AT_WRITE = 6  # the sixth model call that writes: the process dies right after it


def approve(hub: Hub, count: int) -> list[str]:
    claim_ids = []
    for index in range(count):
        employee, department = [("E0011", "D02"), ("E0021", "D03"), ("E0031", "D04")][index % 3]
        submission = one_line_claim(
            f"F-{uuid.uuid4().hex[:8]}",
            applicant_id=employee,
            department_id=department,
            category="travel",
            amount=f"{100 + index}.00",
        )
        claim_id = submit_claim(hub, submission, source="t", actor="t").claim_id
        (task,) = get_claim(hub.db, claim_id).tasks
        decide_task(hub, task.id, task.assignee_id, True, "同意", actor="t")
        claim_ids.append(claim_id)
    return claim_ids


def voucher_rows(hub: Hub) -> list[tuple[str, str, str | None]]:
    with hub.db.engine.connect() as conn:
        return [
            (r.aggregate_id, r.status, r.last_error)
            for r in conn.execute(select(outbox).where(outbox.c.action == "voucher.post"))
        ]


def test_no_duplicate_and_no_missing_move_when_trytond_dies_mid_burst(
    settings: Settings,
    sims: tuple[Server, Server],
    secrets: Secrets,
    trytond: TrytonProcess,
    tryton_admin: TrytonAdmin,
) -> None:
    killed = threading.Event()

    def kill_once(method: str, number: int) -> bool:
        if number == KILL_AT_WRITE and not killed.is_set():
            trytond.kill()  # the move is made; the process dies before it can answer
            killed.set()
            return True
        return False

    proxy = FaultProxy(
        trytond.site.base_url, error_rate=0.1, drop_rate=0.1, after_forward=kill_once
    )
    with proxy.running():
        hub = tryton_hub(
            replace(settings, dispatcher_batch=5),
            sims,
            secrets,
            trytond,
            base_url=proxy.url,
            timeout_seconds=5,
        )
        try:
            claim_ids = approve(hub, CLAIMS)

            async def burst() -> None:
                http = new_http_client(hub.settings)
                dispatcher = build_dispatcher(hub, http)
                running = asyncio.create_task(dispatcher.run())
                try:
                    deadline = time.monotonic() + 180
                    restarted = False
                    while time.monotonic() < deadline:
                        if killed.is_set() and not restarted:
                            await asyncio.to_thread(trytond.start)
                            restarted = True
                        rows = voucher_rows(hub)
                        if restarted and all(status in ("done", "dead") for _, status, _ in rows):
                            break
                        await asyncio.sleep(0.2)  # polling the outbox, with a deadline
                finally:
                    dispatcher.stop()
                    await running
                    await http.aclose()

            asyncio.run(burst())
            rows = voucher_rows(hub)
            with hub.db.engine.connect() as conn:
                ids = [r.id for r in conn.execute(select(vouchers.c.id))]
            statuses = [get_claim(hub.db, c).status for c in claim_ids]
        finally:
            hub.close()

    assert killed.is_set() and proxy.counts["errors"] > 0 and proxy.counts["drops"] > 1
    assert len(rows) == CLAIMS
    assert all(status == "done" or (status == "dead" and error) for _, status, error in rows)
    moves = tryton_admin.moves([f"finoa:{voucher_id}" for voucher_id in ids])
    per_voucher = Counter(m["description"] for m in moves)
    done = {aggregate for aggregate, status, _ in rows if status == "done"}
    assert [ref for ref, n in per_voucher.items() if n > 1] == []  # 0 duplicates
    assert set(per_voucher) == {f"finoa:{v}" for v in done}  # 0 missing, none left over
    assert all(m["state"] == "posted" for m in moves)
    assert statuses.count("posted") == len(done)
