"""A WeCom simulator: the server API and approval callbacks as WeCom speaks them.

What it enforces, as WeCom does:

- **The answer shape.** Every call answers HTTP 200 with `{"errcode", "errmsg", …}`;
  errcode 0 is success.
- **Tokens.** `GET /cgi-bin/gettoken?corpid=&corpsecret=` gives a token valid for
  `token_ttl` seconds (7200 as WeCom); a wrong corpid is 40013, a wrong secret 40001, a
  missing token 41001, an unknown one 40014 and an expired one 42001.
- **Base data.** Departments and members come from master data (the sample company by
  default): userid = employee id, the departments numbered as the default code table numbers
  them. An unknown or departed userid is refused with 60111, an unknown department 60123.
- **Templates.** `oa/applyevent` checks the template (301025 when unknown), every control's
  id, type and value shape (301035 for a wrong one, 301036 for a required control left
  empty) and the approvers; there is no idempotency: sending twice makes two approvals.
- **Rate limits.** At most `qps` calls per second (errcode 45009).
- **Callbacks.** `sys_approval_change` is posted as encrypted XML (AES-256-CBC with the
  EncodingAESKey, the CorpID as receiveid, `msg_signature` in the query); a reply other than
  HTTP 200 within 5 seconds is retried three times. `POST /_sim/callback:verify` makes the URL
  check (a GET with `echostr`) as the admin console does when the URL is saved.

Simulated approvers decide what reaches them: an approval's approver (the applicant's
manager for the template's own flow, else the approver named) passes it, or rejects it at
`reject_rate`.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Unpack
from urllib.parse import quote

import httpx
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import Response
from lxml import etree

from finoa.connectors.simulation import json_response, serve, transaction
from finoa.connectors.vendor_sim import (
    DEFAULT_QPS,
    ConsoleCredentials,
    ErrcodeError,
    SimDirectory,
    SimOptions,
    VendorSimulator,
    json_body,
    vendor_app,
)
from finoa.connectors.wecom.crypto import WeComCrypto, new_encoding_aes_key, new_nonce

log = logging.getLogger(__name__)

RETRY_DELAYS = (5.0, 5.0, 5.0)  # WeCom retries three times when no good answer comes in 5 s
REPLY_TIMEOUT_SECONDS = 5.0
AGENT_ID = 3010040
EXPENSE_TEMPLATE_ID = "C4NyFinoaExpenseClaim3WLJF6naF5jhnXvwisuPmE"
TASK_TEMPLATE_ID = "C4NyFinoaApprovalTask9VWWyc2RZiNbWqRkp7mUvQ"
TASK_CREATOR = "E0004"  # the sample company's finance clerk submits the per-task approvals
APPROVE_SPEECH = "同意"
REJECT_SPEECH = "预算不足 / over budget"
# sp_status and StatuChangeEvent
IN_APPROVAL, PASSED, REJECTED, REVOKED = 1, 2, 3, 4
EVENT_SUBMIT, EVENT_AGREE, EVENT_REJECT, EVENT_REVOKE = 1, 2, 3, 6
TOKEN_REFUSALS = {
    "missing": (41001, "access_token missing"),
    "unknown": (40014, "invalid access_token"),
    "expired": (42001, "access_token expired"),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    sp_no TEXT PRIMARY KEY, template_id TEXT NOT NULL, creator TEXT NOT NULL,
    party INTEGER NOT NULL, apply_time INTEGER NOT NULL, status INTEGER NOT NULL,
    contents TEXT NOT NULL, approver TEXT NOT NULL, speech TEXT NOT NULL DEFAULT '',
    sp_time INTEGER NOT NULL DEFAULT 0, record_status INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS callbacks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, sp_no TEXT NOT NULL, event TEXT NOT NULL,
    change INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER, last_error TEXT, url TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    msgid TEXT PRIMARY KEY, touser TEXT NOT NULL, content TEXT NOT NULL,
    sent_at REAL NOT NULL, duplicate_until REAL NOT NULL
);
"""
MAX_CONTENT_BYTES = 2048  # a text message's content
MAX_DUPLICATE_CHECK = 14_400  # seconds: the longest duplicate-check window WeCom takes


def _lang(text: str) -> list[dict[str, str]]:
    return [{"text": text, "lang": "zh_CN"}]


