"""The API and delivery run apart: `finoa serve --no-dispatch` answers the claims, `finoa
worker` delivers them, sweeps, fires timers and archives — the month-end deployment, where
the drain into the ERP runs at a lower CPU priority than the OA's webhooks.

Real processes on SQLite and PostgreSQL. The API alone delivers nothing; once the worker
runs, the claim goes all the way to a posted voucher and its archive package, and SIGTERM
stops the worker cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from e2e.helpers import claim_body
from support.processes import (
    Secrets,
    free_port,
    hub_token,
    simulators,
    start,
    start_worker,
    wait_for,
)


def _outbox(database_url: str) -> dict[str, str]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT action, status FROM outbox ORDER BY id")).all()
    finally:
        engine.dispose()
    return {str(action): str(status) for action, status in rows}


def _packages(database_url: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM archive_packages")).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_worker_delivers_and_archives_what_the_api_alone_accepted(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from e2e.conftest import _database

    secrets = Secrets.fresh()
    port = free_port()
    data_dir = tmp_path / "data"
    with (
        _database(backend, tmp_path, request) as database_url,
        simulators(data_dir, secrets, port, auto_decide=True) as (oa, erp),
    ):
        env = {
            **secrets.env(),
            "FINOA_DATA_DIR": str(data_dir),
            "FINOA_DATABASE_URL": database_url,
            "FINOA_OA_BASE_URL": oa.url,
            "FINOA_ERP_BASE_URL": erp.url,
            "FINOA_ARCHIVE_EVERY_SECONDS": "0.2",
            "FINOA_ARCHIVE_WORKERS": "1",
        }
        subprocess.run(
            [sys.executable, "-m", "finoa", "masterdata", "load"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        api = start(
            "api", ["serve", "--port", str(port), "--no-dispatch"], env, "/ready", port, data_dir
        )
        worker = None
        try:
            token = hub_token(api.url, secrets.client_id, secrets.client_secret)
            auth = {"authorization": f"Bearer {token}"}
            answer = httpx.post(f"{api.url}/api/v1/claims", json=claim_body(), headers=auth)
            assert answer.status_code == 201, answer.text
            claim_id = answer.json()["id"]
            # the API alone accepted the claim and queued its todo; nothing delivers it yet
            assert _outbox(database_url)["todo.push"] == "pending"
            assert httpx.get(f"{oa.url}/_sim/stats").json()["todos_created"] == 0

            worker = start_worker(env, data_dir)

            def posted() -> bool:
                claim = httpx.get(f"{api.url}/api/v1/claims/{claim_id}", headers=auth).json()
                return bool(claim["status"] == "posted")

            wait_for(posted, timeout_s=60, what="the claim posted through the worker")
            wait_for(lambda: _packages(database_url) == 1, timeout_s=60, what="its package")
            worker.process.send_signal(signal.SIGTERM)
            assert worker.process.wait(timeout=30) == 0, worker.log()
        finally:
            if worker is not None:
                worker.stop()
            api.stop()
    assert "Traceback" not in worker.log()
    assert "Traceback" not in api.log()
