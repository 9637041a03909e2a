"""Yonyou simulators: U8 OpenAPI (`profile` u8) and NC's XChangeServlet (`profile` nc), each
over a SQLite ledger one can count (`/_sim/stats`, `/_sim/vouchers`).

What they enforce, as the vendor does:
- **U8**: a token from `GET /system/token` (app_key, app_secret, from_account) that expires
  after `token_ttl` seconds; a call with an unknown or expired token answers errcode 20002.
  `voucher/add` with a `tradeid` already used answers the first voucher again and makes
  none (U8's idempotency); without one every add is a new voucher.
- **NC**: only a registered `sender` may import; each import makes a voucher (the exchange
  keeps no idempotency), numbered by NC; the answer is the result XML in the request's
  encoding.
- **Both**: base data by code, in the account set's own codes (accounts of finoa's chart
  on the 4-2-2 scheme, voucher types 记/收/付/转, the departments `01`…`06`, persons and
  projects of the sample master data; see `BaseData.sample`): an unknown code is refused
  naming it; vouchers must balance; injectable faults (`/_sim/faults`) and answers in the
  vendor's error shape before any work (`/_sim/vendor-errors`).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import Response
from lxml import etree

from finoa.connectors.generic_erp.simulator import load_chart
from finoa.connectors.simulation import (
    FaultMiddleware,
    FaultState,
    add_sim_routes,
    json_response,
    now_iso,
    open_database,
    serve,
    transaction,
)
from finoa.connectors.yonyou import manifest as codes
from finoa.connectors.yonyou.mapping import (
    NCResult,
    declared_encoding,
    fen,
    nc_result_xml,
    read_xml,
)

PROFILES = ("u8", "nc")
VOUCHER_TYPES = ("记", "收", "付", "转")
NC_PATH = "/service/XChangeServlet"

LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS vouchers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    voucher_no TEXT NOT NULL,
    voucher_type TEXT NOT NULL,
    period TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reference TEXT,
    tradeid TEXT UNIQUE,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (period, voucher_type, seq)
);
CREATE INDEX IF NOT EXISTS vouchers_reference ON vouchers (reference);
"""


@dataclass(frozen=True)
class BaseData:
    """The codes the ledger knows: accounts, voucher types and auxiliary items."""

    accounts: frozenset[str]
    voucher_types: frozenset[str]
    aux: dict[str, frozenset[str]]  # wire name (dept_id, person_id, item_id) -> codes

    def without(self, codes: Mapping[str, Any]) -> BaseData:
        """This base data without some codes, keyed `account_code`, `voucher_type` or an
        auxiliary item's wire name; ValueError naming an unknown key."""
        unknown = sorted(set(codes) - {"account_code", "voucher_type", *self.aux})
        if unknown:
            raise ValueError(f"no base data kind {unknown[0]!r}")
        drop = {kind: frozenset(map(str, values)) for kind, values in codes.items()}
        return BaseData(
            self.accounts - drop.get("account_code", frozenset()),
            self.voucher_types - drop.get("voucher_type", frozenset()),
            {kind: known - drop.get(kind, frozenset()) for kind, known in self.aux.items()},
        )

    @classmethod
    def sample(cls) -> BaseData:
        """The account set of the sample company in the ERP's own codes: finoa's chart on the
        4-2-2 code scheme (`6602.01` is `660201`), the departments numbered `01`, `02`, … in
        the order the sample master data lists them, its persons and projects by their ids."""
        text = resources.files("finoa.sample").joinpath("masterdata.yaml").read_text("utf-8")
        data = yaml.safe_load(text)

        def ids(key: str) -> frozenset[str]:
            return frozenset(str(row["id"]) for row in data.get(key, []))

        departments = frozenset(f"{n:02d}" for n in range(1, len(data["org_units"]) + 1))
        return cls(
            frozenset(code.replace(".", "") for code in load_chart()),
            frozenset(VOUCHER_TYPES),
            {
                "dept_id": departments,
                "person_id": ids("employees"),
                "item_id": ids("projects"),
            },
        )