def _control(kind: str, number: int, title: str, *, require: int = 0, **config: Any) -> Any:
    return {
        "property": {
            "control": kind,
            "id": f"{kind}-{number}",
            "title": _lang(title),
            "placeholder": _lang(""),
            "require": require,
            "un_print": 0,
        },
        "config": config,
    }


def _categories() -> list[str]:
    table = resources.files("finoa.mapping").joinpath("defaults/wecom/tables/categories.yaml")
    return list(yaml.safe_load(table.read_text("utf-8")))


def expense_template() -> dict[str, Any]:
    """The expense template's controls, as `oa/gettemplatedetail` answers them."""
    options = [{"key": f"option-{i + 1}", "value": _lang(t)} for i, t in enumerate(_categories())]
    rows = [
        _control(
            "Selector", 1009, "费用类别", require=1, selector={"type": "single", "options": options}
        ),
        _control("Money", 1010, "金额（元）", require=1),
        _control("Money", 1011, "可抵扣税额（元）"),
        _control("Date", 1012, "费用日期", require=1, date={"type": "day"}),
        _control("Textarea", 1013, "说明"),
    ]
    return {
        "template_names": _lang("费用报销"),
        "template_content": {
            "controls": [
                _control("Text", 1001, "报销事由", require=1),
                _control("Text", 1002, "finoa单号"),
                _control("Text", 1003, "币种"),
                _control("Money", 1004, "总金额（元）"),
                _control("Text", 1005, "成本中心"),
                _control("Text", 1006, "项目"),
                _control("Table", 1008, "费用明细", require=1, table={"children": rows}),
            ]
        },
    }


def task_template() -> dict[str, Any]:
    """The template of finoa's per-task approvals (hub-led)."""
    return {
        "template_names": _lang("finoa审批任务"),
        "template_content": {
            "controls": [
                _control("Text", 2001, "审批事项", require=1),
                _control("Text", 2002, "finoa单号", require=1),
                _control("Text", 2003, "finoa任务", require=1),
                _control("Money", 2004, "金额（元）"),
                _control("Text", 2005, "审批角色"),
            ]
        },
    }


class WeComError(ErrcodeError):
    """An error answered in WeCom's shape: HTTP 200 `{"errcode", "errmsg"}`."""


@dataclass(frozen=True)
class Credentials(ConsoleCredentials):
    """What the admin console shows, under the console's names."""

    CONSOLE_NAMES: ClassVar[dict[str, str]] = {
        "corpid": "corpid",
        "corpsecret": "corpsecret",
        "token": "token",
        "encoding_aes_key": "EncodingAESKey",
    }

    corpid: str
    corpsecret: str
    token: str
    encoding_aes_key: str

    def constants(self) -> dict[str, Any]:
        return {
            "agentid": AGENT_ID,
            "template_id": EXPENSE_TEMPLATE_ID,
            "task_template_id": TASK_TEMPLATE_ID,
        }

    @staticmethod
    def instance_config(
        console: dict[str, Any], api_base_url: str, *, task_creator_userid: str = TASK_CREATOR
    ) -> dict[str, Any]:
        """The `config:` of a `wecom` instance in finoa.yaml pointed at a simulator, from
        what `--show-credentials` (or `/_sim/credentials`) prints; its calls paced at the
        simulator's default quota."""
        return {
            "corp_id": console["corpid"],
            "corp_secret": console["corpsecret"],
            "token": console["token"],
            "aes_key": console["EncodingAESKey"],
            "agent_id": console["agentid"],
            "template_id": console["template_id"],
            "task_template_id": console["task_template_id"],
            "task_creator_userid": task_creator_userid,
            "api_base_url": api_base_url,
            "rate_limit_per_second": DEFAULT_QPS,
        }

    @classmethod
    def fresh(cls) -> Credentials:
        return cls(
            corpid="ww" + secrets.token_hex(8),
            corpsecret=secrets.token_urlsafe(32),
            token=new_nonce(16),
            encoding_aes_key=new_encoding_aes_key(),
        )


@dataclass(frozen=True)
class Member:
    userid: str
    name: str
    department: int
    manager: str | None
    active: bool


