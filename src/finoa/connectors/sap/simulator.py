"""SAP simulator: an HTTP gateway in front of an SAP FI ledger, over SQLite.

It enforces what SAP enforces: basic auth and the gateway's CSRF token (fetched with
`X-CSRF-Token: Fetch`, bound to the session cookie, refused with 403 when missing or stale);
base data (company code, G/L accounts, vendors, cost centers, open posting periods); the LUW
(a document posted is written only by `BAPI_TRANSACTION_COMMIT` in the same session, rolled
back by `BAPI_TRANSACTION_ROLLBACK` or when the session ends); no idempotency at all (the
same REF_DOC_NO posted twice is two documents); the BAPIs' RETURN tables (BAPIRET2). Faults
are injected like every simulator's (`/_sim/faults`). The ledger is `/_sim/documents`.

Message numbers it answers: RW 605 posted (S), RW 614 check without errors (S), RW 609 error
in document (E, first of a failed call's rows), RW 004 object type or key initial, RW 014 line
item entered twice, RW 022 balance in transaction currency, RW 602 commit with nothing to
write (W), F5 165 unknown company code, F5 201 posting period not open, F5 702 unknown
account or vendor, F5 808 a required field empty or malformed, KI 235 cost center missing on
an expense account, KI 248 unknown cost center, F5 176 a document already reversed, RW 011
no such document to reverse.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from finoa.connectors.generic_erp.simulator import load_chart
from finoa.connectors.sap.mapping import amount
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

SESSION_COOKIE = "SAP_SESSIONID"
SCHEMA = """
CREATE TABLE IF NOT EXISTS bkpf (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    BUKRS TEXT NOT NULL, BELNR TEXT NOT NULL, GJAHR TEXT NOT NULL,
    BLART TEXT NOT NULL, BLDAT TEXT NOT NULL, BUDAT TEXT NOT NULL, MONAT TEXT NOT NULL,
    XBLNR TEXT NOT NULL, BKTXT TEXT NOT NULL, USNAM TEXT NOT NULL,
    AWTYP TEXT NOT NULL, AWKEY TEXT NOT NULL, AWSYS TEXT NOT NULL,
    STBLG TEXT NOT NULL DEFAULT '', STJAH TEXT NOT NULL DEFAULT '',
    STGRD TEXT NOT NULL DEFAULT '', XREVERSAL TEXT NOT NULL DEFAULT '',
    items TEXT NOT NULL, created_at TEXT NOT NULL,
    UNIQUE (BUKRS, BELNR, GJAHR)
);
CREATE INDEX IF NOT EXISTS bkpf_xblnr ON bkpf (BUKRS, XBLNR);
CREATE TABLE IF NOT EXISTS number_ranges (
    BUKRS TEXT NOT NULL, GJAHR TEXT NOT NULL, last INTEGER NOT NULL,
    PRIMARY KEY (BUKRS, GJAHR)
);
CREATE TABLE IF NOT EXISTS closed_periods (
    BUKRS TEXT NOT NULL, GJAHR TEXT NOT NULL, MONAT TEXT NOT NULL,
    PRIMARY KEY (BUKRS, GJAHR, MONAT)
);
"""
BKPF_COLUMNS = ("BUKRS", "BELNR", "GJAHR", "BLART", "BLDAT", "BUDAT", "MONAT", "XBLNR",
                "BKTXT", "USNAM", "AWTYP", "AWKEY", "AWSYS", "STBLG", "STJAH", "STGRD",
                "XREVERSAL")  # fmt: skip
OPTION_RE = re.compile(r"^\s*([A-Z0-9_]+)\s*=\s*'([^']*)'\s*$")
DATE_RE = re.compile(r"^\d{8}$")
AMOUNT_RE = re.compile(r"^-?\d{1,13}(\.\d{1,2})?$")
DOCUMENT_TYPES = frozenset({"SA", "KR", "KZ", "AB"})


@dataclass(frozen=True)
class SapCredentials:
    """What the gateway accepts and what it posts into."""

    username: str
    password: str
    company_code: str = "1000"
    currency: str = "CNY"
    logical_system: str = "FINOA"

    def console(self) -> dict[str, str]:
        return dict(self.__dict__)


def load_credentials(data_dir: Path) -> SapCredentials:
    """The simulator's credentials, made at first use and kept in `credentials.json`."""
    path = data_dir / "credentials.json"
    if path.exists():
        return SapCredentials(**json.loads(path.read_text()))
    data_dir.mkdir(parents=True, exist_ok=True)
    made = SapCredentials(username="FINOA_RFC", password=secrets.token_urlsafe(18))
    path.write_text(json.dumps(made.__dict__))
    path.chmod(0o600)
    return made


