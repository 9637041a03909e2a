"""ERP simulator: a generic voucher API over SQLite, with injectable faults and the
idempotency behaviours real ERPs have (keys kept, kept for a while, or none at all)."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from finoa.connectors.basedata import chart_kind
from finoa.connectors.simulation import (
    FaultMiddleware,
    FaultState,
    Problem,
    add_sim_routes,
    bearer_guard,
    install_problems,
    json_response,
    now_iso,
    open_database,
    read_json,
    serve,
    transaction,
)

PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")

ERP_SCHEMA = """
CREATE TABLE IF NOT EXISTS vouchers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    erp_id TEXT NOT NULL UNIQUE,
    erp_voucher_no TEXT NOT NULL,
    voucher_word TEXT NOT NULL,
    period TEXT NOT NULL,
    seq INTEGER NOT NULL,
    idempotency_key TEXT,
    reference TEXT,
    digest TEXT NOT NULL,
    body TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_epoch REAL NOT NULL,
    UNIQUE (period, voucher_word, seq)
);
CREATE INDEX IF NOT EXISTS vouchers_no ON vouchers (erp_voucher_no);
CREATE INDEX IF NOT EXISTS vouchers_key ON vouchers (idempotency_key, created_epoch);
CREATE INDEX IF NOT EXISTS vouchers_reference ON vouchers (reference);
"""


class IdempotencySpec(BaseModel):
    """How the simulated ERP treats Idempotency-Keys (`POST /_sim/idempotency`).

    - `keep`: a repeated key answers the first voucher, forever;
    - `forget`: keys are remembered for `forget_after_seconds` only, as ERPs that keep them
      for a window; a key repeated later posts a second voucher;
    - `none`: keys are ignored (Kingdee-like): every post is a new voucher. Only a lookup by
      the voucher's `reference` finds what was posted.
    """

    model_config = ConfigDict(extra="forbid")

    mode: str = Field(default="keep", pattern="^(keep|forget|none)$")
    forget_after_seconds: float = Field(default=60.0, gt=0, le=86_400)


def load_chart() -> dict[str, str]:
    """The chart of accounts: code -> Chinese name (finoa.domain/chart_of_accounts.yaml)."""
    text = resources.files("finoa.domain").joinpath("chart_of_accounts.yaml").read_text("utf-8")
    accounts = yaml.safe_load(text)["accounts"]
    return {str(code): str(row[0]) for code, row in accounts.items()}


def request_digest(body: Any) -> str:
    """sha256 of the canonical JSON of a request body."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_voucher(body: Any, chart: dict[str, str]) -> list[str]:
    """What a real ERP would refuse in a voucher; empty when it posts."""
    if not isinstance(body, dict):
        return ["the voucher must be a JSON object"]
    errors: list[str] = []
    period = body.get("period")
    period_ok = isinstance(period, str) and PERIOD_RE.match(period) is not None
    if not period_ok:
        errors.append(f"period {period!r} is not 'YYYY-MM'")
    word = body.get("voucher_word", "记")
    if not isinstance(word, str) or not 1 <= len(word) <= 4:
        errors.append(f"voucher_word {word!r} is not a voucher word such as '记'")
    raw_date = body.get("date")
    try:
        voucher_date = date.fromisoformat(raw_date) if isinstance(raw_date, str) else None
    except ValueError:
        voucher_date = None
    if voucher_date is None:
        errors.append(f"date {raw_date!r} is not 'YYYY-MM-DD'")
    elif period_ok and voucher_date.isoformat()[:7] != period:
        errors.append(f"date {raw_date} is outside period {period}")
    currency = body.get("currency", "CNY")
    if not isinstance(currency, str) or not CURRENCY_RE.match(currency):
        errors.append(f"currency {currency!r} is not an ISO 4217 code")
    entries = body.get("entries")
    if not isinstance(entries, list) or not entries:
        errors.append("entries must be a non-empty list")
        return errors
    total_debit = total_credit = 0
    amounts_ok = True
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            errors.append(f"entry {index}: not an object")
            amounts_ok = False
            continue
        label = f"entry {entry.get('line', index)}"
        code = entry.get("account_code")
        if not isinstance(code, str) or code not in chart:
            errors.append(f"{label}: account {code!r} does not exist in the chart of accounts")
        debit, credit = entry.get("debit_fen", 0), entry.get("credit_fen", 0)
        sides_ok = True
        for name, value in (("debit_fen", debit), ("credit_fen", credit)):
            if not _is_int(value):
                errors.append(f"{label}: {name} must be an integer number of fen, got {value!r}")
                sides_ok = False
        if not sides_ok:
            amounts_ok = False
            continue
        # Red-ink (红字) entries carry negative amounts on their usual side.
        if (debit != 0) == (credit != 0):
            errors.append(f"{label}: exactly one of debit_fen and credit_fen must be non-zero")
            amounts_ok = False
        total_debit += debit
        total_credit += credit
    if amounts_ok and total_debit != total_credit:
        errors.append(f"unbalanced: debits {total_debit} fen != credits {total_credit} fen")
    return errors


