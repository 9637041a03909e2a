"""A Kingdee K/3 Cloud simulator: the WebAPI of one account set over SQLite.

It enforces what K/3 Cloud enforces and keeps what K/3 Cloud lacks:

- sessions: `ValidateUser` grants one (cookie `kdservice-sessionid`), which ends after
  `session_seconds` without use; a request without a live session, or signed wrongly under the
  app-secret scheme, is answered "会话信息已丢失，请重新登录" (MsgCode 1), naming the header;
- base data by `FNumber`: account book, voucher word, accounts (detail accounts only), currency,
  exchange-rate type, and the dimensions (核算维度) each account carries, required or not;
  anything unknown is refused in K/3 Cloud's error shape, naming the field;
- no idempotency: every Save without an internal id makes a new voucher;
- the overwrite: a Save whose model carries an internal id (`FVOUCHERID`) overwrites the voucher
  it names, as K/3 Cloud does. Every such Save is recorded (`/_sim/overwrites`), so a test can
  prove that a client never sends one;
- Submit (A -> B) and Audit (B -> C) by `Ids` or `Numbers`; `ExecuteBillQuery` over vouchers
  (one row per entry) and base data, with `=`, `<>` and `like` conditions joined by `and`.

The ledger (`/_sim/vouchers`, `/_sim/stats`) can be counted; faults are injected as in every
simulator (`/_sim/faults`). Credentials are made on first start and kept in the data dir.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import Response

from finoa.connectors.generic_erp.simulator import load_chart
from finoa.connectors.kingdee.mapping import EXPLANATION_LIMIT, reference_in
from finoa.connectors.kingdee.protocol import (
    AUDIT,
    AUDITED,
    CREATED,
    DRAFT,
    EXECUTE_BILL_QUERY,
    REOPENED,
    SAVE,
    SESSION_COOKIE,
    SESSION_LOST,
    SUBMIT,
    SUBMITTED,
    SUFFIX,
    VALIDATE_USER,
    VIEW,
    VOUCHER_FORM,
    AppCredentials,
    MsgCode,
    field_error,
    status_answer,
)
from finoa.connectors.simulation import (
    FaultMiddleware,
    FaultState,
    Problem,
    add_sim_routes,
    install_problems,
    json_response,
    now_iso,
    open_database,
    read_json,
    serve,
    transaction,
)

PREFIX = "/K3Cloud/"
FIRST_VOUCHER_ID = 100001

SCHEMA = """
CREATE TABLE IF NOT EXISTS vouchers (
    id INTEGER PRIMARY KEY,
    bill_no TEXT NOT NULL UNIQUE,
    book TEXT NOT NULL,
    year INTEGER NOT NULL,
    period INTEGER NOT NULL,
    word TEXT NOT NULL,
    group_no INTEGER NOT NULL,
    voucher_date TEXT NOT NULL,
    status TEXT NOT NULL,
    header TEXT NOT NULL,
    saves INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    UNIQUE (book, year, period, word, group_no)
);
CREATE TABLE IF NOT EXISTS entries (
    voucher_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    explanation TEXT NOT NULL,
    account TEXT NOT NULL,
    debit TEXT NOT NULL,
    credit TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (voucher_id, seq)
);
CREATE TABLE IF NOT EXISTS overwrites (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    voucher_id TEXT NOT NULL,
    applied INTEGER NOT NULL,
    model TEXT NOT NULL,
    at TEXT NOT NULL
);
"""

# -- the account set ------------------------------------------------------------------------------

BOOKS = {"001": "示例公司主账簿"}
WORDS = {"PRE001": "记", "PRE002": "收", "PRE003": "付", "PRE004": "转"}
CURRENCIES = {"PRE001": "人民币"}
RATE_TYPES = {"HLTX01_SYS": "固定汇率"}
# FDetailID slot -> (dimension, its base-data form)
SLOTS = {
    "FFLEX5": ("部门", "BD_Department"),
    "FFLEX7": ("员工", "BD_Empinfo"),
    "FF100001": ("项目", "BOS_ASSISTANTDATA_DETAIL"),
}
# account prefix -> {slot: required}
ACCOUNT_SLOTS: dict[str, dict[str, bool]] = {
    "6601": {"FFLEX5": True, "FF100001": False},
    "6602": {"FFLEX5": True, "FF100001": False},
    "6603": {"FFLEX5": True},
    "1221": {"FFLEX7": True},
    "2241": {"FFLEX7": True},
}


@dataclass(frozen=True)
class AccountSet:
    """The base data the simulator holds, by FNumber."""

    accounts: dict[str, str]
    detail_accounts: frozenset[str]
    dimensions: dict[str, dict[str, bool]]  # slot -> code -> enabled

    @classmethod
    def sample(cls) -> AccountSet:
        """finoa's chart and the sample company's departments, employees and projects."""
        chart = load_chart()
        detail = frozenset(c for c in chart if not any(o.startswith(c + ".") for o in chart))
        text = resources.files("finoa.sample").joinpath("masterdata.yaml").read_text("utf-8")
        data = yaml.safe_load(text)
        return cls(
            accounts=chart,
            detail_accounts=detail,
            dimensions={
                "FFLEX5": {str(u["id"]): True for u in data["org_units"]},
                "FFLEX7": {str(e["id"]): bool(e.get("active", True)) for e in data["employees"]},
                "FF100001": {str(p["id"]): True for p in data["projects"]},
            },
        )

    def slots_of(self, account: str) -> dict[str, bool]:
        best = ""
        for prefix in ACCOUNT_SLOTS:
            if (account == prefix or account.startswith(prefix + ".")) and len(prefix) > len(best):
                best = prefix
        return ACCOUNT_SLOTS.get(best, {})


def base_data_missing(field_name: str, label: str, number: Any, row: int | None = None) -> dict:
    where = f"第{row}行分录" if row else ""
    message = f"{where}字段“{label}”是基础资料字段，但在系统中没有找到编码为“{number}”的资料"
    return field_error(field_name, message)


def _number(value: Any) -> str | None:
    if isinstance(value, dict):
        number = value.get("FNumber", value.get("FNUMBER"))
        return str(number) if number is not None else None
    return None


def _amount(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        return None
    return amount


def _is_internal_id(value: Any) -> bool:
    """Whether a model's FVOUCHERID names a voucher (0, "" and absent mean a new one)."""
    return value not in (None, 0, "0", "")