@dataclass(frozen=True)
class BaseData:
    """The master data SAP checks a document against."""

    company_codes: dict[str, str]  # BUKRS -> currency
    gl_accounts: dict[str, bool]  # SAKNR -> needs a cost center (an expense account)
    vendors: frozenset[str]
    cost_centers: frozenset[str]

    @classmethod
    def sample(cls, credentials: SapCredentials) -> BaseData:
        """finoa's chart (codes without dots) and the sample company's employees as vendors
        and a cost center per department (`CC03` for D03), in SAP's own codes."""
        text = resources.files("finoa.sample").joinpath("masterdata.yaml").read_text("utf-8")
        master = yaml.safe_load(text)
        return cls(
            company_codes={credentials.company_code: credentials.currency},
            gl_accounts={code.replace(".", ""): code.startswith("6") for code in load_chart()},
            vendors=frozenset(e["id"] for e in master["employees"] if e.get("active")),
            cost_centers=frozenset("CC" + u["id"][1:] for u in master["org_units"]),
        )


@dataclass
class Session:
    token: str
    user: str
    last_seen: float
    pending: list[dict[str, Any]] = field(default_factory=list)


class PeriodSpec(BaseModel):
    """`POST /_sim/periods`: open or close a posting period of a company code."""

    model_config = ConfigDict(extra="forbid")

    company_code: str = Field(min_length=1, max_length=4)
    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    open: bool


def message(kind: str, ident: str, number: str, text: str, **where: Any) -> dict[str, Any]:
    """One BAPIRET2 row."""
    return {
        "TYPE": kind,
        "ID": ident,
        "NUMBER": number,
        "MESSAGE": text,
        "PARAMETER": where.get("parameter", ""),
        "ROW": where.get("row", 0),
        "FIELD": where.get("field", ""),
    }


def _fen(value: Any) -> int | None:
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    text = str(value)
    if not AMOUNT_RE.match(text):
        return None
    negative = text.startswith("-")
    whole, _, cents = text.lstrip("-").partition(".")
    fen = int(whole) * 100 + int((cents + "00")[:2])
    return -fen if negative else fen


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or not DATE_RE.match(value):
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


