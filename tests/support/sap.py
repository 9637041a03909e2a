"""The SAP gateway simulator as a real process (`finoa sim sap`), and a connector config for
it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from finoa.connectors.sap.demo import simulator_config
from support.processes import Server, free_port, start


def sap_config(url: str, credentials: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """The `sap` connector's config for the simulator at `url`."""
    return simulator_config(url, credentials, **{"timeout_seconds": 2, **overrides})


@contextmanager
def sap_simulator(data_dir: Path, *extra_args: str) -> Iterator[tuple[Server, dict[str, str]]]:
    """`finoa sim sap` in its own process, and the credentials it accepts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {"FINOA_DATA_DIR": str(data_dir)}
    shown = subprocess.run(
        [sys.executable, "-m", "finoa", "sim", "sap", "--show-credentials"],
        env={**os.environ, **env}, check=True, capture_output=True, text=True,
    )  # fmt: skip
    credentials = json.loads(shown.stdout)
    port = free_port()
    server = start(
        "sap", ["sim", "sap", "--port", str(port), *extra_args], env, "/_sim/stats", port, data_dir
    )
    try:
        yield server, credentials
    finally:
        server.stop()


def sap_voucher(
    voucher_id: str,
    *,
    date: str = "2026-11-12",
    fen: int = 35000,
    account: str = "6602.01",
    department: str = "D03",
    employee: str = "E0021",
    reversal_of: str | None = None,
) -> dict[str, Any]:
    """A canonical voucher (VoucherPayload): an expense owed to the employee."""

    def aux(dept: str | None) -> dict[str, Any]:
        return {"department": dept, "employee": employee, "project": None}

    sign = -1 if reversal_of else 1
    return {
        "voucher_id": voucher_id, "claim_id": f"C-{voucher_id}", "hub_voucher_no": "记-0001",
        "word": "记", "period": date[:7], "date": date, "summary": "差旅报销", "currency": "CNY",
        "reversal_of": reversal_of,
        "entries": [
            {"line": 1, "account_code": account, "summary": "差旅费", "debit_fen": sign * fen,
             "credit_fen": 0, "aux": aux(department)},
            {"line": 2, "account_code": "2241", "summary": "应付", "debit_fen": 0,
             "credit_fen": sign * fen, "aux": aux(department)},
        ],
    }  # fmt: skip