@dataclass(frozen=True)
class LedgerEntry:
    entry_id: str
    account_code: str
    debit_fen: int
    credit_fen: int
    aux: dict[str, str]


@dataclass(frozen=True)
class LedgerVoucher:
    """A voucher as either profile delivered it, in one form the ledger checks."""

    voucher_type: str
    year: str
    period: str
    date: str
    reference: str | None
    entries: list[LedgerEntry]

    @property
    def period_key(self) -> str:
        return f"{self.year}-{int(self.period):02d}"


class Refused(Exception):
    """The ledger refuses a voucher: `kind` is `base_data`, `unbalanced` or `bad`."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def check(voucher: LedgerVoucher, base: BaseData) -> None:
    """Raise Refused for what the ERP refuses: unknown codes first (named), then balance."""
    if voucher.voucher_type not in base.voucher_types:
        raise Refused("base_data", f"voucher type {voucher.voucher_type!r} does not exist")
    if not voucher.period.isdigit() or not 1 <= int(voucher.period) <= 12:
        raise Refused("bad", f"accounting period {voucher.period!r} is not 1-12")
    if not voucher.entries:
        raise Refused("bad", "the voucher has no entries")
    for entry in voucher.entries:
        if entry.account_code not in base.accounts:
            raise Refused(
                "base_data",
                f"entry {entry.entry_id}: account {entry.account_code!r} does not exist",
            )
        for name, code in entry.aux.items():
            known = base.aux.get(name)
            if known is None:
                raise Refused("base_data", f"entry {entry.entry_id}: no auxiliary item {name!r}")
            if code not in known:
                raise Refused(
                    "base_data", f"entry {entry.entry_id}: {name} {code!r} does not exist"
                )
        if (entry.debit_fen != 0) == (entry.credit_fen != 0):
            raise Refused("bad", f"entry {entry.entry_id}: exactly one side must carry an amount")
    debit = sum(e.debit_fen for e in voucher.entries)
    credit = sum(e.credit_fen for e in voucher.entries)
    if debit != credit:
        raise Refused("unbalanced", f"debits {debit} fen != credits {credit} fen")


class SimState:
    """What a simulator's test routes change: its base data and queued vendor errors."""

    def __init__(self) -> None:
        self.base = BaseData.sample()
        self.vendor_errors = VendorErrors()


class VendorErrors:
    """Answers in the vendor's own error shape, queued by `POST /_sim/vendor-errors`
    (`{"code": "50000", "message": "系统繁忙", "count": 2}`): the next `count` voucher calls
    answer `code` before doing any work."""

    def __init__(self) -> None:
        self.code: str | None = None
        self.message = ""
        self.remaining = 0

    def take(self) -> tuple[str, str] | None:
        if self.code is None or self.remaining <= 0:
            return None
        self.remaining -= 1
        return self.code, self.message

    def queue(self, body: Any) -> Response:
        code = body.get("code") if isinstance(body, dict) else None
        count = body.get("count", 1) if isinstance(body, dict) else None
        if not isinstance(code, str) or not isinstance(count, int) or count < 1:
            return json_response({"detail": "code: a string; count: a positive integer"}, 422)
        self.code, self.message, self.remaining = code, str(body.get("message", "")), count
        return json_response({"code": code, "remaining": count})