@dataclass
class CheckedVoucher:
    book: str
    word: str
    voucher_date: date
    header: dict[str, str]
    entries: list[dict[str, Any]] = field(default_factory=list)


def check_voucher(model: dict[str, Any], books: AccountSet) -> tuple[CheckedVoucher | None, list]:
    """What K/3 Cloud refuses in a GL_VOUCHER model: (the voucher, []) or (None, errors)."""
    errors: list[dict[str, Any]] = []
    book = _number(model.get("FAccountBookID"))
    if book not in BOOKS:
        errors.append(base_data_missing("FAccountBookID", "账簿", book))
    word = _number(model.get("FVOUCHERGROUPID"))
    if word not in WORDS:
        errors.append(base_data_missing("FVOUCHERGROUPID", "凭证字", word))
    raw_date = model.get("FDate")
    try:
        voucher_date = date.fromisoformat(str(raw_date)[:10])
    except ValueError:
        voucher_date = None
        errors.append(field_error("FDate", f"日期“{raw_date}”不是有效的日期"))
    if voucher_date is not None:
        for key, expected in (("FYEAR", voucher_date.year), ("FPERIOD", voucher_date.month)):
            stated = model.get(key)
            if stated not in (None, "") and str(stated) != str(expected):
                errors.append(field_error(key, f"{key}“{stated}”与凭证日期{voucher_date}不符"))
    header = {}
    for key, value in model.items():
        if key.startswith("F_"):
            if not isinstance(value, str) or len(value) > EXPLANATION_LIMIT:
                errors.append(field_error(key, f"{key} 须为不超过{EXPLANATION_LIMIT}字的文本"))
            else:
                header[key] = value
    rows = model.get("FEntity")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        errors.append(field_error("FEntity", "凭证分录不能为空"))
        return None, errors
    debit_total = credit_total = Decimal(0)
    entries = []
    for index, row in enumerate(rows, start=1):
        where = f"第{index}行分录"
        explanation = row.get("FEXPLANATION")
        if not isinstance(explanation, str) or not explanation.strip():
            errors.append(field_error("FEXPLANATION", f"{where}摘要不能为空"))
        elif len(explanation) > EXPLANATION_LIMIT:
            errors.append(field_error("FEXPLANATION", f"{where}摘要超过{EXPLANATION_LIMIT}字"))
        account = _number(row.get("FACCOUNTID"))
        if account not in books.accounts:
            errors.append(base_data_missing("FACCOUNTID", "科目编码", account, index))
        elif account not in books.detail_accounts:
            errors.append(field_error("FACCOUNTID", f"{where}科目“{account}”不是明细科目"))
        currency = _number(row.get("FCURRENCYID"))
        if currency not in CURRENCIES:
            errors.append(base_data_missing("FCURRENCYID", "币别", currency, index))
        rate_type = _number(row.get("FEXCHANGERATETYPE"))
        if rate_type not in RATE_TYPES:
            errors.append(base_data_missing("FEXCHANGERATETYPE", "汇率类型", rate_type, index))
        debit, credit = _amount(row.get("FDEBIT", 0)), _amount(row.get("FCREDIT", 0))
        for key, amount in (("FDEBIT", debit), ("FCREDIT", credit)):
            if amount is None:
                errors.append(field_error(key, f"{where}{key}“{row.get(key)}”不是两位小数的金额"))
        if debit is not None and credit is not None:
            if (debit != 0) == (credit != 0):
                errors.append(field_error("FDEBIT", f"{where}借方金额与贷方金额须且只须填一个"))
            debit_total += debit
            credit_total += credit
        detail = row.get("FDetailID") or {}
        slots = books.slots_of(account) if isinstance(account, str) else {}
        given: dict[str, str] = {}
        if not isinstance(detail, dict):
            errors.append(field_error("FDetailID", f"{where}核算维度须为对象"))
            detail = {}
        for key, value in detail.items():
            slot = key.removeprefix("FDETAILID__")
            if slot not in SLOTS or slot not in slots:
                errors.append(field_error(key, f"{where}科目“{account}”没有核算维度 {slot}"))
                continue
            code = _number(value)
            label = SLOTS[slot][0]
            enabled = books.dimensions[slot].get(code or "")
            if enabled is None:
                errors.append(base_data_missing(key, label, code, index))
            elif not enabled:
                errors.append(field_error(key, f"{where}{label}“{code}”已禁用"))
            else:
                given[slot] = str(code)
        for slot, required in slots.items():
            if (
                required
                and slot not in given
                and not any(e["FieldName"] == f"FDETAILID__{slot}" for e in errors)
            ):
                errors.append(
                    field_error(
                        f"FDETAILID__{slot}",
                        f"{where}科目“{account}”的核算维度“{SLOTS[slot][0]}”为必录项",
                    )
                )
        entries.append(
            {
                "explanation": explanation,
                "account": account,
                "debit": str(debit),
                "credit": str(credit),
                "detail": given,
            }
        )
    if not errors and debit_total != credit_total:
        errors.append(field_error(None, f"借贷不平衡：借方{debit_total}，贷方{credit_total}"))
    if errors:
        return None, errors
    assert book is not None and word is not None and voucher_date is not None
    return CheckedVoucher(book, word, voucher_date, header, entries), []


