"""The hub is killed (`kill -9`) again and again while thousands of claims flow through it,
on SQLite and on PostgreSQL, against an ERP that keeps no idempotency keys at all and an OA
that gives up on decisions it could not deliver while the hub was down.

Every claim ends in a final state; none is lost and none is duplicated; every approved claim
has exactly one voucher in the ERP; nothing is left in a dead letter. How long the hub takes
to converge after the last kill is printed.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.conftest import _database
from e2e.helpers import claim_body
from sqlalchemy import create_engine, func, select
from support.processes import Secrets, Server, free_port, simulators, start

from finoa.security.audit import verify_chain
from finoa.store.tables import audit_events, claims, outbox

CLAIMS = 2000
KILLS = 4
SENDERS = 32
FINAL = ("posted", "rejected")


def hub_env(secrets: Secrets, data_dir: Path, url: str, oa: Server, erp: Server) -> dict[str, str]:
    return {
        **secrets.env(),
        "FINOA_DATA_DIR": str(data_dir),
        "FINOA_DATABASE_URL": url,
        "FINOA_OA_BASE_URL": oa.url,
        "FINOA_ERP_BASE_URL": erp.url,
        "FINOA_CONNECTOR_TIMEOUT_SECONDS": "2",
        "FINOA_LEASE_SECONDS": "3",
        "FINOA_STUCK_TASK_MINUTES": "0.05",  # tasks older than 3 s are checked with the OA
        "FINOA_SWEEP_EVERY_SECONDS": "1",
        "FINOA_RETRY_CAP_SECONDS": "1",
    }


def body(n: int) -> dict[str, Any]:
    claim = claim_body(external_id=f"CRASH-{n:05}", amount=f"{200 + n % 700}.50")
    for line in claim["lines"]:
        line.pop("invoice_refs", None)
    return claim


async def submit_all(url: str, token: str, stats: Counter[str]) -> None:
    """Send every claim until the hub acknowledges it, retrying through the outages with the
    same Idempotency-Key, as a careful client does."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(CLAIMS):
        queue.put_nowait(n)
    headers = {"authorization": f"Bearer {token}"}

    async def sender(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            while True:
                try:
                    response = await http.post(
                        f"{url}/api/v1/claims",
                        json=body(n),
                        headers={**headers, "idempotency-key": f"crash-{n}"},
                    )
                except httpx.HTTPError:
                    stats["transport_errors"] += 1
                    await asyncio.sleep(0.05)  # the hub is down: try again shortly
                    continue
                if response.status_code in (200, 201):
                    stats["accepted" if response.status_code == 201 else "repeats"] += 1
                    break
                assert response.status_code == 503, response.text  # never a 4xx or 500
                stats["unknown_outcome"] += 1
                await asyncio.sleep(0.05)

    async with httpx.AsyncClient(timeout=5) as http:
        await asyncio.gather(*(sender(http) for _ in range(SENDERS)))


class Killer(threading.Thread):
    """Kills the hub with SIGKILL every couple of seconds and starts it again."""

    def __init__(self, boot: Any, hub: Server) -> None:
        super().__init__(daemon=True)
        self.boot, self.hub = boot, hub
        self.kills = 0
        self.last_ready = 0.0
        self.error: BaseException | None = None
        self.rng = random.Random(7)

    def run(self) -> None:
        try:
            for _ in range(KILLS):
                time.sleep(self.rng.uniform(1.5, 2.5))  # the schedule of the scenario
                self.hub.process.kill()
                self.hub.process.wait(timeout=10)
                self.kills += 1
                time.sleep(self.rng.uniform(2.0, 3.0))  # long enough for the OA to give up
                self.hub = self.boot()
                self.last_ready = time.monotonic()
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_while_claims_flow_loses_and_duplicates_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = Secrets.fresh()
    hub_port = free_port()
    data_dir = tmp_path / "data"
    with (
        _database(backend, tmp_path, request) as url,
        simulators(
            data_dir, secrets, hub_port, auto_decide=True, reject_rate=0.1, decision_batch=100
        ) as (oa, erp),
    ):
        httpx.post(f"{erp.url}/_sim/idempotency", json={"mode": "none"}).raise_for_status()
        env = hub_env(secrets, data_dir, url, oa, erp)

        def boot() -> Server:
            return start(
                "hub", ["serve", "--port", str(hub_port)], env, "/ready", hub_port, tmp_path
            )

        subprocess.run(
            [sys.executable, "-m", "finoa", "masterdata", "load"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        hub = boot()
        hub_url = f"http://127.0.0.1:{hub_port}"
        token = httpx.post(
            f"{hub_url}/api/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": secrets.client_id,
                "client_secret": secrets.client_secret,
            },
        ).json()["access_token"]
        killer = Killer(boot, hub)
        stats: Counter[str] = Counter()
        started = time.monotonic()
        killer.start()
        try:
            asyncio.run(submit_all(hub_url, token, stats))
            killer.join(timeout=120)
            assert killer.error is None, killer.error
            assert killer.kills == KILLS
            converged = wait_until_final(url, timeout_s=240)
        finally:
            killer.hub.stop()
        after_last_kill = converged - killer.last_ready
        oa_stats = httpx.get(f"{oa.url}/_sim/stats").json()
        vouchers = httpx.get(f"{erp.url}/_sim/vouchers").json()
        rows, open_rows, events = read_back(url)  # before the database is dropped

    with capsys.disabled():
        print(
            f"\n[{backend}] {CLAIMS} claims, {KILLS} kill -9: converged "
            f"{after_last_kill:.1f} s after the last restart ({converged - started:.1f} s in "
            f"all); client retries {stats['transport_errors']} transport errors, "
            f"{stats['unknown_outcome']} unknown outcomes, {stats['repeats']} repeats answered "
            f"as duplicates; OA decisions given up {oa_stats['decisions_failed']}"
        )
    assert stats["accepted"] + stats["repeats"] == CLAIMS
    assert len(rows) == CLAIMS  # nothing lost, nothing duplicated
    assert len({r.external_id for r in rows}) == CLAIMS
    assert Counter(r.status for r in rows).keys() <= set(FINAL), Counter(r.status for r in rows)
    assert open_rows == []  # no dead letter, nothing pending
    posted = {r.id for r in rows if r.status == "posted"}
    in_erp = Counter(v["source_ref"] for v in vouchers)
    assert {ref.removeprefix("finoa:") for ref in in_erp} == posted
    assert max(in_erp.values()) == 1  # exactly one voucher per posted claim, with no keys
    assert oa_stats["decisions_failed"] > 0  # the OA did give up on some: the sweep found them
    report = verify_chain(events)
    assert report.ok, report


def read_back(url: str) -> tuple[list[Any], list[Any], list[dict[str, Any]]]:
    """The hub's claims, its outbox rows not done, and its audit events."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(claims.c.id, claims.c.external_id, claims.c.status)).all()
            open_rows = conn.execute(
                select(outbox.c.status, func.count())
                .where(outbox.c.status != "done")
                .group_by(outbox.c.status)
            ).all()
            events = [
                dict(r._mapping)
                for r in conn.execute(select(audit_events).order_by(audit_events.c.seq))
            ]
    finally:
        engine.dispose()
    return list(rows), list(open_rows), events


def wait_until_final(url: str, timeout_s: float) -> float:
    """Poll the hub's database until every claim is final and the outbox is empty."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            with engine.connect() as conn:
                final = conn.execute(
                    select(func.count()).where(claims.c.status.in_(FINAL))
                ).scalar_one()
                waiting = conn.execute(
                    select(func.count()).where(outbox.c.status != "done")
                ).scalar_one()
            if final == CLAIMS and waiting == 0:
                return time.monotonic()
            assert time.monotonic() < deadline, f"{final} of {CLAIMS} final, {waiting} waiting"
            time.sleep(0.2)  # polling with a deadline
    finally:
        engine.dispose()