class Ledger:
    """The FI ledger, its base data and the gateway sessions."""

    def __init__(
        self, conn: sqlite3.Connection, base: BaseData, credentials: SapCredentials,
        session_seconds: float,
    ) -> None:  # fmt: skip
        self.conn = conn
        self.base = base
        self.credentials = credentials
        self.session_seconds = session_seconds
        self.sessions: dict[str, Session] = {}
        self.counts = {"rolled_back": 0, "refused": 0, "commits": 0, "csrf_refused": 0}

    # -- sessions -----------------------------------------------------------------------------

    def sweep(self) -> None:
        """End idle sessions; their uncommitted documents are rolled back."""
        now = time.monotonic()
        for key, session in list(self.sessions.items()):
            if now - session.last_seen > self.session_seconds:
                self.counts["rolled_back"] += len(session.pending)
                del self.sessions[key]

    def open_session(self, user: str) -> tuple[str, Session]:
        self.sweep()
        session = Session(secrets.token_urlsafe(16), user, time.monotonic())
        cookie = secrets.token_hex(16)
        self.sessions[cookie] = session
        return cookie, session

    def closed(self, company_code: str, year: str, month: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM closed_periods WHERE BUKRS = ? AND GJAHR = ? AND MONAT = ?",
            (company_code, year, month),
        ).fetchone()
        return row is not None

    # -- checks -------------------------------------------------------------------------------

    def _period_errors(
        self, company_code: str, posting: date | None, parameter: str, row: int = 0
    ) -> list[dict[str, Any]]:
        if posting is None:
            return [message("E", "F5", "808", "Field PSTNG_DATE: enter a date as YYYYMMDD",
                            parameter=parameter, row=row, field="PSTNG_DATE")]  # fmt: skip
        month = f"{posting.month:03d}"
        if self.closed(company_code, str(posting.year), month):
            return [message("E", "F5", "201", f"Posting period {month} {posting.year} is not "
                            f"open in company code {company_code}", parameter=parameter,
                            row=row, field="PSTNG_DATE")]  # fmt: skip
        return []

    def check(self, body: Any) -> list[dict[str, Any]]:
        """What SAP refuses in a document (BAPIRET2 rows of type E); empty when it posts."""
        if not isinstance(body, dict):
            return [message("E", "RW", "001", "No unique header information transferred")]
        header = body.get("DOCUMENTHEADER")
        if not isinstance(header, dict):
            return [message("E", "RW", "001", "No unique header information transferred",
                            parameter="DOCUMENTHEADER")]  # fmt: skip
        errors: list[dict[str, Any]] = []

        def need(name: str, text: str) -> None:
            errors.append(message("E", "F5", "808", f"Field {name}: {text}",
                                  parameter="DOCUMENTHEADER", field=name))  # fmt: skip

        if not header.get("OBJ_TYPE") or not header.get("OBJ_KEY") or not header.get("OBJ_SYS"):
            errors.append(message("E", "RW", "004", "Object type or reference number is "
                                  "initial (OBJ_TYPE/OBJ_KEY/OBJ_SYS)",
                                  parameter="DOCUMENTHEADER", field="OBJ_KEY"))  # fmt: skip
        if header.get("BUS_ACT") != "RFBU":
            need("BUS_ACT", "business transaction must be RFBU")
        if not header.get("USERNAME"):
            need("USERNAME", "enter the user name")
        company = header.get("COMP_CODE")
        currency = self.base.company_codes.get(str(company))
        if currency is None:
            errors.append(message("E", "F5", "165", f"Company code {company} does not exist",
                                  parameter="DOCUMENTHEADER", field="COMP_CODE"))  # fmt: skip
            company = ""
        if header.get("DOC_TYPE") not in DOCUMENT_TYPES:
            need("DOC_TYPE", f"document type {header.get('DOC_TYPE')!r} is not defined")
        if _date(header.get("DOC_DATE")) is None:
            need("DOC_DATE", "enter a date as YYYYMMDD")
        reference = header.get("REF_DOC_NO", "")
        if not isinstance(reference, str) or len(reference) > 16:
            need("REF_DOC_NO", "at most 16 characters")
        posting = _date(header.get("PSTNG_DATE"))
        if company:
            errors += self._period_errors(str(company), posting, "DOCUMENTHEADER")
        if posting is not None:
            if header.get("FISC_YEAR") not in (None, "", str(posting.year)):
                need("FISC_YEAR", f"fiscal year {header['FISC_YEAR']} does not match PSTNG_DATE")
            if header.get("FIS_PERIOD") not in (None, "", f"{posting.month:03d}"):
                need("FIS_PERIOD", f"period {header['FIS_PERIOD']} does not match PSTNG_DATE")
        errors += self._item_errors(body, str(company or ""), currency)
        return errors

    def _item_errors(
        self, body: dict[str, Any], company: str, currency: str | None
    ) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        items: dict[str, tuple[str, int]] = {}
        for parameter in ("ACCOUNTGL", "ACCOUNTPAYABLE"):
            rows = body.get(parameter) or []
            if not isinstance(rows, list):
                errors.append(message("E", "RW", "002", "No item information transferred",
                                      parameter=parameter))  # fmt: skip
                continue
            for index, row in enumerate(rows):
                where = {"parameter": parameter, "row": index}
                if not isinstance(row, dict):
                    errors.append(message("E", "RW", "002", "Item is not a structure", **where))
                    continue
                item = str(row.get("ITEMNO_ACC", ""))
                if not item or item in items:
                    errors.append(message("E", "RW", "014", f"FI/CO interface: Line item "
                                          f"{item} entered several times", field="ITEMNO_ACC",
                                          **where))  # fmt: skip
                    continue
                items[item] = (parameter, index)
                if row.get("COMP_CODE") not in (None, "", company):
                    errors.append(message("E", "F5", "808", "Field COMP_CODE: items must be "
                                          "in the header's company code", field="COMP_CODE",
                                          **where))  # fmt: skip
                if parameter == "ACCOUNTGL":
                    errors += self._gl_errors(row, company, where)
                elif row.get("VENDOR_NO") not in self.base.vendors:
                    errors.append(message("E", "F5", "702", f"Account {row.get('VENDOR_NO')} "
                                          f"does not exist in company code {company}",
                                          field="VENDOR_NO", **where))  # fmt: skip
        if not items:
            errors.append(message("E", "RW", "002", "No item information transferred into "
                                  "Accounting", parameter="ACCOUNTGL"))  # fmt: skip
        errors += self._amount_errors(body, items, currency)
        return errors

    def _gl_errors(self, row: dict[str, Any], company: str, where: dict[str, Any]) -> list[Any]:
        account = row.get("GL_ACCOUNT")
        if account not in self.base.gl_accounts:
            return [message("E", "F5", "702", f"Account {account} does not exist in company "
                            f"code {company}", field="GL_ACCOUNT", **where)]  # fmt: skip
        center = row.get("COSTCENTER")
        if self.base.gl_accounts[str(account)] and not center:
            return [message("E", "KI", "235", f"Account {account} {company} requires an "
                            "assignment to a CO object", field="COSTCENTER", **where)]  # fmt: skip
        if center and center not in self.base.cost_centers:
            return [message("E", "KI", "248", f"Cost center {center} does not exist",
                            field="COSTCENTER", **where)]  # fmt: skip
        return []

    def _amount_errors(
        self, body: dict[str, Any], items: dict[str, tuple[str, int]], currency: str | None
    ) -> list[dict[str, Any]]:
        amounts = body.get("CURRENCYAMOUNT") or []
        if not isinstance(amounts, list):
            return [message("E", "RW", "003", "No currency information transferred",
                            parameter="CURRENCYAMOUNT")]  # fmt: skip
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        total = 0
        for index, row in enumerate(amounts):
            where = {"parameter": "CURRENCYAMOUNT", "row": index}
            item = str(row.get("ITEMNO_ACC", "")) if isinstance(row, dict) else ""
            if item not in items or item in seen:
                errors.append(message("E", "RW", "018", f"FI/CO interface: currency item "
                                      f"{item} without its line item or entered several times",
                                      field="ITEMNO_ACC", **where))  # fmt: skip
                continue
            seen.add(item)
            fen = _fen(row.get("AMT_DOCCUR"))
            if fen is None:
                errors.append(message("E", "F5", "808", "Field AMT_DOCCUR: a signed decimal "
                                      "amount with at most 2 places", field="AMT_DOCCUR",
                                      **where))  # fmt: skip
                continue
            if currency is not None and row.get("CURRENCY") != currency:
                errors.append(message("E", "F5", "808", f"Field CURRENCY: {row.get('CURRENCY')}"
                                      f" is not the company code's currency {currency}",
                                      field="CURRENCY", **where))  # fmt: skip
            total += fen
        for item in sorted(set(items) - seen):
            errors.append(message("E", "RW", "021", f"FI/CO line item {item} without "
                                  "transaction currency information",
                                  parameter="CURRENCYAMOUNT"))  # fmt: skip
        if not errors and total != 0:
            errors.append(message("E", "RW", "022", f"FI/CO interface: Balance in transaction "
                                  f"currency {total / 100:.2f}", parameter="CURRENCYAMOUNT",
                                  field="AMT_DOCCUR"))  # fmt: skip
        return errors

    # -- documents ----------------------------------------------------------------------------

    def next_number(self, company: str, year: str) -> str:
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO number_ranges (BUKRS, GJAHR, last) VALUES (?, ?, 100000000)"
                " ON CONFLICT (BUKRS, GJAHR) DO NOTHING",
                (company, year),
            )
            self.conn.execute(
                "UPDATE number_ranges SET last = last + 1 WHERE BUKRS = ? AND GJAHR = ?",
                (company, year),
            )
            (last,) = self.conn.execute(
                "SELECT last FROM number_ranges WHERE BUKRS = ? AND GJAHR = ?", (company, year)
            ).fetchone()
        return f"{last:010d}"

    def stage(self, header: dict[str, Any], items: Any, user: str, **extra: str) -> dict[str, Any]:
        """A document numbered and held in the LUW (numbers of rolled-back ones are gaps)."""
        posting = _date(header["PSTNG_DATE"])
        assert posting is not None
        company, year = str(header["COMP_CODE"]), str(posting.year)
        number = self.next_number(company, year)
        return {
            "BUKRS": company, "BELNR": number, "GJAHR": year,
            "BLART": header.get("DOC_TYPE", "SA"), "BLDAT": header.get("DOC_DATE") or
            header["PSTNG_DATE"], "BUDAT": header["PSTNG_DATE"], "MONAT": f"{posting.month:02d}",
            "XBLNR": header.get("REF_DOC_NO", ""), "BKTXT": header.get("HEADER_TXT", ""),
            "USNAM": user, "AWTYP": header["OBJ_TYPE"], "AWKEY": f"{number}{company:<4}{year}",
            "AWSYS": header["OBJ_SYS"], "STBLG": "", "STJAH": "", "STGRD": "",
            "XREVERSAL": "", "items": orjson.dumps(items).decode(), **extra,
        }  # fmt: skip

    def commit(self, pending: list[dict[str, Any]]) -> None:
        with transaction(self.conn):
            for doc in pending:
                reverses = doc.pop("_reverses", None)
                columns = [*BKPF_COLUMNS, "items", "created_at"]
                values = [doc[c] for c in BKPF_COLUMNS] + [doc["items"], now_iso()]
                self.conn.execute(
                    f"INSERT INTO bkpf ({', '.join(columns)}) VALUES"
                    f" ({', '.join('?' * len(columns))})",
                    values,
                )
                if reverses is not None:
                    self.conn.execute(
                        "UPDATE bkpf SET STBLG = ?, STJAH = ?, STGRD = ?, XREVERSAL = '1'"
                        " WHERE id = ?",
                        (doc["BELNR"], doc["GJAHR"], doc["STGRD"], reverses),
                    )
        self.counts["commits"] += 1

    def find(self, **where: str) -> list[sqlite3.Row]:
        if not where or not set(where) <= set(BKPF_COLUMNS):
            raise ValueError("unknown BKPF field")
        clause = " AND ".join(f"{name} = ?" for name in where)
        return self.conn.execute(
            f"SELECT * FROM bkpf WHERE {clause} ORDER BY id", tuple(where.values())
        ).fetchall()

    def reverse(self, body: Any, session: Session) -> dict[str, Any]:
        """BAPI_ACC_DOCUMENT_REV_POST: stage the reversal of a committed document."""
        spec = body.get("REVERSAL") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            return fail(message("E", "RW", "001", "No reversal information transferred",
                                parameter="REVERSAL"))  # fmt: skip
        company = str(spec.get("COMP_CODE", ""))
        originals = self.find(BUKRS=company, AWKEY=str(spec.get("OBJ_KEY_R", "")))
        where = {"parameter": "REVERSAL"}
        if not spec.get("OBJ_TYPE") or not spec.get("OBJ_SYS") or not spec.get("OBJ_KEY"):
            return fail(message("E", "RW", "004", "Object type or reference number is "
                                "initial", field="OBJ_KEY", **where))  # fmt: skip
        if not originals:
            text = f"No document found in Accounting for {spec.get('OBJ_KEY_R')}"
            return fail(message("E", "RW", "011", text, field="OBJ_KEY_R", **where))
        original = originals[0]
        if original["STBLG"] or any(d.get("_reverses") == original["id"] for d in session.pending):
            return fail(message("E", "F5", "176", f"Document {original['BELNR']} "
                                f"{original['GJAHR']} has already been reversed",
                                field="OBJ_KEY_R", **where))  # fmt: skip
        if not spec.get("REASON_REV"):
            return fail(message("E", "F5", "808", "Field REASON_REV: enter a reason for "
                                "reversal", field="REASON_REV", **where))  # fmt: skip
        posting = _date(spec.get("PSTNG_DATE"))
        errors = self._period_errors(company, posting, "REVERSAL")
        if errors:
            return fail(*errors)
        assert posting is not None
        items = [
            {**row, "AMT_DOCCUR": amount(-(_fen(row["AMT_DOCCUR"]) or 0))}
            for row in orjson.loads(original["items"])["CURRENCYAMOUNT"]
        ]
        header = {
            "COMP_CODE": company, "PSTNG_DATE": spec["PSTNG_DATE"], "DOC_TYPE": original["BLART"],
            "DOC_DATE": spec["PSTNG_DATE"], "REF_DOC_NO": original["XBLNR"],
            "HEADER_TXT": original["BKTXT"], "OBJ_TYPE": spec["OBJ_TYPE"],
            "OBJ_SYS": spec["OBJ_SYS"],
        }  # fmt: skip
        doc = self.stage(
            header,
            {**orjson.loads(original["items"]), "CURRENCYAMOUNT": items},
            session.user,
            XREVERSAL="2",
            STBLG=original["BELNR"],
            STJAH=original["GJAHR"],
            STGRD=str(spec["REASON_REV"]),
        )
        doc["_reverses"] = original["id"]
        session.pending.append(doc)
        return posted(doc)

    def read_table(self, body: Any) -> dict[str, Any]:
        """RFC_READ_TABLE on BKPF: OPTIONS `FIELD = 'value'` joined by AND."""
        if not isinstance(body, dict) or body.get("QUERY_TABLE") != "BKPF":
            raise Problem(400, "TABLE_NOT_AVAILABLE", "this gateway reads only table BKPF")
        text = "".join(str(o.get("TEXT", "")) for o in body.get("OPTIONS") or [])
        where: dict[str, str] = {}
        for part in re.split(r"\s+AND\s+", text.strip()) if text.strip() else []:
            match = OPTION_RE.match(part)
            if match is None or match.group(1) not in BKPF_COLUMNS:
                raise Problem(400, "OPTION_NOT_VALID", f"cannot read the condition {part!r}")
            where[match.group(1)] = match.group(2)
        if not where:
            raise Problem(400, "OPTION_NOT_VALID", "give OPTIONS: reading all of BKPF is refused")
        names = [str(f.get("FIELDNAME")) for f in body.get("FIELDS") or []] or list(BKPF_COLUMNS)
        if not set(names) <= set(BKPF_COLUMNS):
            raise Problem(400, "FIELD_NOT_VALID", f"unknown BKPF field in {names}")
        delimiter = str(body.get("DELIMITER") or "|")
        rows = self.find(**where)
        return {
            "FIELDS": [{"FIELDNAME": n} for n in names],
            "DATA": [{"WA": delimiter.join(str(row[n]) for n in names)} for row in rows],
        }