# -- ExecuteBillQuery ------------------------------------------------------------------------------

CONDITION = re.compile(
    r"^\s*(?P<field>[A-Za-z_][\w.]*)\s*(?P<op>=|<>|(?i:like))\s*"
    r"(?P<value>'(?:[^']|'')*'|-?\d+(?:\.\d+)?)\s*$"
)


def _matcher(filter_string: str) -> Callable[[dict[str, Any]], bool] | str:
    """A row predicate for a FilterString, or the condition that cannot be read."""
    if not filter_string.strip():
        return lambda row: True
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for part in re.split(r"\s+and\s+", filter_string.strip(), flags=re.IGNORECASE):
        match = CONDITION.match(part)
        if match is None:
            return part
        literal = match["value"]
        value = literal[1:-1].replace("''", "'") if literal.startswith("'") else literal
        tests.append(_condition(match["field"], match["op"].lower(), value))
    return lambda row: all(test(row) for test in tests)


def _condition(name: str, op: str, value: str) -> Callable[[dict[str, Any]], bool]:
    """One condition of a FilterString: `name op value`."""
    if op == "like":
        pattern = "".join(
            ".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in value
        )
        regex = re.compile(pattern, re.DOTALL)

        def like(row: dict[str, Any]) -> bool:
            held = row.get(name)
            return isinstance(held, str) and regex.fullmatch(held) is not None

        return like

    def compare(row: dict[str, Any]) -> bool:
        return (str(row.get(name)) == value) == (op == "=")

    return compare


