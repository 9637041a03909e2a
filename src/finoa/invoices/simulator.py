"""A simulator of the tax platform's invoice verification (发票查验), for tests and demos.

It holds the invoices "issued" to it (`POST /_sim/invoices`) and answers
`POST /api/v1/invoice-verifications` as the platform does: every one of the four elements
must match (number, date of issue, amount — 价税合计 for 数电票 — and the last six digits of
the check code when the invoice has one); an unknown number is 009, a mismatch 006, a voided
or red-reversed invoice 001 with its status. The platform allows five queries per invoice
per day (China Standard Time); the sixth is answered 002, whatever its elements. Requests
need the bearer API key; a body that is not the query is a 400 problem naming the field.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from finoa.connectors.simulation import (
    Problem,
    bearer_guard,
    install_problems,
    json_response,
    open_database,
    read_json,
    serve,
    transaction,
)

QUERIES_PER_DAY = 5
CHINA = ZoneInfo("Asia/Shanghai")
SCHEMA = """
CREATE TABLE IF NOT EXISTS issued (
  number TEXT PRIMARY KEY, code TEXT NOT NULL, issue_date TEXT NOT NULL, amount TEXT NOT NULL,
  check_code TEXT NOT NULL, status TEXT NOT NULL, seller TEXT NOT NULL, buyer TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queries (
  number TEXT NOT NULL, day TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (number, day)
);
"""
FIELDS = {
    "fpdm": re.compile(r"[0-9]{0,12}"),
    "fphm": re.compile(r"[0-9]{8}|[0-9]{20}"),
    "kprq": re.compile(r"[0-9]{8}"),
    "je": re.compile(r"-?[0-9]+\.[0-9]{2}"),
    "jym": re.compile(r"[0-9]{0,6}"),
}
STATUSES = ("normal", "voided", "red_reversed")


def _query(body: Any) -> dict[str, str]:
    if not isinstance(body, dict):
        raise Problem(400, "Bad request", "body: must be a JSON object", field="body")
    query: dict[str, str] = {}
    for name, pattern in FIELDS.items():
        value = body.get(name, "")
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise Problem(400, "Bad request", f"{name}: {value!r} is malformed", field=name)
        query[name] = value
    if not query["fphm"]:
        raise Problem(400, "Bad request", "fphm: is required", field="fphm")
    return query


def create_tax_platform_app(data_dir: Path, api_key: str) -> FastAPI:
    conn = open_database(data_dir / "tax-platform.db", SCHEMA)
    app = FastAPI(title="tax platform simulator")
    install_problems(app)
    guard = Depends(bearer_guard(api_key))

    @app.post("/api/v1/invoice-verifications", dependencies=[guard])
    async def verify(request: Request) -> Response:
        query = _query(await read_json(request))
        day = datetime.now(CHINA).date().isoformat()
        with transaction(conn):
            conn.execute(
                "INSERT INTO queries VALUES (?, ?, 1) ON CONFLICT (number, day) "
                "DO UPDATE SET count = count + 1",
                (query["fphm"], day),
            )
            count = conn.execute(
                "SELECT count FROM queries WHERE number = ? AND day = ?", (query["fphm"], day)
            ).fetchone()[0]
            row = conn.execute("SELECT * FROM issued WHERE number = ?", (query["fphm"],)).fetchone()
        if count > QUERIES_PER_DAY:
            return json_response({"code": "002", "message": "超过该张发票当日查验次数"})
        if row is None:
            return json_response({"code": "009", "message": "查无此票"})
        mismatched = _mismatches(row, query)
        if mismatched:
            return json_response({"code": "006", "message": "不一致: " + ", ".join(mismatched)})
        return json_response(
            {
                "code": "001",
                "message": "查验成功",
                "invoice_status": row["status"],
                "invoice": {
                    "fphm": row["number"],
                    "kprq": row["issue_date"],
                    "je": row["amount"],
                    "xfmc": row["seller"],
                    "gfsbh": row["buyer"],
                },
            }
        )

    @app.post("/_sim/invoices")
    async def issue(request: Request) -> Response:
        body = await read_json(request)
        items = body if isinstance(body, list) else [body]
        with transaction(conn):
            for item in items:
                status = item.get("status", "normal")
                if status not in STATUSES:
                    raise Problem(400, "Bad request", f"status: one of {STATUSES}", field="status")
                conn.execute(
                    "INSERT OR REPLACE INTO issued VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        str(item["number"]),
                        str(item.get("code", "")),
                        str(item["issue_date"]).replace("-", ""),
                        str(item["amount"]),
                        str(item.get("check_code", "")),
                        status,
                        str(item.get("seller", "")),
                        str(item.get("buyer", "")),
                    ),
                )
        return json_response({"issued": len(items)})

    @app.get("/_sim/stats")
    async def stats() -> Response:
        issued = conn.execute("SELECT count(*) FROM issued").fetchone()[0]
        queries = conn.execute("SELECT coalesce(sum(count), 0) FROM queries").fetchone()[0]
        return json_response({"issued": issued, "queries": queries})

    return app


def _mismatches(row: sqlite3.Row, query: dict[str, str]) -> list[str]:
    wrong = []
    if row["code"] and query["fpdm"] != row["code"]:
        wrong.append("fpdm")
    if query["kprq"] != row["issue_date"]:
        wrong.append("kprq")
    if query["je"] != row["amount"]:
        wrong.append("je")
    if row["check_code"] and query["jym"] != row["check_code"][-6:]:
        wrong.append("jym")
    return wrong


def run_tax_platform_simulator(host: str, port: int, data_dir: Path, api_key: str) -> None:
    serve(create_tax_platform_app(data_dir, api_key), host, port)