class Directory(SimDirectory[Member]):
    """WeCom's contacts: departments under the root (1), their leaders, and members."""

    vendor = "wecom"

    def department_entry(self, unit: dict[str, Any], key: Any, parent: Any) -> dict[str, Any]:
        return {
            "id": key,
            "name": unit["name"],
            "name_en": "",
            "department_leader": [unit["manager_id"]] if unit.get("manager_id") else [],
            "parentid": parent or (0 if key == 1 else 1),
            "order": 100000000 - key,
        }

    def user_entry(self, person: dict[str, Any], department: Any) -> Member:
        return Member(person["id"], person["name"], department, person.get("manager_id"),
                      bool(person.get("active", True)))  # fmt: skip

    def refusal(self, field: str, userid: Any, user: Member | None) -> Exception:
        why = "userid not found" if user is None else "user is inactive (已离职)"
        return WeComError(60111, f"{field}: {why}: {userid}")

    def department(self, value: Any) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise WeComError(60123, f"invalid department id: {value}") from None
        if number not in self.departments:
            raise WeComError(60123, f"invalid department id: {value}")
        return number

    def under(self, number: int) -> list[int]:
        """The department and every department below it."""
        found = [number]
        for dept in self.departments.values():
            if dept["parentid"] == number and dept["id"] != number:
                found.extend(self.under(dept["id"]))
        return found


def _ok(**body: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **body}