VOUCHER_FIELDS = (
    "FVOUCHERID",
    "FBillNo",
    "FDate",
    "FYEAR",
    "FPERIOD",
    "FVOUCHERGROUPNO",
    "FDocumentStatus",
    "FAccountBookID.FNumber",
    "FVOUCHERGROUPID.FNumber",
    "FEntity_FEntryID",
    "FEXPLANATION",
    "FACCOUNTID.FNumber",
    "FDEBIT",
    "FCREDIT",
)


# -- credentials -----------------------------------------------------------------------------------

CREDENTIAL_FIELDS = ("acct_id", "user_name", "app_id", "app_secret", "password", "lcid")


class CredentialsError(ValueError):
    """The simulator's credentials file is damaged."""


def credentials(data_dir: Path) -> dict[str, Any]:
    """The account set's credentials, made on first use and kept in `data_dir`."""
    path = data_dir / "credentials.json"
    if path.exists():
        try:
            stored = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise CredentialsError(f"{path}: cannot be read as JSON: {exc}") from None
        missing = [k for k in CREDENTIAL_FIELDS if not isinstance(stored, dict) or k not in stored]
        if missing:
            raise CredentialsError(f"{path}: lacks {', '.join(missing)}")
        return dict(stored)
    data_dir.mkdir(parents=True, exist_ok=True)
    made = {
        "acct_id": uuid.uuid4().hex[:14],
        "user_name": "finoa-api",
        "app_id": f"{secrets.randbelow(900_000) + 100_000}_"
        + base64.b64encode(os.urandom(24)).decode(),
        "app_secret": uuid.uuid4().hex,
        "password": secrets.token_urlsafe(12),
        "lcid": 2052,
    }
    path.write_text(json.dumps(made, indent=2), "utf-8")
    path.chmod(0o600)
    return made


def credentials_with_url(data_dir: Path, host: str, port: int) -> dict[str, Any]:
    """The credentials in the names of Kingdee's console, with the server URL."""
    return {**credentials(data_dir), "server_url": f"http://{host}:{port}{PREFIX}"}


# -- the app ---------------------------------------------------------------------------------------


def _form_call(body: Any) -> tuple[str | None, Any]:
    """(formid, data) of an operation body: `{"formid", "data"}` (data an object or a JSON
    string), or the older `{"parameters": [formid, data]}`."""
    if not isinstance(body, dict):
        return None, None
    if isinstance(body.get("parameters"), list):
        params = body["parameters"]
        formid = params[0] if len(params) > 1 else None
        data = params[-1] if params else None
    else:
        formid, data = body.get("formid", body.get("formId")), body.get("data")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            data = None
    return (str(formid) if formid is not None else None), data