class Ledger:
    """Vouchers numbered per period and voucher type, e.g. 记-0001."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.counts = {"duplicates": 0, "rejected": 0}

    def by_tradeid(self, tradeid: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM vouchers WHERE tradeid = ?", (tradeid,)
        ).fetchone()
        return row

    def by_reference(self, reference: str) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM vouchers WHERE reference = ? ORDER BY id", (reference,)
        ).fetchall()

    def add(self, voucher: LedgerVoucher, body: Any, tradeid: str | None) -> sqlite3.Row:
        """Store a checked voucher; no await runs in here, so one event loop serialises adds."""
        period = voucher.period_key
        with transaction(self.conn):
            (seq,) = self.conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM vouchers"
                " WHERE period = ? AND voucher_type = ?",
                (period, voucher.voucher_type),
            ).fetchone()
            self.conn.execute(
                "INSERT INTO vouchers (voucher_no, voucher_type, period, seq, reference, tradeid,"
                " body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    f"{voucher.voucher_type}-{seq:04d}",
                    voucher.voucher_type,
                    period,
                    seq,
                    voucher.reference,
                    tradeid,
                    orjson.dumps(body).decode(),
                    now_iso(),
                ),
            )
        row = self.conn.execute("SELECT * FROM vouchers ORDER BY id DESC LIMIT 1").fetchone()
        assert row is not None
        return row

    def stats(self, faults: FaultState) -> dict[str, Any]:
        (vouchers,) = self.conn.execute("SELECT COUNT(*) FROM vouchers").fetchone()
        return {
            "vouchers": vouchers,
            **self.counts,
            "requests": faults.counts["requests"],
            "faults": faults.snapshot(),
        }


def view(row: sqlite3.Row) -> dict[str, Any]:
    """A stored voucher as `/_sim/vouchers` and the U8 query show it."""
    return {
        "voucher_no": row["voucher_no"],
        "voucher_type": row["voucher_type"],
        "period": row["period"],
        "reference": row["reference"],
        "tradeid": row["tradeid"],
        "created_at": row["created_at"],
        "body": orjson.loads(row["body"]),
    }


# -- credentials --------------------------------------------------------------------------------


@dataclass(frozen=True)
class U8Credentials:
    """What U8's open platform console shows an integrator, by its field names."""

    app_key: str
    app_secret: str
    from_account: str
    to_account: str


@dataclass(frozen=True)
class NCCredentials:
    """What NC's exchange platform (外部交换平台) is set up with, by its field names."""

    account: str
    groupcode: str
    sender: str
    receiver: str
    company: str


def load_credentials(data_dir: Path, profile: str) -> U8Credentials | NCCredentials:
    """The simulator's credentials for `profile`, made at first use and kept on disk."""
    path = data_dir / f"credentials-{profile}.json"
    kind: type[U8Credentials] | type[NCCredentials] = (
        U8Credentials if profile == "u8" else NCCredentials
    )
    if path.exists():
        return kind(**json.loads(path.read_text()))
    made: U8Credentials | NCCredentials
    if profile == "u8":
        made = U8Credentials(
            app_key=f"opa{secrets.token_hex(8)}",
            app_secret=secrets.token_urlsafe(24),
            from_account="finoa",
            to_account=f"u8{secrets.token_hex(4)}",
        )
    else:
        made = NCCredentials(
            account="design", groupcode="0001", sender="finoa", receiver="0001", company="1001"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(made)))
    return made


# -- U8 OpenAPI ---------------------------------------------------------------------------------


def _u8_error(code: str, message: str) -> Response:
    return json_response({"errcode": code, "errmsg": message})


def _u8_voucher(body: Any) -> LedgerVoucher:
    """The ledger form of a `voucher/add` body; Refused("bad") naming the field."""
    voucher = body.get("voucher") if isinstance(body, dict) else None
    if not isinstance(voucher, dict):
        raise Refused("bad", 'voucher: the body must be {"voucher": {...}}')
    for name in ("voucher_type", "fiscal_year", "accounting_period", "date"):
        if not isinstance(voucher.get(name), str) or not voucher[name]:
            raise Refused("bad", f"voucher.{name}: required")
    entries = []
    for side in ("debit", "credit"):
        lines = (voucher.get(side) or {}).get("entry", [])
        if not isinstance(lines, list):
            raise Refused("bad", f"voucher.{side}.entry: must be a list")
        for line in lines:
            if not isinstance(line, dict) or not isinstance(line.get("account_code"), str):
                raise Refused("bad", f"voucher.{side}.entry: every entry needs account_code")
            amount_field = f"natural_{side}_currency"
            try:
                amount = fen(line.get(amount_field), f"{side} entry {line.get('entry_id')}")
            except ValueError as exc:
                raise Refused("bad", str(exc)) from None
            aux = {k: str(line[k]) for k in ("dept_id", "person_id", "item_id") if line.get(k)}
            entries.append(
                LedgerEntry(
                    str(line.get("entry_id", "")),
                    line["account_code"],
                    amount if side == "debit" else 0,
                    amount if side == "credit" else 0,
                    aux,
                )
            )
    reference = voucher.get("reserve2")
    if reference and voucher.get("voucher_making_system") != "CDM":
        raise Refused("bad", "voucher.reserve2: kept only with voucher_making_system CDM")
    return LedgerVoucher(
        voucher["voucher_type"],
        voucher["fiscal_year"],
        voucher["accounting_period"],
        voucher["date"],
        reference if isinstance(reference, str) else None,
        entries,
    )