class WeComSimulator(VendorSimulator):
    """State and behaviour behind the WeCom simulator app."""

    credentials_type = Credentials
    directory_type = Directory
    database = "wecom.sqlite3"
    schema = SCHEMA
    retry_delays = RETRY_DELAYS
    counters = ("messages_deduplicated",)
    stat_queries = {"approvals": "SELECT status, COUNT(*) FROM approvals GROUP BY status"}
    credentials: Credentials
    directory: Directory

    def __init__(self, data_dir: Path, **options: Unpack[SimOptions]) -> None:
        super().__init__(data_dir, **options)
        self.crypto = WeComCrypto(
            self.credentials.token, self.credentials.encoding_aes_key, self.credentials.corpid
        )
        self.templates = {
            EXPENSE_TEMPLATE_ID: expense_template(),
            TASK_TEMPLATE_ID: task_template(),
        }
        self.reply_timeout = REPLY_TIMEOUT_SECONDS

    # -- tokens --------------------------------------------------------------------------

    def issue_token(self, corpid: str | None, corpsecret: str | None) -> dict[str, Any]:
        if corpid != self.credentials.corpid:
            raise WeComError(40013, "invalid corpid")
        if corpsecret != self.credentials.corpsecret:
            raise WeComError(40001, "invalid credential: corpsecret")
        token = secrets.token_urlsafe(48)
        self.store_token(token)
        return _ok(access_token=token, expires_in=self.token_ttl)

    def check_token(self, token: str | None) -> None:
        state = self.token_state(token)
        if state != "ok":
            raise WeComError(*TOKEN_REFUSALS[state])

    # -- approvals -----------------------------------------------------------------------

    def apply(self, body: Any) -> str:
        """`oa/applyevent`: check everything, store the approval, tell the callback URL."""
        if not isinstance(body, dict):
            raise WeComError(40058, "the body must be a JSON object")
        template = self.templates.get(str(body.get("template_id")))
        if template is None:
            raise WeComError(301025, f"template_id: template not found: {body.get('template_id')}")
        creator = self.directory.active_user(body.get("creator_userid"), "creator_userid")
        party = creator.department
        if body.get("choose_department") not in (None, ""):
            party = self.directory.department(body["choose_department"])
            if party != creator.department:
                raise WeComError(
                    301055, f"choose_department: {creator.userid} is not in department {party}"
                )
        controls = template["template_content"]["controls"]
        contents = (body.get("apply_data") or {}).get("contents")
        if not isinstance(contents, list):
            raise WeComError(301035, "apply_data.contents: a list of controls")
        self._check_contents(controls, contents, "apply_data.contents")
        if body.get("use_template_approver") == 1:
            approver = self.directory.approver_of(creator).userid
        else:
            approvers = body.get("approver")
            if not isinstance(approvers, list) or not approvers:
                raise WeComError(301031, "approver: required when use_template_approver is 0")
            ids = [u for node in approvers for u in (node.get("userid") or [])]
            if len(ids) != 1:
                raise WeComError(301031, "approver: this simulator takes exactly one approver")
            approver = self.directory.active_user(ids[0], "approver.userid").userid
        now = int(time.time())
        day = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")
        with transaction(self.conn):
            count = self.conn.execute(
                "SELECT COUNT(*) FROM approvals WHERE sp_no LIKE ?", (day + "%",)
            ).fetchone()[0]
            sp_no = f"{day}{count + 1:04d}"
            self.conn.execute(
                "INSERT INTO approvals (sp_no, template_id, creator, party, apply_time, status, "
                "contents, approver) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                (
                    sp_no,
                    body["template_id"],
                    creator.userid,
                    party,
                    now,
                    json.dumps(contents, ensure_ascii=False),
                    approver,
                ),
            )
        self.emit(sp_no, EVENT_SUBMIT)
        if self.auto_decide:
            self.later(self.decide_soon(
                lambda agree: self.decide(sp_no, "agree" if agree else "reject")))  # fmt: skip
        return sp_no

    def _check_contents(
        self, controls: list[dict[str, Any]], contents: list[Any], path: str
    ) -> None:
        by_id = {c["property"]["id"]: c for c in controls}
        seen: set[str] = set()
        for i, item in enumerate(contents):
            where = f"{path}[{i}]"
            if not isinstance(item, dict) or item.get("id") not in by_id:
                raise WeComError(301035, f"{where}.id: no such control in the template")
            control = by_id[item["id"]]
            if item.get("control") != control["property"]["control"]:
                raise WeComError(
                    301035, f"{where}.control: {item['id']} is a {control['property']['control']}"
                )
            self._check_value(control, item.get("value"), f"{where}.value")
            seen.add(item["id"])
        for control in controls:
            prop = control["property"]
            if prop["require"] and prop["id"] not in seen:
                raise WeComError(301036, f"{path}: {prop['title'][0]['text']} is required")

    def _check_value(self, control: dict[str, Any], value: Any, where: str) -> None:
        kind = control["property"]["control"]
        if not isinstance(value, dict):
            raise WeComError(301035, f"{where}: an object")
        required = bool(control["property"]["require"])
        if kind in ("Text", "Textarea"):
            text = value.get("text")
            if not isinstance(text, str) or (required and not text):
                raise WeComError(301035, f"{where}.text: a string")
        elif kind == "Money":
            money = value.get("new_money")
            try:
                exponent = Decimal(money).as_tuple().exponent if isinstance(money, str) else "n"
                ok = isinstance(exponent, int) and exponent >= -2
            except InvalidOperation:
                ok = False
            if not ok:
                raise WeComError(301035, f"{where}.new_money: an amount with at most 2 decimals")
        elif kind == "Date":
            date = value.get("date") or {}
            if not isinstance(date.get("s_timestamp"), str) or not date["s_timestamp"].isdigit():
                raise WeComError(301035, f"{where}.date.s_timestamp: seconds as a string")
        elif kind == "Selector":
            keys = {o["key"] for o in control["config"]["selector"]["options"]}
            chosen = (value.get("selector") or {}).get("options") or []
            if not chosen or any(o.get("key") not in keys for o in chosen):
                raise WeComError(301035, f"{where}.selector.options: unknown option key")
        elif kind == "Table":
            rows = value.get("children")
            if not isinstance(rows, list) or (required and not rows):
                raise WeComError(301035, f"{where}.children: a list of rows")
            for r, row in enumerate(rows):
                cells = row.get("list") if isinstance(row, dict) else None
                if not isinstance(cells, list):
                    raise WeComError(301035, f"{where}.children[{r}].list: a list of controls")
                self._check_contents(
                    control["config"]["table"]["children"], cells, f"{where}.children[{r}].list"
                )

    def _row(self, sp_no: Any) -> Any:
        row = self.conn.execute("SELECT * FROM approvals WHERE sp_no = ?", (sp_no,)).fetchone()
        if row is None:
            raise WeComError(301026, f"sp_no: approval not found: {sp_no}")
        return row

    def _detail_contents(self, template_id: str, contents: list[dict[str, Any]]) -> Any:
        """The stored contents with titles (and selector option texts) as the detail has them."""
        controls = self.templates[template_id]["template_content"]["controls"]

        def fill(items: list[dict[str, Any]], controls: list[dict[str, Any]]) -> Any:
            by_id = {c["property"]["id"]: c for c in controls}
            out = []
            for item in items:
                control = by_id[item["id"]]
                value = json.loads(json.dumps(item["value"]))
                if item["control"] == "Selector":
                    texts = {o["key"]: o["value"] for o in control["config"]["selector"]["options"]}
                    for option in value["selector"]["options"]:
                        option["value"] = texts[option["key"]]
                if item["control"] == "Table":
                    value["children"] = [
                        {"list": fill(row["list"], control["config"]["table"]["children"])}
                        for row in value["children"]
                    ]
                out.append(
                    {
                        "control": item["control"],
                        "id": item["id"],
                        "title": control["property"]["title"],
                        "value": value,
                    }
                )
            return out

        return fill(contents, controls)

    def detail(self, sp_no: Any) -> dict[str, Any]:
        """`oa/getapprovaldetail`'s `info`."""
        row = self._row(sp_no)
        template = self.templates[row["template_id"]]
        return {
            "sp_no": row["sp_no"],
            "sp_name": template["template_names"][0]["text"],
            "sp_status": row["status"],
            "template_id": row["template_id"],
            "apply_time": row["apply_time"],
            "applyer": {"userid": row["creator"], "partyid": str(row["party"])},
            "sp_record": [
                {
                    "sp_status": row["record_status"],
                    "approverattr": 1,
                    "details": [
                        {
                            "approver": {"userid": row["approver"]},
                            "speech": row["speech"],
                            "sp_status": row["record_status"],
                            "sptime": row["sp_time"],
                            "media_id": [],
                        }
                    ],
                }
            ],
            "notifyer": [],
            "apply_data": {
                "contents": self._detail_contents(row["template_id"], json.loads(row["contents"]))
            },
            "comments": [],
        }

    def list_sp_nos(self, body: Any) -> dict[str, Any]:
        """`oa/getapprovalinfo`: sp_no of approvals applied in [starttime, endtime]."""
        if not isinstance(body, dict):
            raise WeComError(40058, "the body must be a JSON object")
        try:
            start, end = int(body["starttime"]), int(body["endtime"])
        except (KeyError, TypeError, ValueError):
            raise WeComError(40058, "starttime, endtime: seconds since the epoch") from None
        if end < start or end - start > 31 * 86400:
            raise WeComError(301033, "endtime: the window must be at most 31 days")
        size = body.get("size", 100)
        if not isinstance(size, int) or not 1 <= size <= 100:
            raise WeComError(40058, "size: 1-100")
        cursor = body.get("new_cursor") or ""
        offset = int(cursor) if str(cursor).isdigit() else 0
        filters = {f.get("key"): f.get("value") for f in body.get("filters") or []}
        rows = self.conn.execute(
            "SELECT sp_no, template_id, creator, status FROM approvals WHERE apply_time >= ? "
            "AND apply_time <= ? ORDER BY apply_time, sp_no",
            (start, end),
        ).fetchall()
        found = [
            r["sp_no"]
            for r in rows
            if filters.get("template_id") in (None, r["template_id"])
            and filters.get("creator") in (None, r["creator"])
            and filters.get("sp_status") in (None, str(r["status"]))
        ]
        page = found[offset : offset + size]
        more = offset + size < len(found)
        return _ok(sp_no_list=page, new_next_cursor=str(offset + size) if more else "")

    def decide(self, sp_no: str, result: str, speech: str | None = None) -> dict[str, Any]:
        """The approver passes or rejects it, or the applicant revokes it."""
        row = self._row(sp_no)
        if row["status"] != IN_APPROVAL:
            raise WeComError(301027, f"sp_no: {sp_no} is not in approval")
        status, change = {
            "agree": (PASSED, EVENT_AGREE),
            "reject": (REJECTED, EVENT_REJECT),
            "revoke": (REVOKED, EVENT_REVOKE),
        }[result]
        if speech is None:
            speech = {"agree": APPROVE_SPEECH, "reject": REJECT_SPEECH, "revoke": ""}[result]
        record = {PASSED: 2, REJECTED: 3, REVOKED: 1}[status]
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE approvals SET status = ?, record_status = ?, speech = ?, sp_time = ? "
                "WHERE sp_no = ?",
                (status, record, speech, int(time.time()) if status != REVOKED else 0, sp_no),
            )
        self.emit(sp_no, change)
        return {"sp_no": sp_no, "sp_status": status}

    def event_xml(self, sp_no: str, change: int) -> str:
        """The plaintext of a `sys_approval_change` event, as WeCom writes it."""
        row = self._row(sp_no)
        template = self.templates[row["template_id"]]
        root = etree.Element("xml")

        def add(parent: etree._Element, name: str, text: Any, cdata: bool = True) -> Any:
            child = etree.SubElement(parent, name)
            child.text = etree.CDATA(str(text)) if cdata else str(text)
            return child

        add(root, "ToUserName", self.credentials.corpid)
        add(root, "FromUserName", "sys")
        add(root, "CreateTime", int(time.time()), cdata=False)
        add(root, "MsgType", "event")
        add(root, "Event", "sys_approval_change")
        add(root, "AgentID", AGENT_ID, cdata=False)
        info = etree.SubElement(root, "ApprovalInfo")
        add(info, "SpNo", row["sp_no"], cdata=False)
        add(info, "SpName", template["template_names"][0]["text"])
        add(info, "SpStatus", row["status"], cdata=False)
        add(info, "TemplateId", row["template_id"])
        add(info, "ApplyTime", row["apply_time"], cdata=False)
        applyer = etree.SubElement(info, "Applyer")
        add(applyer, "UserId", row["creator"])
        add(applyer, "Party", row["party"])
        record = etree.SubElement(info, "SpRecord")
        add(record, "SpStatus", row["record_status"], cdata=False)
        add(record, "ApproverAttr", 1, cdata=False)
        details = etree.SubElement(record, "Details")
        approver = etree.SubElement(details, "Approver")
        add(approver, "UserId", row["approver"])
        add(details, "Speech", row["speech"])
        add(details, "SpStatus", row["record_status"], cdata=False)
        add(details, "SpTime", row["sp_time"], cdata=False)
        add(info, "StatuChangeEvent", change, cdata=False)
        return etree.tostring(root, encoding="unicode")

    # -- callbacks -----------------------------------------------------------------------

    def emit(self, sp_no: str, change: int) -> None:
        """Queue the event for the callback URL (nothing is sent without one)."""
        if self.callback_url is not None:
            event = self.event_xml(sp_no, change)
            self.queue_callback({"sp_no": sp_no, "event": event, "change": change})

    def envelope(self, event: str) -> tuple[dict[str, str], bytes]:
        """The query and body of one push, as WeCom builds them."""
        timestamp, nonce = str(int(time.time())), new_nonce(10)
        body = self.crypto.event_xml(event, to_user=self.credentials.corpid, agent_id=AGENT_ID)
        encrypt = str(etree.fromstring(body.encode()).findtext("Encrypt"))
        query = {
            "msg_signature": self.crypto.sign(timestamp, nonce, encrypt),
            "timestamp": timestamp,
            "nonce": nonce,
        }
        return query, body.encode("utf-8")

    async def post_callback(self, row: Any) -> httpx.Response:
        query, body = self.envelope(row["event"])
        return await self.client().post(
            row["url"],
            params=query,
            content=body,
            headers={"content-type": "text/xml"},
            timeout=REPLY_TIMEOUT_SECONDS,
        )

    def callback_log(self) -> list[dict[str, Any]]:
        """`/_sim/callbacks`: every stored callback, its event the plaintext XML."""
        rows = self.conn.execute(
            "SELECT seq, sp_no, change, event, state, attempts, last_status, last_error FROM "
            "callbacks ORDER BY seq"
        ).fetchall()
        return [dict(r) for r in rows]

    async def verify_url(self, url: str | None = None) -> dict[str, Any]:
        """The URL check the admin console makes when the callback URL is saved: a GET with
        an encrypted `echostr`, answered with its plaintext."""
        target = url or self.callback_url
        if target is None:
            raise WeComError(40058, "url: no callback URL is set")
        plain = str(self.rng.randint(10**17, 10**18))
        timestamp, nonce = str(int(time.time())), new_nonce(10)
        echostr = self.crypto.encrypt(plain)
        signature = self.crypto.sign(timestamp, nonce, echostr)
        query = f"msg_signature={signature}&timestamp={timestamp}&nonce={nonce}&echostr="
        try:
            response = await self.client().get(
                f"{target}?{query}{quote(echostr, safe='')}", timeout=REPLY_TIMEOUT_SECONDS
            )
        except httpx.HTTPError as exc:
            return {"verified": False, "reason": f"{type(exc).__name__}: {exc}"}
        verified = response.status_code == 200 and response.text == plain
        return {
            "verified": verified,
            "status": response.status_code,
            "reason": "" if verified else f"answered {response.text[:200]!r}, not the echostr",
        }

    # -- application messages (应用消息) --------------------------------------------------

    def send_message(self, body: Any) -> dict[str, Any]:
        """`message/send`: a text message from the app to users (`touser`, `|`-separated).
        Unknown or departed users come back in `invaliduser` (errcode 81013 when none is
        left); with `enable_duplicate_check` the same content to the same users within
        `duplicate_check_interval` seconds is not sent again (the first msgid answers)."""
        if not isinstance(body, dict):
            raise WeComError(40058, "the body must be a JSON object")
        if body.get("agentid") != AGENT_ID:
            raise WeComError(40056, f"agentid: invalid agentid {body.get('agentid')}")
        if body.get("msgtype") != "text":
            raise WeComError(40008, "msgtype: this simulator takes text messages")
        text = body.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(content, str) or not content.strip():
            raise WeComError(41016, "text.content: missing content")
        if len(content.encode("utf-8")) > MAX_CONTENT_BYTES:
            raise WeComError(45002, f"text.content: longer than {MAX_CONTENT_BYTES} bytes")
        users = [u for u in str(body.get("touser") or "").split("|") if u]
        valid = [u for u in users if (m := self.directory.users.get(u)) and m.active]
        invalid = "|".join(u for u in users if u not in valid)
        if not valid:
            raise WeComError(81013, f"touser: user & party & tag all invalid: {invalid}")
        touser = "|".join(sorted(valid))
        now = time.time()
        if body.get("enable_duplicate_check") == 1:
            window = body.get("duplicate_check_interval", 1800)
            if not isinstance(window, int) or not 0 < window <= MAX_DUPLICATE_CHECK:
                raise WeComError(40058, "duplicate_check_interval: 1-14400 seconds")
            seen = self.conn.execute(
                "SELECT msgid FROM messages WHERE touser = ? AND content = ? AND "
                "duplicate_until > ?",
                (touser, content, now),
            ).fetchone()
            if seen is not None:
                self.counts["messages_deduplicated"] += 1
                return _ok(invaliduser=invalid, msgid=seen["msgid"])
        else:
            window = 0
        msgid = secrets.token_urlsafe(24)
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
                (msgid, touser, content, now, now + window),
            )
        return _ok(invaliduser=invalid, invalidparty="", invalidtag="", msgid=msgid)

    def messages(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM messages ORDER BY sent_at, msgid").fetchall()
        return [{"msgid": r["msgid"], "touser": r["touser"], "content": r["content"]}
                for r in rows]  # fmt: skip


def create_wecom_app(sim: WeComSimulator) -> FastAPI:
    """The simulator's HTTP app: WeCom's paths under `/cgi-bin/`, `/_sim/*` to steer it."""

    app = vendor_app(sim, "finoa WeCom simulator", fault_prefixes=("/cgi-bin/",))

    @app.exception_handler(WeComError)
    async def wecom_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WeComError)
        hint = f", hint: [{secrets.token_hex(5)}], from ip: 127.0.0.1"
        return json_response({"errcode": exc.errcode, "errmsg": exc.errmsg + hint})

    async def body_of(request: Request) -> Any:
        return await json_body(
            request, lambda: WeComError(47001, "data format error: the body is not JSON")
        )

    def guard(request: Request) -> None:
        if not sim.limit.allow():
            raise WeComError(45009, "api freq out of limit")
        sim.check_token(request.query_params.get("access_token"))

    @app.get("/cgi-bin/gettoken")
    async def gettoken(request: Request) -> Response:
        if not sim.limit.allow():
            raise WeComError(45009, "api freq out of limit")
        q = request.query_params
        return json_response(sim.issue_token(q.get("corpid"), q.get("corpsecret")))

    @app.post("/cgi-bin/oa/gettemplatedetail")
    async def template_detail(request: Request) -> Response:
        guard(request)
        body = await body_of(request) or {}
        template = (
            sim.templates.get(str(body.get("template_id"))) if isinstance(body, dict) else None
        )
        if template is None:
            raise WeComError(301025, "template_id: template not found")
        return json_response(_ok(**template))

    @app.post("/cgi-bin/oa/applyevent")
    async def applyevent(request: Request) -> Response:
        guard(request)
        return json_response(_ok(sp_no=sim.apply(await body_of(request))))

    @app.post("/cgi-bin/oa/getapprovaldetail")
    async def approval_detail(request: Request) -> Response:
        guard(request)
        body = await body_of(request) or {}
        return json_response(_ok(info=sim.detail(body.get("sp_no"))))

    @app.post("/cgi-bin/oa/getapprovalinfo")
    async def approval_info(request: Request) -> Response:
        guard(request)
        return json_response(sim.list_sp_nos(await body_of(request)))

    @app.get("/cgi-bin/department/list")
    async def department_list(request: Request) -> Response:
        guard(request)
        wanted = request.query_params.get("id")
        numbers = (
            sim.directory.under(sim.directory.department(wanted))
            if wanted
            else sorted(sim.directory.departments)
        )
        return json_response(_ok(department=[sim.directory.departments[n] for n in numbers]))

    def members(request: Request) -> list[Member]:
        q = request.query_params
        number = sim.directory.department(q.get("department_id"))
        scope = sim.directory.under(number) if q.get("fetch_child") == "1" else [number]
        return [m for m in sim.directory.users.values() if m.department in scope and m.active]

    @app.get("/cgi-bin/user/simplelist")
    async def user_simplelist(request: Request) -> Response:
        guard(request)
        return json_response(
            _ok(
                userlist=[
                    {"userid": m.userid, "name": m.name, "department": [m.department]}
                    for m in members(request)
                ]
            )
        )

    def member_body(m: Member) -> dict[str, Any]:
        return {
            "userid": m.userid,
            "name": m.name,
            "department": [m.department],
            "main_department": m.department,
            "direct_leader": [m.manager] if m.manager else [],
            "status": 1 if m.active else 5,
            "enable": 1 if m.active else 0,
        }

    @app.get("/cgi-bin/user/list")
    async def user_list(request: Request) -> Response:
        guard(request)
        return json_response(_ok(userlist=[member_body(m) for m in members(request)]))

    @app.post("/cgi-bin/message/send")
    async def message_send(request: Request) -> Response:
        guard(request)
        return json_response(sim.send_message(await body_of(request)))

    @app.get("/_sim/messages")
    async def messages() -> Response:
        return json_response(sim.messages())

    @app.get("/cgi-bin/user/get")
    async def user_get(request: Request) -> Response:
        guard(request)
        member = sim.directory.active_user(request.query_params.get("userid"), "userid")
        return json_response(_ok(**member_body(member)))

    @app.post("/_sim/approvals")
    async def employee_applies(request: Request) -> Response:
        """An employee submits the expense template in WeCom's own 审批 app."""
        body = await body_of(request) or {}
        if isinstance(body, dict):
            body.setdefault("template_id", EXPENSE_TEMPLATE_ID)
            body.setdefault("use_template_approver", 1)
        try:
            return json_response({"sp_no": sim.apply(body)})
        except WeComError as exc:
            return json_response({"errcode": exc.errcode, "errmsg": exc.errmsg}, 400)

    @app.get("/_sim/approvals")
    async def approvals() -> Response:
        rows = sim.conn.execute("SELECT sp_no FROM approvals ORDER BY sp_no").fetchall()
        return json_response([sim.detail(r["sp_no"]) for r in rows])

    @app.post("/_sim/approvals/{sp_no}/decide")
    async def decide(sp_no: str, request: Request) -> Response:
        """Decide by hand: `{"result": "agree" | "reject" | "revoke", "speech": "…"}`."""
        body = await body_of(request) or {}
        result = body.get("result") if isinstance(body, dict) else None
        if result not in ("agree", "reject", "revoke"):
            return json_response(
                {"errcode": 40058, "errmsg": "result: agree, reject or revoke"}, 400
            )
        try:
            return json_response(sim.decide(sp_no, result, body.get("speech")))
        except WeComError as exc:
            return json_response({"errcode": exc.errcode, "errmsg": exc.errmsg}, 400)

    @app.post("/_sim/callback:verify")
    async def verify_callback_url() -> Response:
        return json_response(await sim.verify_url())

    return app


def run_wecom_simulator(host: str, port: int, sim: WeComSimulator) -> None:
    """Serve the WeCom simulator until interrupted."""
    serve(create_wecom_app(sim), host, port)