def create_kingdee_app(data_dir: Path, *, session_seconds: float = 1200.0) -> FastAPI:
    """The K/3 Cloud simulator app; its account set lives in `data_dir/kingdee.sqlite3`."""
    data_dir = Path(data_dir)
    creds = credentials(data_dir)
    app_creds = AppCredentials(
        creds["acct_id"], creds["user_name"], creds["app_id"], creds["app_secret"], creds["lcid"]
    )
    conn = open_database(data_dir / "kingdee.sqlite3", SCHEMA)
    books = AccountSet.sample()
    faults = FaultState()
    sessions: dict[str, float] = {}  # session id -> when it ends (monotonic)
    counts = {"logins": 0, "sessions_lost": 0, "rejected": 0, "saves": 0}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        conn.close()

    app = FastAPI(title="finoa K/3 Cloud simulator", lifespan=lifespan)
    install_problems(app)
    app.add_middleware(FaultMiddleware, state=faults, prefixes=(PREFIX,))

    def new_session() -> str:
        sid = uuid.uuid4().hex
        sessions[sid] = time.monotonic() + session_seconds
        return sid

    def authenticate(request: Request) -> tuple[str | None, str | None]:
        """(a live session id, None), or (None, the header that failed)."""
        now = time.monotonic()
        sid = request.headers.get(SESSION_COOKIE) or request.cookies.get(SESSION_COOKIE)
        live = sid if sid and sessions.get(sid, 0.0) > now else None
        if "x-kd-appkey" in request.headers:
            refused = app_creds.refusal(request.headers, request.url.path, time.time())
            if refused is not None:
                return None, refused
            live = live or new_session()
        if live is None:
            return None, SESSION_COOKIE
        sessions[live] = now + session_seconds
        return live, None

    def answer(data: Any, sid: str | None = None) -> Response:
        response = json_response(data)
        if sid:
            response.set_cookie(SESSION_COOKIE, sid, path="/", httponly=True)
        return response

    @app.post(PREFIX + "{service}")
    async def kdsvc(service: str, request: Request) -> Response:
        if not service.endswith(SUFFIX):
            raise Problem(404, "Not found", f"no service {service}")
        name = service.removesuffix(SUFFIX)
        body = await read_json(request)
        if name == VALIDATE_USER:
            return validate_user(body)
        operations = {SAVE: save, SUBMIT: submit, AUDIT: audit, EXECUTE_BILL_QUERY: bill_query}
        if name == VIEW:
            operations[VIEW] = view
        operation = operations.get(name)
        if operation is None:
            raise Problem(404, "Not found", f"the simulator has no service {name}")
        sid, refused = authenticate(request)
        if sid is None:
            counts["sessions_lost"] += 1
            lost = status_answer(
                errors=[field_error(refused, SESSION_LOST)], msg_code=MsgCode.SESSION_LOST
            )
            return answer([[lost]] if name == EXECUTE_BILL_QUERY else lost)
        return answer(operation(body), sid)

    def validate_user(body: Any) -> Response:
        if isinstance(body, dict) and isinstance(body.get("parameters"), list):
            params: list[Any] = [*body["parameters"], None, None, None]
            acct, user, password = params[0], params[1], params[2]
        elif isinstance(body, dict):
            acct, user, password = body.get("acctID"), body.get("username"), body.get("password")
        else:
            acct = user = password = None
        if acct != creds["acct_id"]:
            return answer({"LoginResultType": 0, "Message": f"数据中心“{acct}”不存在"})
        if user != creds["user_name"] or password != creds["password"]:
            return answer({"LoginResultType": 0, "Message": "用户名或密码错误！"})
        counts["logins"] += 1
        sid = new_session()
        context = {"UserName": user, "DBid": acct, "SessionId": sid, "UserLocale": "zh-CN"}
        login = {
            "Message": None,
            "MessageCode": "CheckPasswordPolicy",
            "LoginResultType": 1,
            "Context": context,
            "KDSVCSessionId": sid,
            "IsSuccessByAPI": True,
        }
        return answer(login, sid)

    # -- GL_VOUCHER ------------------------------------------------------------------------------
    def refuse(errors: list[dict[str, Any]], code: int) -> dict[str, Any]:
        counts["rejected"] += 1
        for index, error in enumerate(errors):
            error.setdefault("DIndex", index)
        return status_answer(errors=errors, msg_code=code)

    def save(body: Any) -> dict[str, Any]:
        formid, data = _form_call(body)
        if formid != VOUCHER_FORM:
            return refuse(
                [field_error("formid", f"业务对象“{formid}”不存在")], MsgCode.FORM_MISSING
            )
        model = data.get("Model") if isinstance(data, dict) else None
        if not isinstance(model, dict):
            return refuse([field_error("Model", "Model 须为对象")], MsgCode.BAD_PARAMETER)
        counts["saves"] += 1
        internal = model.get("FVOUCHERID")
        if _is_internal_id(internal):
            return overwrite(str(internal), model)
        checked, errors = check_voucher(model, books)
        if checked is None:
            return refuse(errors, code_of(errors))
        with transaction(conn):
            voucher_id, bill_no = insert_voucher(checked)
        entity = {"Id": voucher_id, "Number": bill_no, "DIndex": 0}
        return status_answer(entities=[entity], Id=voucher_id, Number=bill_no, NeedReturnData=[{}])

    def code_of(errors: list[dict[str, Any]]) -> int:
        missing = any("没有找到编码" in str(e["Message"]) for e in errors)
        return MsgCode.NOT_FOUND_FIELD_OR_VALUE if missing else MsgCode.VALIDATION_FAILED

    def insert_voucher(checked: CheckedVoucher) -> tuple[int, str]:
        year, period = checked.voucher_date.year, checked.voucher_date.month
        (voucher_id,) = conn.execute(
            "SELECT COALESCE(MAX(id), ?) + 1 FROM vouchers", (FIRST_VOUCHER_ID - 1,)
        ).fetchone()
        (group_no,) = conn.execute(
            "SELECT COALESCE(MAX(group_no), 0) + 1 FROM vouchers"
            " WHERE book = ? AND year = ? AND period = ? AND word = ?",
            (checked.book, year, period, checked.word),
        ).fetchone()
        bill_no = f"{year}-{period:02d}-{WORDS[checked.word]}-{group_no:04d}"
        conn.execute(
            "INSERT INTO vouchers (id, bill_no, book, year, period, word, group_no, voucher_date,"
            " status, header, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                voucher_id,
                bill_no,
                checked.book,
                year,
                period,
                checked.word,
                group_no,
                checked.voucher_date.isoformat(),
                CREATED,
                orjson.dumps(checked.header).decode(),
                now_iso(),
            ),
        )
        write_entries(voucher_id, checked)
        return voucher_id, bill_no

    def write_entries(voucher_id: int, checked: CheckedVoucher) -> None:
        conn.execute("DELETE FROM entries WHERE voucher_id = ?", (voucher_id,))
        conn.executemany(
            "INSERT INTO entries (voucher_id, seq, explanation, account, debit, credit, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    voucher_id,
                    seq,
                    e["explanation"],
                    e["account"],
                    e["debit"],
                    e["credit"],
                    orjson.dumps(e["detail"]).decode(),
                )
                for seq, e in enumerate(checked.entries, start=1)
            ],
        )

    def overwrite(internal: str, model: dict[str, Any]) -> dict[str, Any]:
        """A Save naming a voucher: K/3 Cloud treats it as an update, and the voucher it held
        is lost. Recorded whether or not it could be applied."""
        row = conn.execute("SELECT * FROM vouchers WHERE CAST(id AS TEXT) = ?", (internal,))
        existing = row.fetchone()
        checked, errors = check_voucher(model, books)
        applied = existing is not None and existing["status"] in (DRAFT, CREATED, REOPENED)
        applied = applied and checked is not None
        with transaction(conn):
            conn.execute(
                "INSERT INTO overwrites (voucher_id, applied, model, at) VALUES (?, ?, ?, ?)",
                (internal, int(applied), orjson.dumps(model).decode(), now_iso()),
            )
            if applied:
                assert checked is not None and existing is not None
                conn.execute(
                    "UPDATE vouchers SET header = ?, saves = saves + 1, status = ? WHERE id = ?",
                    (orjson.dumps(checked.header).decode(), CREATED, existing["id"]),
                )
                write_entries(existing["id"], checked)
        if existing is None:
            return refuse([field_error("FVOUCHERID", f"凭证“{internal}”不存在")], MsgCode.NOT_FOUND)
        if checked is None:
            return refuse(errors, code_of(errors))
        if not applied:
            message = f"凭证{existing['bill_no']}已提交或已审核，不能修改"
            return refuse([field_error("FVOUCHERID", message)], MsgCode.NOT_OPERABLE)
        entity = {"Id": existing["id"], "Number": existing["bill_no"], "DIndex": 0}
        return status_answer(entities=[entity], Id=existing["id"], Number=existing["bill_no"])

    def targets(body: Any) -> tuple[list[sqlite3.Row | str], dict[str, Any] | None]:
        """The vouchers an operation names (by Ids or Numbers; a str for one not found)."""
        formid, data = _form_call(body)
        if formid != VOUCHER_FORM:
            return [], refuse(
                [field_error("formid", f"业务对象“{formid}”不存在")], MsgCode.FORM_MISSING
            )
        if not isinstance(data, dict):
            return [], refuse([field_error("data", "data 须为对象")], MsgCode.BAD_PARAMETER)
        ids = [i.strip() for i in str(data.get("Ids") or "").split(",") if i.strip()]
        numbers = [str(n) for n in data.get("Numbers") or []]
        if not ids and not numbers:
            return [], refuse(
                [field_error("Ids", "Ids 与 Numbers 不能都为空")], MsgCode.BAD_PARAMETER
            )
        found: list[sqlite3.Row | str] = []
        for key, column in [(i, "CAST(id AS TEXT)") for i in ids] + [
            (n, "bill_no") for n in numbers
        ]:
            row = conn.execute(f"SELECT * FROM vouchers WHERE {column} = ?", (key,)).fetchone()
            found.append(row if row is not None else key)
        return found, None

    def transition(body: Any, allowed: tuple[str, ...], to: str, verb: str) -> dict[str, Any]:
        found, refused = targets(body)
        if refused is not None:
            return refused
        errors, entities = [], []
        with transaction(conn):
            for index, row in enumerate(found):
                if isinstance(row, str):
                    errors.append(field_error(None, f"单据“{row}”不存在", index))
                elif row["status"] not in allowed:
                    message = f"凭证{row['bill_no']}的单据状态为{row['status']}，不能{verb}"
                    errors.append(field_error(None, message, index))
                else:
                    conn.execute("UPDATE vouchers SET status = ? WHERE id = ?", (to, row["id"]))
                    entities.append({"Id": row["id"], "Number": row["bill_no"], "DIndex": index})
        if errors:
            counts["rejected"] += 1
            code = MsgCode.NOT_FOUND if all("不存在" in e["Message"] for e in errors) else 12
            return status_answer(errors=errors, entities=entities, msg_code=code)
        return status_answer(entities=entities)

    def submit(body: Any) -> dict[str, Any]:
        return transition(body, (DRAFT, CREATED, REOPENED), SUBMITTED, "提交")

    def audit(body: Any) -> dict[str, Any]:
        return transition(body, (SUBMITTED,), AUDITED, "审核")

    def view(body: Any) -> dict[str, Any]:
        found, refused = targets(body)
        if refused is not None:
            return refused
        if not found or isinstance(found[0], str):
            return refuse([field_error(None, "单据不存在")], MsgCode.NOT_FOUND)
        return status_answer(Result=voucher_view(found[0]))

    def voucher_rows() -> list[dict[str, Any]]:
        rows = []
        for v in conn.execute("SELECT * FROM vouchers ORDER BY id").fetchall():
            header = orjson.loads(v["header"])
            for e in conn.execute(
                "SELECT * FROM entries WHERE voucher_id = ? ORDER BY seq", (v["id"],)
            ).fetchall():
                rows.append(
                    {
                        "FVOUCHERID": v["id"],
                        "FBillNo": v["bill_no"],
                        "FDate": f"{v['voucher_date']}T00:00:00",
                        "FYEAR": v["year"],
                        "FPERIOD": v["period"],
                        "FVOUCHERGROUPNO": str(v["group_no"]),
                        "FDocumentStatus": v["status"],
                        "FAccountBookID.FNumber": v["book"],
                        "FVOUCHERGROUPID.FNumber": v["word"],
                        "FEntity_FEntryID": e["seq"],
                        "FEXPLANATION": e["explanation"],
                        "FACCOUNTID.FNumber": e["account"],
                        "FDEBIT": float(e["debit"]),
                        "FCREDIT": float(e["credit"]),
                        **header,
                    }
                )
        return rows

    def base_rows(form: str) -> list[dict[str, Any]] | None:
        tables: dict[str, dict[str, str]] = {
            "BD_AccountBook": BOOKS,
            "BD_VOUCHERGROUP": WORDS,
            "BD_Currency": CURRENCIES,
            "BD_Account": books.accounts,
        }
        if form in tables:
            return [{"FNumber": k, "FName": v} for k, v in tables[form].items()]
        for slot, (_, slot_form) in SLOTS.items():
            if form == slot_form:
                return [
                    {"FNumber": k, "FForbidStatus": "A" if on else "B"}
                    for k, on in books.dimensions[slot].items()
                ]
        return None

    def bill_query(body: Any) -> Any:
        _, data = _form_call(body)
        if not isinstance(data, dict):
            return [[refuse([field_error("data", "data 须为对象")], MsgCode.BAD_PARAMETER)]]
        form = str(data.get("FormId") or "")
        rows = voucher_rows() if form == VOUCHER_FORM else base_rows(form)
        if rows is None:
            return [
                [refuse([field_error("FormId", f"业务对象“{form}”不存在")], MsgCode.FORM_MISSING)]
            ]
        keys = [k.strip() for k in str(data.get("FieldKeys") or "").split(",") if k.strip()]
        known = (
            set(VOUCHER_FIELDS) if form == VOUCHER_FORM else {"FNumber", "FName", "FForbidStatus"}
        )
        unknown = [k for k in keys if k not in known and not k.startswith("F_")]
        if not keys or unknown:
            message = f"字段“{unknown[0]}”不存在" if unknown else "FieldKeys 不能为空"
            return [[refuse([field_error("FieldKeys", message)], MsgCode.NOT_FOUND_FIELD_OR_VALUE)]]
        matcher = _matcher(str(data.get("FilterString") or ""))
        if isinstance(matcher, str):
            message = f"过滤条件“{matcher}”无法解析"
            return [[refuse([field_error("FilterString", message)], MsgCode.BAD_PARAMETER)]]
        selected = [[row.get(k) for k in keys] for row in rows if matcher(row)]
        start = int(data.get("StartRow") or 0)
        limit = int(data.get("Limit") or 0) or int(data.get("TopRowCount") or 0)
        return selected[start : start + limit] if limit else selected[start:]

    def voucher_view(row: sqlite3.Row) -> dict[str, Any]:
        entries = conn.execute(
            "SELECT * FROM entries WHERE voucher_id = ? ORDER BY seq", (row["id"],)
        ).fetchall()
        header = orjson.loads(row["header"])
        explanations = [e["explanation"] for e in entries]
        references = sorted(
            {r for r in map(reference_in, explanations) if r} | set(header.values())
        )
        return {
            "Id": row["id"],
            "BillNo": row["bill_no"],
            "DocumentStatus": row["status"],
            "Date": row["voucher_date"],
            "Year": row["year"],
            "Period": row["period"],
            "VoucherGroupNo": row["group_no"],
            "Saves": row["saves"],
            "Header": header,
            "References": references,
            "Entity": [
                {
                    "Seq": e["seq"],
                    "Explanation": e["explanation"],
                    "Account": e["account"],
                    "Debit": e["debit"],
                    "Credit": e["credit"],
                    "Detail": orjson.loads(e["detail"]),
                }
                for e in entries
            ],
        }

    # -- steering --------------------------------------------------------------------------------
    add_sim_routes(app, faults)

    @app.get("/_sim/vouchers")
    async def all_vouchers() -> Response:
        rows = conn.execute("SELECT * FROM vouchers ORDER BY id").fetchall()
        return json_response([voucher_view(row) for row in rows])

    @app.get("/_sim/overwrites")
    async def all_overwrites() -> Response:
        rows = conn.execute("SELECT * FROM overwrites ORDER BY id").fetchall()
        return json_response(
            [
                {
                    "voucher_id": r["voucher_id"],
                    "applied": bool(r["applied"]),
                    "model": orjson.loads(r["model"]),
                    "at": r["at"],
                }
                for r in rows
            ]
        )

    @app.delete("/_sim/sessions")
    async def end_sessions() -> Response:
        """End every session now, as K/3 Cloud does when it times them out."""
        ended = len(sessions)
        sessions.clear()
        return json_response({"ended": ended})

    @app.get("/_sim/stats")
    async def stats() -> Response:
        by_status = dict(
            conn.execute("SELECT status, COUNT(*) FROM vouchers GROUP BY status").fetchall()
        )
        (overwrites,) = conn.execute("SELECT COUNT(*) FROM overwrites").fetchone()
        return json_response(
            {
                "vouchers": sum(by_status.values()),
                "by_status": by_status,
                "overwrites": overwrites,
                "requests": faults.counts["requests"],
                "sessions": len(sessions),
                **counts,
                "faults": faults.snapshot(),
            }
        )

    return app