def create_u8_app(
    data_dir: Path, *, token_ttl: float = 7200.0, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The U8 OpenAPI simulator; its ledger lives in `data_dir/u8.sqlite3`."""
    credentials = load_credentials(data_dir, "u8")
    assert isinstance(credentials, U8Credentials)
    ledger = Ledger(open_database(data_dir / "u8.sqlite3", LEDGER_SCHEMA))
    state = SimState()
    faults = FaultState()
    tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        ledger.conn.close()

    app = FastAPI(title="finoa Yonyou U8 OpenAPI simulator", lifespan=lifespan)
    app.add_middleware(FaultMiddleware, state=faults, prefixes=("/api/",))

    @app.get("/system/token")
    async def token(from_account: str = "", app_key: str = "", app_secret: str = "") -> Response:
        if (
            from_account != credentials.from_account
            or app_key != credentials.app_key
            or not secrets.compare_digest(app_secret, credentials.app_secret)
        ):
            return _u8_error(codes.U8_BAD_APP, "app_key、app_secret或from_account不正确")
        value = secrets.token_hex(16)
        tokens[value] = clock() + token_ttl
        return json_response(
            {"errcode": codes.U8_OK, "errmsg": "", "token": {"id": value, "expiresIn": token_ttl}}
        )

    def authorised(request: Request) -> Response | None:
        query = request.query_params
        if query.get("app_key") != credentials.app_key:
            return _u8_error(codes.U8_BAD_APP, "app_key不正确")
        if query.get("to_account") != credentials.to_account:
            return _u8_error(
                codes.U8_BAD_PARAMETER, f"to_account {query.get('to_account')!r}不存在"
            )
        expiry = tokens.get(query.get("token", ""))
        if expiry is None or clock() >= expiry:
            return _u8_error(codes.U8_TOKEN_INVALID, "token无效或已过期")
        return None

    @app.post("/api/voucher/add")
    async def voucher_add(request: Request) -> Response:
        refused = authorised(request)
        if refused is not None:
            return refused
        queued = state.vendor_errors.take()
        if queued is not None:
            return _u8_error(*queued)
        tradeid = request.query_params.get("tradeid") or request.query_params.get("biz_id")
        if tradeid:
            first = ledger.by_tradeid(tradeid)
            if first is not None:  # U8: the same tradeid yields the first voucher
                ledger.counts["duplicates"] += 1
                return json_response(_u8_added(first))
        try:
            body = orjson.loads(await request.body())
            voucher = _u8_voucher(body)
            check(voucher, state.base)
        except orjson.JSONDecodeError as exc:
            ledger.counts["rejected"] += 1
            return _u8_error(codes.U8_BAD_PARAMETER, f"body is not JSON: {exc}")
        except Refused as exc:
            ledger.counts["rejected"] += 1
            code = {"base_data": codes.U8_BASE_DATA, "unbalanced": codes.U8_UNBALANCED}.get(
                exc.kind, codes.U8_BAD_PARAMETER
            )
            return _u8_error(code, exc.detail)
        row = ledger.add(voucher, body, tradeid or None)
        return json_response(_u8_added(row))

    @app.get("/api/voucher/batch_get")
    async def voucher_batch_get(request: Request) -> Response:
        refused = authorised(request)
        if refused is not None:
            return refused
        reference = request.query_params.get("reserve2", "")
        if not reference:
            return _u8_error(codes.U8_BAD_PARAMETER, "reserve2: required")
        rows = ledger.by_reference(reference)
        return json_response(
            {"errcode": codes.U8_OK, "errmsg": "", "voucher": [_u8_added(r) for r in rows]}
        )

    _sim_routes(app, ledger, faults, state)
    return app


def _u8_added(row: sqlite3.Row) -> dict[str, Any]:
    year, month = row["period"].split("-")
    return {
        "errcode": codes.U8_OK,
        "errmsg": "",
        "tradeid": row["tradeid"],
        "id": f"{row['period']}-{row['voucher_no']}",
        "voucher_type": row["voucher_type"],
        "voucher_id": str(row["seq"]),
        "fiscal_year": year,
        "accounting_period": str(int(month)),
        "reserve2": row["reference"],
    }


async def _sim_body(request: Request) -> Any:
    """A test route's JSON body; None when it is not JSON (the route answers 422)."""
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None


def _sim_routes(app: FastAPI, ledger: Ledger, faults: FaultState, state: SimState) -> None:
    add_sim_routes(app, faults)

    @app.post("/_sim/vendor-errors")
    async def queue_vendor_errors(request: Request) -> Response:
        return state.vendor_errors.queue(await _sim_body(request))

    @app.post("/_sim/base-data/withdraw")
    async def withdraw_base_data(request: Request) -> Response:
        """Codes the ERP's base data no longer has: `{"item_id": ["P003"], ...}`."""
        body = await _sim_body(request)
        try:
            if not isinstance(body, dict):
                raise ValueError("the body must be an object of code lists")
            state.base = state.base.without(body)
        except (ValueError, TypeError) as exc:
            return json_response({"detail": str(exc)}, 422)
        return json_response({kind: sorted(codes) for kind, codes in state.base.aux.items()})

    @app.get("/_sim/stats")
    async def stats() -> Response:
        return json_response(ledger.stats(faults))

    @app.get("/_sim/vouchers")
    async def all_vouchers() -> Response:
        rows = ledger.conn.execute("SELECT * FROM vouchers ORDER BY id").fetchall()
        return json_response([view(row) for row in rows])


# -- NC / NCC XChangeServlet ---------------------------------------------------------------------


def _nc_voucher(voucher: etree._Element) -> LedgerVoucher:
    head = voucher.find("voucher_head")
    body = voucher.find("voucher_body")
    if head is None or body is None:
        raise Refused("bad", "voucher: voucher_head and voucher_body are required")

    def text(node: etree._Element, tag: str) -> str:
        return (node.findtext(tag) or "").strip()

    entries = []
    for index, entry in enumerate(body.findall("entry"), start=1):
        entry_id = text(entry, "entry_id") or str(index)
        try:
            debit = fen(text(entry, "natural_debit_currency"), f"entry {entry_id} debit")
            credit = fen(text(entry, "natural_credit_currency"), f"entry {entry_id} credit")
        except ValueError as exc:
            raise Refused("bad", str(exc)) from None
        aux = {
            str(item.get("name")): (item.text or "").strip()
            for item in entry.iterfind("auxiliary_accounting/item")
        }
        entries.append(LedgerEntry(entry_id, text(entry, "account_code"), debit, credit, aux))
    return LedgerVoucher(
        text(head, "voucher_type"),
        text(head, "fiscal_year"),
        text(head, "accounting_period"),
        text(head, "prepareddate"),
        text(head, "reserve2") or None,
        entries,
    )


def create_nc_app(data_dir: Path) -> FastAPI:
    """The NC exchange simulator (`POST /service/XChangeServlet`); ledger in `nc.sqlite3`."""
    credentials = load_credentials(data_dir, "nc")
    assert isinstance(credentials, NCCredentials)
    ledger = Ledger(open_database(data_dir / "nc.sqlite3", LEDGER_SCHEMA))
    state = SimState()
    faults = FaultState()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        ledger.conn.close()

    app = FastAPI(title="finoa Yonyou NC exchange simulator", lifespan=lifespan)
    app.add_middleware(FaultMiddleware, state=faults, prefixes=("/service/",))

    def answer(results: list[NCResult], encoding: str) -> Response:
        body = nc_result_xml(
            results, sender=credentials.receiver, receiver=credentials.sender, encoding=encoding
        )
        return Response(body, 200, media_type=f"text/xml; charset={encoding}")

    def failed(code: str, description: str, encoding: str, bdocid: str = "") -> Response:
        ledger.counts["rejected"] += 1
        return answer([NCResult(False, code, description, "", bdocid)], encoding)

    @app.post(NC_PATH)
    async def exchange(request: Request) -> Response:
        raw = await request.body()
        encoding = declared_encoding(raw)
        if encoding not in ("UTF-8", "GBK", "GB2312"):
            return failed(codes.NC_NOT_XML, f"不支持的编码 {encoding}", "UTF-8")
        query = request.query_params
        if query.get("account") != credentials.account:
            return failed(codes.NC_SENDER, f"账套 {query.get('account')!r} 不存在", encoding)
        if query.get("groupcode") != credentials.groupcode:
            return failed(codes.NC_SENDER, f"集团 {query.get('groupcode')!r} 不存在", encoding)
        try:
            root = read_xml(raw)
        except ValueError as exc:
            return failed(codes.NC_NOT_XML, f"XML解析失败: {exc}", encoding)
        if root.tag != "ufinterface" or root.get("roottag") != "voucher":
            return failed(codes.NC_NOT_XML, "根节点应为 ufinterface roottag=voucher", encoding)
        if root.get("sender") != credentials.sender:
            return failed(codes.NC_SENDER, f"外部系统 {root.get('sender')!r} 未注册", encoding)
        if root.get("proc") == "query":
            return query_answer(root, encoding)
        queued = state.vendor_errors.take()
        if queued is not None:
            return failed(*queued, encoding)
        results = []
        for node in root.findall("voucher"):
            bdocid = str(node.get("id") or "")
            try:
                voucher = _nc_voucher(node)
                check(voucher, state.base)
            except Refused as exc:
                ledger.counts["rejected"] += 1
                code = codes.NC_TRANSLATE if exc.kind == "base_data" else codes.NC_BUSINESS
                results.append(NCResult(False, code, exc.detail, "", bdocid))
                continue
            row = ledger.add(voucher, raw.decode(encoding), None)
            number = f"{row['period']}-{row['voucher_no']}"
            results.append(NCResult(True, codes.NC_OK, f"单据 {bdocid} 导入成功", number, bdocid))
        if not results:
            return failed(codes.NC_NOT_XML, "没有 voucher 节点", encoding)
        return answer(results, encoding)

    def query_answer(root: etree._Element, encoding: str) -> Response:
        reference = (root.findtext("voucher_query/reserve2") or "").strip()
        if not reference:
            return failed(codes.NC_NOT_XML, "voucher_query/reserve2 必填", encoding)
        rows = ledger.by_reference(reference)
        found = [
            NCResult(True, codes.NC_OK, "查询成功", f"{r['period']}-{r['voucher_no']}", reference)
            for r in rows
        ]
        return answer(found or [NCResult(True, codes.NC_OK, "查询成功", "", reference)], encoding)

    _sim_routes(app, ledger, faults, state)
    return app


def run_yonyou_simulator(
    host: str, port: int, data_dir: Path, profile: str, *, token_ttl: float = 7200.0
) -> None:
    """Serve the U8 or NC simulator until interrupted."""
    app = (
        create_u8_app(data_dir, token_ttl=token_ttl) if profile == "u8" else create_nc_app(data_dir)
    )
    serve(app, host, port)