def _voucher_view(row: sqlite3.Row) -> dict[str, Any]:
    body = orjson.loads(row["body"])
    return {
        **orjson.loads(row["result"]),
        "idempotency_key": row["idempotency_key"],
        "reference": row["reference"],
        "source_ref": body.get("source_ref"),
        "hub_voucher_no": body.get("hub_voucher_no"),
        "created_at": row["created_at"],
        "voucher": body,
    }


def create_erp_app(
    data_dir: Path, api_key: str, idempotency: dict[str, Any] | None = None
) -> FastAPI:
    """The ERP simulator app; its vouchers live in `data_dir/erp.sqlite3`."""
    conn = open_database(Path(data_dir) / "erp.sqlite3", ERP_SCHEMA)
    chart = load_chart()
    closed: set[str] = set()  # accounts closed for posting (POST /_sim/accounts/closed)
    faults = FaultState()
    counts = {"duplicates": 0, "rejected": 0}
    keys = IdempotencySpec.model_validate(idempotency or {})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        conn.close()

    app = FastAPI(title="finoa ERP simulator", lifespan=lifespan)
    install_problems(app)
    app.add_middleware(FaultMiddleware, state=faults)
    api = APIRouter(prefix="/api", dependencies=[Depends(bearer_guard(api_key))])

    def stored(key: str) -> sqlite3.Row | None:
        """The voucher a key still stands for, as this ERP's idempotency mode has it."""
        if keys.mode == "none":
            return None
        since = time.time() - keys.forget_after_seconds if keys.mode == "forget" else 0.0
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM vouchers WHERE idempotency_key = ? AND created_epoch >= ?"
            " ORDER BY id DESC LIMIT 1",
            (key, since),
        ).fetchone()
        return row

    def post_one(key: str, body: Any) -> tuple[int, dict[str, Any]]:
        """Create (or replay) one voucher: (HTTP status, result or problem fields)."""
        if not key or len(key) > 255:
            return 400, {"detail": "an Idempotency-Key (1-255 chars) is required"}
        digest = request_digest(body)
        # No await in here: one event loop serialises posts; the UNIQUE key guards the rest.
        row = stored(key)
        if row is None:
            errors = validate_voucher(
                body, {code: name for code, name in chart.items() if code not in closed}
            )
            if errors:
                counts["rejected"] += 1
                return 422, {"detail": "; ".join(errors), "errors": errors}
            period, word = body["period"], body.get("voucher_word", "记")
            reference = body.get("reference")
            with transaction(conn):
                (seq,) = conn.execute(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM vouchers"
                    " WHERE period = ? AND voucher_word = ?",
                    (period, word),
                ).fetchone()
                erp_id = uuid.uuid4().hex
                number = f"{word}-{seq:04d}"
                result = {"erp_voucher_no": number, "erp_id": erp_id, "period": period}
                conn.execute(
                    "INSERT INTO vouchers (erp_id, erp_voucher_no, voucher_word, period, seq,"
                    " idempotency_key, reference, digest, body, result, created_at, created_epoch)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        erp_id,
                        number,
                        word,
                        period,
                        seq,
                        None if keys.mode == "none" else key,
                        reference if isinstance(reference, str) else None,
                        digest,
                        orjson.dumps(body).decode(),
                        orjson.dumps(result).decode(),
                        now_iso(),
                        time.time(),
                    ),
                )
            return 201, result
        if row["digest"] != digest:
            counts["rejected"] += 1
            return 422, {
                "detail": f"Idempotency-Key {row['idempotency_key']!r} was used for a different "
                f"voucher ({row['erp_voucher_no']})"
            }
        counts["duplicates"] += 1
        return 200, orjson.loads(row["result"])

    @api.post("/vouchers")
    async def post_voucher(request: Request) -> Response:
        key = request.headers.get("idempotency-key", "").strip()
        if not key or len(key) > 255:
            raise Problem(400, "Bad request", "an Idempotency-Key header (1-255 chars) is required")
        status, result = post_one(key, await read_json(request))
        if status >= 400:
            title = "Idempotency-Key reused" if "errors" not in result else "Voucher rejected"
            extra = {"errors": result["errors"]} if "errors" in result else {}
            raise Problem(status, title, result["detail"], **extra)
        return json_response(result, status)

    @api.post("/vouchers:batch")
    async def post_vouchers(request: Request) -> Response:
        """Several vouchers in one call (like an ERP's batch save); each item carries its own
        idempotency key and gets its own result, in order."""
        body = await read_json(request)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not 1 <= len(items) <= 200:
            raise Problem(422, "Bad batch", "items: a list of 1-200 vouchers is required")
        results = []
        for item in items:
            if not isinstance(item, dict):
                results.append({"status": "error", "code": 422, "error": "not an object"})
                continue
            voucher = {k: v for k, v in item.items() if k != "idempotency_key"}
            key = str(item.get("idempotency_key") or "").strip()
            status, result = post_one(key, voucher)
            if status >= 400:
                results.append(
                    {
                        "idempotency_key": key,
                        "status": "error",
                        "code": status,
                        "error": result["detail"],
                    }
                )
            else:
                results.append(
                    {
                        "idempotency_key": key,
                        "status": "created" if status == 201 else "duplicate",
                        **result,
                    }
                )
        return json_response({"results": results}, 200)

    @api.get("/vouchers")
    async def find_voucher(
        idempotency_key: str | None = None, reference: str | None = None
    ) -> Response:
        """One voucher by idempotency key (as long as the key is remembered), or every voucher
        carrying a reference (`{"items": [...]}`, kept forever, whatever the key mode)."""
        if reference:
            rows = conn.execute(
                "SELECT * FROM vouchers WHERE reference = ? ORDER BY id", (reference,)
            ).fetchall()
            return json_response({"items": [_voucher_view(row) for row in rows]})
        if not idempotency_key:
            raise Problem(
                400, "Bad request", "query parameter idempotency_key or reference is required"
            )
        row = stored(idempotency_key)
        if row is None:
            raise Problem(404, "Not found", f"no voucher under key {idempotency_key!r}")
        return json_response(_voucher_view(row))

    @api.get("/base-data")
    async def base_data() -> Response:
        """The chart as this ERP keeps it: each account's kind and whether it takes postings
        (one closed for posting does not). Periods and dimension codes
        are not kept here, so they are not reported."""
        codes = sorted(chart)
        return json_response(
            {
                "accounts": [
                    {
                        "code": code,
                        "name": chart[code],
                        "kind": chart_kind(code),
                        "postable": code not in closed,
                        "needs_party": False,
                        "needs_dimensions": [],
                    }
                    for code in codes
                ],
                "periods": None,
                "dimensions": {},
            }
        )

    @api.get("/ping")
    async def ping() -> Response:
        return json_response({"ok": True, "time": now_iso()})

    @api.get("/vouchers/{erp_voucher_no}")
    async def get_voucher(erp_voucher_no: str, period: str | None = None) -> Response:
        rows = conn.execute(
            "SELECT * FROM vouchers WHERE (erp_voucher_no = ? OR erp_id = ?)"
            " AND (? IS NULL OR period = ?) ORDER BY id",
            (erp_voucher_no, erp_voucher_no, period, period),
        ).fetchall()
        if not rows:
            raise Problem(404, "Not found", f"no voucher {erp_voucher_no}")
        if len(rows) > 1:
            periods = [r["period"] for r in rows]
            raise Problem(
                409,
                "Ambiguous voucher number",
                f"{erp_voucher_no} exists in periods {periods}; add ?period=YYYY-MM",
                periods=periods,
            )
        return json_response(_voucher_view(rows[0]))

    app.include_router(api)
    add_sim_routes(app, faults)

    @app.post("/_sim/idempotency")
    async def set_idempotency(spec: IdempotencySpec) -> Response:
        nonlocal keys
        keys = spec
        return json_response(keys.model_dump())

    @app.get("/_sim/idempotency")
    async def get_idempotency() -> Response:
        return json_response(keys.model_dump())

    @app.post("/_sim/accounts/closed")
    async def close_accounts(request: Request) -> Response:
        """`{"codes": [...]}`: these accounts take no postings from now on (`[]` reopens)."""
        body = await read_json(request)
        codes = body.get("codes") if isinstance(body, dict) else None
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise Problem(422, "Bad request", "codes: a list of account codes is required")
        closed.clear()
        closed.update(codes)
        return json_response({"closed": sorted(closed)})

    @app.get("/_sim/stats")
    async def stats() -> Response:
        (vouchers,) = conn.execute("SELECT COUNT(*) FROM vouchers").fetchone()
        return json_response(
            {
                "vouchers": vouchers,
                "duplicates": counts["duplicates"],
                "requests": faults.counts["requests"],
                "rejected": counts["rejected"],
                "faults": faults.snapshot(),
            }
        )

    @app.get("/_sim/vouchers")
    async def all_vouchers() -> Response:
        rows = conn.execute("SELECT * FROM vouchers ORDER BY id").fetchall()
        return json_response([_voucher_view(row) for row in rows])

    return app


def run_erp_simulator(
    host: str,
    port: int,
    data_dir: Path | str,
    api_key: str,
    idempotency: dict[str, Any] | None = None,
) -> None:
    """Serve the ERP simulator until interrupted."""
    serve(create_erp_app(Path(data_dir), api_key, idempotency), host, port)