def run_kingdee_simulator(host: str, port: int, data_dir: Path, session_seconds: float) -> None:
    """Serve the K/3 Cloud simulator until interrupted."""
    serve(create_kingdee_app(data_dir, session_seconds=session_seconds), host, port)


def sim_kingdee(
    port: Annotated[int, typer.Option(min=1, max=65_535, help="Listen port")] = 8703,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    show_credentials: Annotated[
        bool,
        typer.Option(
            "--show-credentials",
            help="Print the account set's credentials as JSON (Kingdee console names) and exit",
        ),
    ] = False,
    session_seconds: Annotated[
        float, typer.Option(min=1, max=86_400, help="Seconds a session lives without use")
    ] = 1200.0,
    config: Annotated[Path | None, typer.Option("--config", help="finoa.yaml to read")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where embedded data lives")
    ] = None,
) -> None:
    """Run the Kingdee K/3 Cloud simulator (sessions, signatures, base data, no idempotency)."""
    from finoa.cli import _settings, console
    from finoa.cli_errors import CliError, ExitCode

    directory = _settings(config, data_dir).data_dir / "sim-kingdee"
    try:
        shown = credentials_with_url(directory, host, port)
    except CredentialsError as exc:
        fix = f"delete {directory / 'credentials.json'}: the simulator makes new credentials"
        raise CliError(ExitCode.CONFIG, str(exc), fix) from None
    if show_credentials:
        typer.echo(json.dumps(shown, ensure_ascii=False))
        return
    console.print(f"K/3 Cloud simulator on http://{host}:{port}{PREFIX}")
    run_kingdee_simulator(host, port, directory, session_seconds)