def fail(*errors: dict[str, Any]) -> dict[str, Any]:
    head = message("E", "RW", "609", "Error in document: see the following messages")
    return {"RETURN": [head, *errors], "OBJ_TYPE": "", "OBJ_KEY": "", "OBJ_SYS": ""}


def posted(doc: dict[str, Any]) -> dict[str, Any]:
    key = doc["AWKEY"]
    text = f"Document posted successfully: {doc['AWTYP']} {key} {doc['AWSYS']}"
    return {
        "RETURN": [message("S", "RW", "605", text)],
        "OBJ_TYPE": doc["AWTYP"],
        "OBJ_KEY": key,
        "OBJ_SYS": doc["AWSYS"],
    }


def _view(row: sqlite3.Row) -> dict[str, Any]:
    return {**{c: row[c] for c in BKPF_COLUMNS}, "items": orjson.loads(row["items"]),
            "created_at": row["created_at"]}  # fmt: skip


def create_sap_app(data_dir: Path, session_seconds: float = 30.0) -> FastAPI:
    """The gateway and its ledger, stored under `data_dir`."""
    credentials = load_credentials(data_dir)
    faults = FaultState()
    conn = open_database(data_dir / "sap.sqlite3", SCHEMA)
    ledger = Ledger(conn, BaseData.sample(credentials), credentials, session_seconds)
    expected = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        conn.close()

    app = FastAPI(title="finoa SAP gateway simulator", lifespan=lifespan)
    install_problems(app)
    app.add_middleware(FaultMiddleware, state=faults)

    def authenticate(request: Request) -> None:
        got = request.headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), f"Basic {expected}".encode()):
            problem = Problem(401, "Unauthorized", "logon failed: wrong RFC user or password")
            problem.headers["www-authenticate"] = 'Basic realm="SAP"'
            raise problem

    @app.get("/api/")
    async def fetch_token(request: Request) -> Response:
        authenticate(request)
        if request.headers.get("x-csrf-token", "").lower() != "fetch":
            return json_response({"gateway": "finoa SAP simulator"})
        cookie, session = ledger.open_session(credentials.username)
        response = json_response({"gateway": "finoa SAP simulator"},
                                 headers={"x-csrf-token": session.token})  # fmt: skip
        response.set_cookie(SESSION_COOKIE, cookie, httponly=True)
        return response

    def session_of(request: Request) -> Session:
        ledger.sweep()
        session = ledger.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        token = request.headers.get("x-csrf-token", "")
        if session is None or not hmac.compare_digest(session.token.encode(), token.encode()):
            ledger.counts["csrf_refused"] += 1
            problem = Problem(403, "Forbidden", "CSRF token validation failed")
            problem.headers["x-csrf-token"] = "Required"
            raise problem
        session.last_seen = time.monotonic()
        return session

    @app.post("/api/rfc/{function}")
    async def call(function: str, request: Request) -> Response:
        authenticate(request)
        session = session_of(request)
        body = await read_json(request)
        if function == "BAPI_ACC_DOCUMENT_CHECK":
            errors = ledger.check(body)
            if errors:
                ledger.counts["refused"] += 1
                return json_response({"RETURN": fail(*errors)["RETURN"]})
            ok = message("S", "RW", "614", "Document check - no errors")
            return json_response({"RETURN": [ok]})
        if function == "BAPI_ACC_DOCUMENT_POST":
            errors = ledger.check(body)
            if errors:
                ledger.counts["refused"] += 1
                return json_response(fail(*errors))
            items = {k: body.get(k) or [] for k in ("ACCOUNTGL", "ACCOUNTPAYABLE",
                                                      "CURRENCYAMOUNT")}  # fmt: skip
            doc = ledger.stage(body["DOCUMENTHEADER"], items, session.user)
            session.pending.append(doc)
            return json_response(posted(doc))
        if function == "BAPI_ACC_DOCUMENT_REV_POST":
            return json_response(ledger.reverse(body, session))
        if function == "BAPI_TRANSACTION_COMMIT":
            if not session.pending:
                text = "Nothing to commit: no document is open in this LUW"
                return json_response({"RETURN": message("W", "RW", "602", text)})
            pending, session.pending = session.pending, []
            ledger.commit(pending)
            return json_response({"RETURN": message("", "", "", "")})
        if function == "BAPI_TRANSACTION_ROLLBACK":
            ledger.counts["rolled_back"] += len(session.pending)
            session.pending = []
            return json_response({"RETURN": message("", "", "", "")})
        if function == "RFC_READ_TABLE":
            return json_response(ledger.read_table(body))
        raise Problem(404, "FU_NOT_FOUND", f"function module {function} is not released here")

    add_sim_routes(app, faults)

    @app.post("/_sim/periods")
    async def set_period(spec: PeriodSpec) -> Response:
        year, month = spec.period.split("-")
        with transaction(conn):
            if spec.open:
                conn.execute("DELETE FROM closed_periods WHERE BUKRS = ? AND GJAHR = ?"
                             " AND MONAT = ?", (spec.company_code, year, f"0{month}"))  # fmt: skip
            else:
                conn.execute("INSERT OR IGNORE INTO closed_periods VALUES (?, ?, ?)",
                             (spec.company_code, year, f"0{month}"))  # fmt: skip
        return json_response(spec.model_dump())

    @app.get("/_sim/stats")
    async def stats() -> Response:
        ledger.sweep()
        (documents,) = conn.execute("SELECT COUNT(*) FROM bkpf").fetchone()
        (reversals,) = conn.execute("SELECT COUNT(*) FROM bkpf WHERE XREVERSAL = '2'").fetchone()
        pending = sum(len(s.pending) for s in ledger.sessions.values())
        return json_response({"documents": documents, "reversals": reversals,
                              "pending": pending, **ledger.counts,
                              "requests": faults.counts["requests"],
                              "faults": faults.snapshot()})  # fmt: skip

    @app.get("/_sim/documents")
    async def documents() -> Response:
        rows = conn.execute("SELECT * FROM bkpf ORDER BY id").fetchall()
        return json_response([_view(row) for row in rows])

    return app


def run_sap_simulator(
    host: str, port: int, data_dir: Path | str, session_seconds: float = 30.0
) -> None:
    """Serve the SAP gateway simulator until interrupted."""
    serve(create_sap_app(Path(data_dir), session_seconds), host, port)
