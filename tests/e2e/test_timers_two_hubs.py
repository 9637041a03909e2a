"""Two hub processes on one PostgreSQL database race for the same due approval timers: each
reminder reaches the OA once and each timer is fired by exactly one of them.

Twenty claims wait for Sun Qiang (E0010); the clock of both hubs (one offset file) jumps a
working day ahead, so every reminder falls due at once in both processes, which tick every
0.1 s. The outcome is read from the OA simulator and from the hub's own tables.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from e2e.helpers import claim_body
from support.databases import pg_admin, pg_url
from support.processes import Secrets, free_port, simulators, start, wait_for

CLAIMS = 20


@pytest.fixture
def database(pg_template: str) -> Iterator[str]:
    name = f"finoa_timers_{uuid.uuid4().hex[:12]}"
    pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield pg_url(name)
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_hub_processes_fire_each_timer_once(database: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    clock = tmp_path / "clock-offset"
    clock.write_text("0", encoding="utf-8")
    secrets = Secrets.fresh()
    ports = [free_port(), free_port()]
    with simulators(data_dir, secrets, ports[0], auto_decide=False) as (oa, erp):
        env = {
            **secrets.env(),
            "FINOA_DATA_DIR": str(data_dir),
            "FINOA_DATABASE_URL": database,
            "FINOA_OA_BASE_URL": oa.url,
            "FINOA_ERP_BASE_URL": erp.url,
            "FINOA_CLOCK_OFFSET_FILE": str(clock),
            "FINOA_TIMER_EVERY_SECONDS": "0.1",
            "FINOA_ESCALATE_AFTER_WORKING_HOURS": "0",  # reminders only: one timer per task
        }
        subprocess.run(
            [sys.executable, "-m", "finoa", "masterdata", "load"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        hubs = []
        try:
            for n, port in enumerate(ports):
                worker = {**env, "FINOA_WORKER_ID": f"hub-{n}"}
                args = ["serve", "--port", str(port)]
                hubs.append(start(f"hub-{n}", args, worker, "/ready", port, data_dir))
            token = httpx.post(
                f"{hubs[0].url}/api/v1/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": secrets.client_id,
                    "client_secret": secrets.client_secret,
                },
            ).json()["access_token"]
            auth = {"authorization": f"Bearer {token}"}
            claim_ids = []
            for n in range(CLAIMS):
                hub = hubs[n % 2]
                answer = httpx.post(f"{hub.url}/api/v1/claims", json=claim_body(), headers=auth)
                assert answer.status_code == 201, answer.text
                claim_ids.append(answer.json()["id"])
            engine = sa.create_engine(database)
            try:
                with engine.connect() as conn:

                    def scheduled() -> bool:
                        query = "SELECT count(*) FROM approval_timers"
                        return int(conn.execute(sa.text(query)).scalar_one()) == CLAIMS

                    wait_for(scheduled, what="a timer per task")
                clock.write_text(str(7 * 86_400), encoding="utf-8")

                def reminded() -> list[dict[str, str]] | None:
                    rows = httpx.get(f"{oa.url}/_sim/reminders").json()
                    return rows if len(rows) >= CLAIMS else None

                rows = wait_for(reminded, timeout_s=60, what="every reminder at the OA")
                with engine.connect() as conn:
                    fired = conn.execute(
                        sa.text("SELECT status, fired_by FROM approval_timers ORDER BY id")
                    ).all()
                    reminders = conn.execute(
                        sa.text("SELECT count(*) FROM audit_events WHERE action = 'task.reminded'")
                    ).scalar_one()
                    sent = conn.execute(
                        sa.text("SELECT count(*) FROM outbox WHERE action = 'todo.remind'")
                    ).scalar_one()
            finally:
                engine.dispose()
        finally:
            for hub in hubs:
                hub.stop()
    assert len(rows) == CLAIMS
    assert len({row["task_id"] for row in rows}) == CLAIMS  # one reminder per task at the OA
    assert (reminders, sent) == (CLAIMS, CLAIMS)
    assert [status for status, _ in fired] == ["fired"] * CLAIMS
    owners = Counter(owner.split("/")[0] for _, owner in fired)
    assert set(owners) <= {"hub-0", "hub-1"} and sum(owners.values()) == CLAIMS
