"""A Feishu simulator: the open API and event pushes as Feishu speaks them.

What it enforces, as Feishu does:

- **Tokens.** `POST /open-apis/auth/v3/tenant_access_token/internal` with the app's
  `app_id`/`app_secret` gives a tenant access token for `token_ttl` seconds (7200 as
  Feishu; the same token again while more than 30 minutes remain). A missing token is
  refused with code 99991661, an unknown or expired one with 99991663 (HTTP 400).
- **Answers.** Always `{"code", "msg", "data"}`; code 0 is success.
- **Base data.** Users and departments come from master data (the sample company by
  default): user_id = employee id, department_id as the default code table numbers them.
  An unknown or resigned user, or a department the user is not in, is refused (1390001);
  contacts answer 99992351 for an id that does not exist.
- **Forms.** `form` is a JSON string of widgets `{id, type, value}` checked against the
  approval definition: widget ids and types, amounts as numbers with a currency, dates in
  RFC 3339, the radio's options, a fieldList as rows of widgets, required widgets.
- **Idempotency.** A create `uuid` already used answers 60012; an external instance is an
  upsert by `instance_id`, the newer `update_time` winning.
- **Rate limits.** At most `qps` calls per second per app (HTTP 429, code 99991400, with
  `x-ogw-ratelimit-limit` / `x-ogw-ratelimit-reset`).
- **Events.** `approval_instance` / `approval_task` events (schema 1.0 as Feishu sends
  approval events, or 2.0 with `--event-schema 2.0`) encrypted under the Encrypt Key and
  signed (`X-Lark-Signature`); any answer but HTTP 200 and the event is sent again after
  15 s, 5 min, 1 h and 6 h (times `retry_scale`).

Simulated approvers decide what reaches them: an instance's approver (the applicant's
manager) approves, or rejects at `reject_rate`; an external instance's task approver presses
its quick action, which Feishu sends to the action callback URL (the callback URL),
encrypted and carrying the Verification Token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Unpack

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from finoa.connectors.feishu.crypto import encrypt, new_secret, signed_headers
from finoa.connectors.simulation import json_response, serve, transaction
from finoa.connectors.vendor_sim import (
    EVENT_CALLBACKS_TABLE,
    ConsoleCredentials,
    SimDirectory,
    SimOptions,
    VendorSimulator,
    add_press_route,
    json_body,
    now_ms,
    vendor_app,
)

log = logging.getLogger(__name__)

TOKEN_REUSE_SECONDS = 1800  # Feishu hands out the same token while more than 30 min remain
RETRY_DELAYS = (15.0, 300.0, 3600.0, 21600.0)  # Feishu's event push retry schedule
APPROVAL_CODE = "7C468A54-8745-2245-9675-08B7C63E7A85"
EXTERNAL_APPROVAL_CODE = "finoa-expense-claim"
APPROVAL_NAME = "费用报销"
CURRENCIES = ("CNY", "USD", "EUR", "HKD", "JPY")
# The approval definition's form: widget id -> (type, name); the fieldList's columns.
FORM: dict[str, tuple[str, str]] = {
    "reason": ("input", "报销事由"),
    "claim_no": ("input", "finoa单号"),
    "total": ("amount", "总金额"),
    "details": ("fieldList", "费用明细"),
    "cost_center": ("input", "成本中心"),
    "project": ("input", "项目"),
}
COLUMNS: dict[str, tuple[str, str]] = {
    "category": ("radioV2", "费用类别"),
    "amount": ("amount", "金额"),
    "tax": ("amount", "可抵扣税额"),
    "date": ("date", "费用日期"),
    "note": ("input", "说明"),
}
CATEGORY_OPTIONS = (
    "差旅费",
    "住宿费",
    "业务招待费",
    "交通费",
    "办公费",
    "通讯费",
    "培训费",
    "会议费",
)
REQUIRED = ("reason", "total", "details")
REQUIRED_COLUMNS = ("category", "amount", "date")
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
INSTANCE_STATUSES = ("APPROVED", "REJECTED", "CANCELED", "DELETED")
EXTERNAL_STATUSES = (
    "PENDING",
    "APPROVED",
    "REJECTED",
    "CANCELED",
    "DELETED",
    "HIDDEN",
    "TERMINATED",
)
TASK_STATUSES = ("PENDING", "APPROVED", "REJECTED", "TRANSFERRED", "DONE")
APPROVE_COMMENT = "同意"
REJECT_COMMENT = "预算不足 / over budget"

SCHEMA = (
    EVENT_CALLBACKS_TABLE
    + """
CREATE TABLE IF NOT EXISTS instances (
    code TEXT PRIMARY KEY, uuid TEXT UNIQUE, user_id TEXT NOT NULL, department_id TEXT NOT NULL,
    form TEXT NOT NULL, status TEXT NOT NULL, approver TEXT NOT NULL, task_id TEXT NOT NULL,
    start_ms INTEGER NOT NULL, end_ms INTEGER, comment TEXT, serial INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS external_instances (
    instance_id TEXT PRIMARY KEY, body TEXT NOT NULL, status TEXT NOT NULL,
    update_time INTEGER NOT NULL, versions INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS subscriptions (approval_code TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY, uuid TEXT, receive_id TEXT NOT NULL, msg_type TEXT NOT NULL,
    content TEXT NOT NULL, create_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS presses (
    task_id TEXT PRIMARY KEY, action_type TEXT NOT NULL, status INTEGER, answer TEXT
);
"""
)


class FeishuError(Exception):
    """An error answered in Feishu's shape: `{"code", "msg", "data": {}}`."""

    def __init__(
        self, status: int, code: int, msg: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.headers = status, code, msg, headers

    def response(self) -> Response:
        body = {"code": self.code, "msg": self.msg, "data": {}}
        return json_response(body, self.status, headers=self.headers)


def _invalid(msg: str) -> FeishuError:
    return FeishuError(400, 1390001, f"param is invalid: {msg}")


def _message_invalid(msg: str) -> FeishuError:
    return FeishuError(
        400, 230001, f"Your request contains an invalid request parameter, ext={msg}"
    )


MESSAGE_LIMIT = 150 * 1024  # bytes of a text message's content
DEDUP_WINDOW_MS = 3_600_000  # Feishu sends a message with a uuid seen this recently once


def ok(data: Any) -> Response:
    return json_response({"code": 0, "msg": "success", "data": data})


@dataclass(frozen=True)
class Credentials(ConsoleCredentials):
    """What the app's developer console shows."""

    CONSOLE_NAMES: ClassVar[dict[str, str]] = {
        name: name
        for name in ("app_id", "app_secret", "encrypt_key", "verification_token", "tenant_key")
    }

    app_id: str
    app_secret: str
    encrypt_key: str
    verification_token: str
    tenant_key: str

    def constants(self) -> dict[str, Any]:
        return {"approval_code": APPROVAL_CODE, "external_approval_code": EXTERNAL_APPROVAL_CODE}

    @classmethod
    def fresh(cls) -> Credentials:
        return cls(
            app_id="cli_" + secrets.token_hex(8),
            app_secret=new_secret(32),
            encrypt_key=new_secret(32),
            verification_token=new_secret(32),
            tenant_key=secrets.token_hex(8),
        )


@dataclass(frozen=True)
class User:
    user_id: str
    open_id: str
    name: str
    department_id: str
    manager: str | None
    active: bool

    def contact(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "open_id": self.open_id,
            "union_id": "on_" + self.open_id[3:],
            "name": self.name,
            "department_ids": [self.department_id],
            "leader_user_id": self.manager or "",
            "status": {"is_activated": self.active, "is_resigned": not self.active},
        }


def _open_id(prefix: str, key: str) -> str:
    return prefix + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class Directory(SimDirectory[User]):
    """Feishu's contacts: open ids derived from the user and department ids, departments
    under the root ("0")."""

    vendor = "feishu"

    @staticmethod
    def department_key(code: Any) -> Any:
        return str(code)

    def department_entry(self, unit: dict[str, Any], key: Any, parent: Any) -> dict[str, Any]:
        return {
            "department_id": key,
            "open_department_id": _open_id("od-", key),
            "name": unit["name"],
            "parent_department_id": parent if parent is not None else "0",
            "leader_user_id": unit.get("manager_id") or "",
            "status": {"is_deleted": False},
        }

    def user_entry(self, person: dict[str, Any], department: Any) -> User:
        user_id = person["id"]
        return User(user_id, _open_id("ou_", user_id), person["name"], department,
                    person.get("manager_id"), bool(person.get("active", True)))  # fmt: skip

    def refusal(self, field: str, userid: Any, user: User | None) -> Exception:
        why = "user not found" if user is None else "user has resigned"
        return _invalid(f"{field}: {why} ({userid})")


def check_rate(sim: FeishuSimulator) -> None:
    """HTTP 429 (code 99991400) past the app's calls per second, with Feishu's headers."""
    if not sim.limit.allow():
        raise FeishuError(
            429,
            99991400,
            "request trigger frequency limit",
            headers={"x-ogw-ratelimit-limit": str(sim.limit.qps), "x-ogw-ratelimit-reset": "1"},
        )


class FeishuSimulator(VendorSimulator):
    """State and behaviour behind the Feishu simulator app."""

    credentials_type = Credentials
    directory_type = Directory
    database = "feishu.sqlite3"
    schema = SCHEMA
    retry_delays = RETRY_DELAYS
    counters = ("uuid_conflicts", "messages_deduplicated")
    stat_queries = {
        "instances": "SELECT status, COUNT(*) FROM instances GROUP BY status",
        "external_instances": "SELECT status, COUNT(*) FROM external_instances GROUP BY status",
    }
    credentials: Credentials
    directory: Directory

    def __init__(
        self, data_dir: Path, *, event_schema: str = "1.0", **options: Unpack[SimOptions]
    ) -> None:
        super().__init__(data_dir, **options)
        self.event_schema = event_schema

    # -- tokens --------------------------------------------------------------------------

    def issue_token(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("app_id") != self.credentials.app_id:
            raise FeishuError(400, 10003, "invalid param: app_id")
        if body.get("app_secret") != self.credentials.app_secret:
            raise FeishuError(400, 10014, "app secret invalid")
        now = time.time()
        row = self.conn.execute(
            "SELECT token, expires_at FROM tokens ORDER BY expires_at DESC LIMIT 1"
        ).fetchone()
        if row is not None and row["expires_at"] - now > min(TOKEN_REUSE_SECONDS, self.token_ttl):
            return {
                "code": 0,
                "msg": "ok",
                "tenant_access_token": row["token"],
                "expire": int(row["expires_at"] - now),
            }
        token = "t-" + secrets.token_hex(20)
        self.store_token(token)
        return {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.token_ttl}

    def check_token(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        bearer = scheme.lower() == "bearer" and bool(token)
        if self.token_state(token.strip() if bearer else None) == "ok":
            return
        what = "Invalid" if bearer else "Missing"
        raise FeishuError(
            400,
            99991663 if bearer else 99991661,
            f"{what} access token for authorization. Please make a request with token attached.",
        )

    # -- approval instances --------------------------------------------------------------

    def create_instance(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _invalid("the body must be an object")
        if body.get("approval_code") != APPROVAL_CODE:
            raise FeishuError(400, 1390002, f"approval code not found: {body.get('approval_code')}")
        user = self.directory.active_user(body.get("user_id"), "user_id")
        dept = body.get("department_id")
        if dept is not None:
            if dept not in self.directory.departments:
                raise _invalid(f"department_id: department not found ({dept})")
            if dept != user.department_id:
                raise _invalid(f"department_id: {user.user_id} is not in department {dept}")
        form = self._form(body.get("form"))
        create_uuid = body.get("uuid")
        if create_uuid is not None:
            if not isinstance(create_uuid, str) or not create_uuid or len(create_uuid) > 64:
                raise _invalid("uuid: a string of at most 64 characters")
            taken = self.conn.execute(
                "SELECT code FROM instances WHERE uuid = ?", (create_uuid.lower(),)
            ).fetchone()
            if taken is not None:
                self.counts["uuid_conflicts"] += 1
                raise FeishuError(400, 60012, "uuid conflict")
        approver = self.directory.approver_of(user).user_id
        code = str(uuid.uuid4()).upper()
        task_id = str(self.rng.randint(10**15, 10**16))
        now = now_ms()
        with transaction(self.conn):
            serial = self.conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0] + 1
            self.conn.execute(
                "INSERT INTO instances VALUES (?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, NULL, NULL, ?)",
                (
                    code,
                    create_uuid.lower() if isinstance(create_uuid, str) else None,
                    user.user_id,
                    user.department_id,
                    json.dumps(form, ensure_ascii=False),
                    approver,
                    task_id,
                    now,
                    serial,
                ),
            )
        self.emit(self._instance_event(code, "PENDING"))
        self.emit(self._task_event(code, task_id, approver, "PENDING"))
        if self.auto_decide:
            self.later(self.decide_soon(lambda approve: self.finish_instance(
                code, "APPROVED" if approve else "REJECTED")))  # fmt: skip
        return {"instance_code": code}

    def _form(self, raw: Any) -> list[dict[str, Any]]:
        if not isinstance(raw, str):
            raise _invalid("form: a JSON string of widgets")
        try:
            widgets = json.loads(raw)
        except json.JSONDecodeError:
            raise _invalid("form: not valid JSON") from None
        if not isinstance(widgets, list) or not widgets:
            raise _invalid("form: a non-empty list of widgets")
        stored = [self._widget(w, FORM, f"form[{i}]") for i, w in enumerate(widgets)]
        given = {w["id"] for w in stored}
        missing = [w for w in REQUIRED if w not in given]
        if missing:
            raise _invalid(f"form: required widget {missing[0]} ({FORM[missing[0]][1]}) is empty")
        return stored

    def _widget(
        self, widget: Any, definition: dict[str, tuple[str, str]], where: str
    ) -> dict[str, Any]:
        if not isinstance(widget, dict) or not isinstance(widget.get("id"), str):
            raise _invalid(f"{where}: a widget needs an id")
        widget_id = widget["id"]
        if widget_id not in definition:
            raise _invalid(f"{where}: widget {widget_id} not found in the approval definition")
        kind, name = definition[widget_id]
        if widget.get("type") != kind:
            raise _invalid(f"{where}: widget {widget_id} is {kind}, not {widget.get('type')}")
        value = widget.get("value")
        out: dict[str, Any] = {"id": widget_id, "custom_id": widget_id, "name": name, "type": kind}
        if kind == "amount":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _invalid(f"{where}: amount {widget_id} must be a number")
            currency = widget.get("currency", "CNY")
            if currency not in CURRENCIES:
                raise _invalid(f"{where}: currency {currency} is not allowed")
            out.update(value=value, currency=currency)
        elif kind == "date":
            if not isinstance(value, str) or not RFC3339.fullmatch(value):
                raise _invalid(f"{where}: date {widget_id} must be RFC 3339")
            out["value"] = value
        elif kind == "radioV2":
            if value not in CATEGORY_OPTIONS:
                raise _invalid(f"{where}: {value!r} is not an option of {widget_id}")
            out["value"] = value
        elif kind == "fieldList":
            if not isinstance(value, list) or not value:
                raise _invalid(f"{where}: fieldList {widget_id} needs rows")
            rows = []
            for r, row in enumerate(value):
                if not isinstance(row, list):
                    raise _invalid(f"{where}.value[{r}]: a row is a list of widgets")
                cells = [self._widget(c, COLUMNS, f"{where}.value[{r}]") for c in row]
                given = {c["id"] for c in cells}
                missing = [c for c in REQUIRED_COLUMNS if c not in given]
                if missing:
                    raise _invalid(f"{where}.value[{r}]: required {missing[0]} is empty")
                rows.append(cells)
            out["value"] = rows
        else:
            if not isinstance(value, str):
                raise _invalid(f"{where}: input {widget_id} must be a string")
            if widget_id in REQUIRED and not value.strip():
                raise _invalid(f"{where}: required {widget_id} is empty")
            out["value"] = value
        return out

    def _row(self, code: str) -> Any:
        row = self.conn.execute("SELECT * FROM instances WHERE code = ?", (code,)).fetchone()
        if row is None:
            raise FeishuError(400, 1390003, f"instance code not found: {code}")
        return row

    def instance(self, code: str) -> dict[str, Any]:
        row = self._row(code)
        user = self.directory.users[row["user_id"]]
        approver = self.directory.users[row["approver"]]
        finished = row["status"] != "PENDING"
        timeline: list[dict[str, Any]] = [
            {"type": "START", "create_time": str(row["start_ms"]), "user_id": user.user_id}
        ]
        if finished:
            kind = {"APPROVED": "PASS", "REJECTED": "REJECT", "CANCELED": "CANCEL"}.get(
                row["status"], "DELETE"
            )
            who = user if kind in ("CANCEL", "DELETE") else approver
            timeline.append(
                {
                    "type": kind,
                    "create_time": str(row["end_ms"]),
                    "user_id": who.user_id,
                    "open_id": who.open_id,
                    "comment": row["comment"] or "",
                }
            )
        task_status = {"APPROVED": "APPROVED", "REJECTED": "REJECTED"}.get(
            row["status"], "PENDING" if not finished else "DONE"
        )
        return {
            "approval_code": APPROVAL_CODE,
            "approval_name": APPROVAL_NAME,
            "instance_code": row["code"],
            "serial_number": f"{row['serial']:06d}",
            "uuid": row["uuid"] or "",
            "start_time": str(row["start_ms"]),
            "end_time": str(row["end_ms"] or 0),
            "user_id": user.user_id,
            "open_id": user.open_id,
            "department_id": row["department_id"],
            "status": row["status"],
            "reverted": False,
            "form": json.dumps(json.loads(row["form"]), ensure_ascii=False),
            "task_list": [
                {
                    "id": row["task_id"],
                    "user_id": approver.user_id,
                    "open_id": approver.open_id,
                    "status": task_status,
                    "node_id": "manager",
                    "node_name": "直属上级",
                    "custom_node_id": "manager",
                    "type": "AND",
                    "start_time": str(row["start_ms"]),
                    "end_time": str(row["end_ms"] or 0),
                }
            ],
            "comment_list": [],
            "timeline": timeline,
        }

    def list_instances(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("approval_code") != APPROVAL_CODE:
            raise FeishuError(400, 1390002, "approval code not found")
        try:
            start, end = int(params["start_time"]), int(params["end_time"])
        except (KeyError, ValueError):
            raise _invalid("start_time / end_time: epoch milliseconds") from None
        try:
            size = int(params.get("page_size") or 100)
            offset = int(params.get("page_token") or 0)
        except ValueError:
            raise _invalid("page_size / page_token") from None
        if not 1 <= size <= 100:
            raise _invalid("page_size: 1-100")
        rows = self.conn.execute(
            "SELECT code FROM instances WHERE start_ms >= ? AND start_ms <= ? ORDER BY start_ms, "
            "code",
            (start, end),
        ).fetchall()
        codes = [r["code"] for r in rows]
        page = codes[offset : offset + size]
        more = offset + size < len(codes)
        return {
            "instance_code_list": page,
            "page_token": str(offset + size) if more else "",
            "has_more": more,
        }

    def finish_instance(self, code: str, status: str, comment: str | None = None) -> dict[str, Any]:
        row = self._row(code)
        if row["status"] != "PENDING":
            raise _invalid(f"instance {code} is not pending but {row['status']}")
        if comment is None:
            comment = {"APPROVED": APPROVE_COMMENT, "REJECTED": REJECT_COMMENT}.get(status, "撤回")
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE instances SET status = ?, end_ms = ?, comment = ? WHERE code = ?",
                (status, now_ms(), comment, code),
            )
        if status in ("APPROVED", "REJECTED"):
            self.emit(self._task_event(code, row["task_id"], row["approver"], status))
        self.emit(self._instance_event(code, status))
        return {"instance_code": code, "status": status}

    def _event(self, body: dict[str, Any]) -> dict[str, Any]:
        event_id = uuid.uuid4().hex
        creds = self.credentials
        now = now_ms()
        body = {"app_id": creds.app_id, "tenant_key": creds.tenant_key, **body}
        if self.event_schema == "2.0":
            return {
                "schema": "2.0",
                "header": {
                    "event_id": event_id,
                    "token": creds.verification_token,
                    "create_time": str(now),
                    "event_type": body["type"],
                    "tenant_key": creds.tenant_key,
                    "app_id": creds.app_id,
                },
                "event": body,
            }
        return {
            "uuid": event_id,
            "token": creds.verification_token,
            "ts": f"{now / 1000:.7f}",
            "type": "event_callback",
            "event": body,
        }

    def _instance_event(self, code: str, status: str) -> dict[str, Any]:
        row = self._row(code)
        now = str(now_ms())
        return self._event(
            {
                "type": "approval_instance",
                "approval_code": APPROVAL_CODE,
                "instance_code": code,
                "status": status,
                "operate_time": now,
                "instance_operate_time": now,
                "uuid": row["uuid"] or "",
            }
        )

    def _task_event(self, code: str, task_id: str, user_id: str, status: str) -> dict[str, Any]:
        user = self.directory.users[user_id]
        return self._event(
            {
                "type": "approval_task",
                "approval_code": APPROVAL_CODE,
                "instance_code": code,
                "task_id": task_id,
                "user_id": user.user_id,
                "open_id": user.open_id,
                "status": status,
                "operate_time": str(now_ms()),
                "def_key": "manager",
                "custom_key": "manager",
            }
        )

    # -- messages (消息) ---------------------------------------------------------------------

    def send_message(self, receive_id_type: str, body: Any) -> dict[str, Any]:
        """`POST /open-apis/im/v1/messages`: a text message from the app's bot to one user.
        A `uuid` seen within the last hour is the same message again (Feishu's dedup)."""
        if receive_id_type != "user_id":
            raise _message_invalid(f"receive_id_type: this tenant's ids are user_id, not "
                                   f"{receive_id_type or 'missing'}")  # fmt: skip
        if not isinstance(body, dict):
            raise _message_invalid("the body must be an object")
        receive_id = body.get("receive_id")
        user = self.directory.users.get(receive_id) if isinstance(receive_id, str) else None
        if user is None:
            raise _message_invalid(f"invalid receive_id: {receive_id}")
        if not user.active:
            raise FeishuError(400, 230013, f"Bot has NO availability to this user: {receive_id}")
        if body.get("msg_type") != "text":
            raise _message_invalid("msg_type: this simulator takes text messages")
        content = body.get("content")
        try:
            text = json.loads(content)["text"] if isinstance(content, str) else None
        except (ValueError, KeyError, TypeError):
            text = None
        if not isinstance(text, str) or not text.strip():
            raise _message_invalid('content: a JSON string {"text": "…"} with some text')
        if len(content.encode("utf-8")) > MESSAGE_LIMIT:  # type: ignore[union-attr]
            raise _message_invalid(f"content: longer than {MESSAGE_LIMIT} bytes")
        dedup = body.get("uuid")
        if dedup is not None and (not isinstance(dedup, str) or not 0 < len(dedup) <= 50):
            raise _message_invalid("uuid: at most 50 characters")
        now_ms = int(time.time() * 1000)
        if dedup:
            row = self.conn.execute(
                "SELECT * FROM messages WHERE uuid = ? AND create_ms > ?",
                (dedup, now_ms - DEDUP_WINDOW_MS),
            ).fetchone()
            if row is not None:
                self.counts["messages_deduplicated"] += 1
                return self._message(row)
        message_id = f"om_{secrets.token_hex(16)}"
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                (message_id, dedup, receive_id, "text", content, now_ms),
            )
        row = self.conn.execute(
            "SELECT * FROM messages WHERE message_id = ?", (message_id,)
        ).fetchone()
        return self._message(row)

    def _message(self, row: Any) -> dict[str, Any]:
        return {
            "message_id": row["message_id"],
            "msg_type": row["msg_type"],
            "create_time": str(row["create_ms"]),
            "chat_id": "oc_" + hashlib.sha256(row["receive_id"].encode()).hexdigest()[:32],
            "sender": {"id": self.credentials.app_id, "id_type": "app_id", "sender_type": "app"},
            "body": {"content": row["content"]},
            "receive_id": row["receive_id"],
        }

    def messages(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM messages ORDER BY create_ms, message_id")
        return [self._message(row) for row in rows]

    # -- external instances (Approval Center) --------------------------------------------

    def sync_external(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _invalid("the body must be an object")
        if body.get("approval_code") != EXTERNAL_APPROVAL_CODE:
            raise FeishuError(400, 1390002, f"approval code not found: {body.get('approval_code')}")
        instance_id = body.get("instance_id")
        if not isinstance(instance_id, str) or not instance_id:
            raise _invalid("instance_id: required")
        if body.get("status") not in EXTERNAL_STATUSES:
            raise _invalid(f"status: one of {', '.join(EXTERNAL_STATUSES)}")
        links = body.get("links")
        if not isinstance(links, dict) or not isinstance(links.get("pc_link"), str):
            raise _invalid("links.pc_link: required")
        update_time = body.get("update_time")
        if not isinstance(update_time, str) or not update_time.isdigit():
            raise _invalid("update_time: epoch milliseconds as a string")
        tasks = body.get("task_list") or []
        if not isinstance(tasks, list):
            raise _invalid("task_list: a list")
        for t, task in enumerate(tasks):
            if not isinstance(task, dict) or not isinstance(task.get("task_id"), str):
                raise _invalid(f"task_list[{t}].task_id: required")
            self.directory.active_user(task.get("user_id"), f"task_list[{t}].user_id")
            if task.get("status") not in TASK_STATUSES:
                raise _invalid(f"task_list[{t}].status: one of {', '.join(TASK_STATUSES)}")
        row = self.conn.execute(
            "SELECT update_time FROM external_instances WHERE instance_id = ?", (instance_id,)
        ).fetchone()
        if row is not None and row["update_time"] >= int(update_time):
            return {"data": json.loads(self._external_body(instance_id))}  # older: kept as is
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO external_instances (instance_id, body, status, update_time) VALUES "
                "(?, ?, ?, ?) ON CONFLICT (instance_id) DO UPDATE SET body = excluded.body, "
                "status = excluded.status, update_time = excluded.update_time, versions = "
                "versions + 1",
                (
                    instance_id,
                    json.dumps(body, ensure_ascii=False),
                    body["status"],
                    int(update_time),
                ),
            )
        if self.auto_decide:
            for task in tasks:
                if task["status"] == "PENDING" and task.get("action_configs"):
                    self.later(self.press(instance_id, task["task_id"]))
        return {"data": body}

    def _external_body(self, instance_id: str) -> str:
        row = self.conn.execute(
            "SELECT body FROM external_instances WHERE instance_id = ?", (instance_id,)
        ).fetchone()
        return str(row["body"]) if row else "{}"

    async def press(
        self, instance_id: str, task_id: str, action_type: str | None = None
    ) -> dict[str, Any]:
        """The task's approver presses a quick action: APPROVE, or REJECT at `reject_rate`."""
        await asyncio.sleep(0.02)
        body = json.loads(self._external_body(instance_id))
        task = next((t for t in body.get("task_list") or [] if t.get("task_id") == task_id), None)
        if task is None or self.callback_url is None:
            return {"pressed": False, "reason": "no such task or no action callback URL"}
        if action_type is None:
            action_type = "APPROVE" if self.approves() else "REJECT"
        offered = {c.get("action_type") for c in task.get("action_configs") or []}
        if action_type not in offered:
            return {"pressed": False, "reason": f"the task offers no {action_type}"}
        action = {
            "action_type": action_type,
            "action_context": task.get("action_context") or "",
            "user_id": task["user_id"],
            "approval_code": EXTERNAL_APPROVAL_CODE,
            "instance_id": instance_id,
            "task_id": task_id,
            "message_id": uuid.uuid4().hex,
            "token": self.credentials.verification_token,
        }
        if action_type == "REJECT":
            action["reason"] = REJECT_COMMENT
        sealed = orjson.dumps(
            {"encrypt": encrypt(self.credentials.encrypt_key, json.dumps(action))}
        )
        headers = {"content-type": "application/json"}
        status, answer = await self.press_button(
            task_id, action_type, self.callback_url, sealed, headers
        )
        return {"pressed": True, "action_type": action_type, "status": status, "answer": answer}

    # -- events --------------------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        """Queue an event for the callback URL (nothing is sent without one)."""
        event_id = event["header"]["event_id"] if "header" in event else event["uuid"]
        self.queue_callback({"event_id": event_id, "event": json.dumps(event, ensure_ascii=False)})

    def sealed(self, event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        """The headers and body of one push, as Feishu builds them."""
        key = self.credentials.encrypt_key
        body = orjson.dumps({"encrypt": encrypt(key, json.dumps(event, ensure_ascii=False))})
        headers = signed_headers(key, body, str(int(time.time())))
        return {**headers, "content-type": "application/json; charset=utf-8"}, body

    async def post_callback(self, row: Any) -> httpx.Response:
        headers, body = self.sealed(json.loads(row["event"]))
        return await self.client().post(row["url"], content=body, headers=headers)


def create_feishu_app(sim: FeishuSimulator) -> FastAPI:
    """The simulator's HTTP app: Feishu's paths under /open-apis, `/_sim/*` to steer it."""

    app = vendor_app(sim, "finoa Feishu simulator")
    add_press_route(app, sim)

    @app.exception_handler(FeishuError)
    async def feishu_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FeishuError)
        return exc.response()

    async def body_of(request: Request) -> Any:
        return await json_body(request, lambda: _invalid("the body is not JSON"))

    def guard(request: Request) -> None:
        check_rate(sim)
        sim.check_token(request.headers.get("authorization"))

    def user_id_type(request: Request) -> None:
        kind = request.query_params.get("user_id_type", "open_id")
        if kind != "user_id":
            raise _invalid(f"user_id_type: this tenant's ids are user_id, not {kind}")

    @app.post("/open-apis/auth/v3/tenant_access_token/internal")
    async def tenant_access_token(request: Request) -> Response:
        check_rate(sim)
        return json_response(sim.issue_token(await body_of(request)))

    @app.post("/open-apis/approval/v4/instances")
    async def create(request: Request) -> Response:
        guard(request)
        return ok(sim.create_instance(await body_of(request)))

    @app.get("/open-apis/approval/v4/instances")
    async def list_instances(request: Request) -> Response:
        guard(request)
        return ok(sim.list_instances(dict(request.query_params)))

    @app.get("/open-apis/approval/v4/instances/{code}")
    async def get_instance(code: str, request: Request) -> Response:
        guard(request)
        return ok(sim.instance(code))

    @app.post("/open-apis/approval/v4/approvals/{code}/subscribe")
    async def subscribe(code: str, request: Request) -> Response:
        guard(request)
        if code != APPROVAL_CODE:
            raise FeishuError(400, 1390002, f"approval code not found: {code}")
        with transaction(sim.conn):
            sim.conn.execute("INSERT OR IGNORE INTO subscriptions VALUES (?)", (code,))
        return ok({})

    @app.post("/open-apis/approval/v4/external_instances")
    async def external(request: Request) -> Response:
        guard(request)
        return ok(sim.sync_external(await body_of(request)))

    @app.post("/open-apis/im/v1/messages")
    async def send_message(request: Request) -> Response:
        guard(request)
        kind = request.query_params.get("receive_id_type", "")
        return ok(sim.send_message(kind, await body_of(request)))

    @app.get("/_sim/messages")
    async def messages() -> Response:
        return json_response(sim.messages())

    @app.get("/open-apis/contact/v3/users/find_by_department")
    async def users_of(request: Request) -> Response:
        guard(request)
        dept = request.query_params.get("department_id", "")
        if dept not in sim.directory.departments:
            raise FeishuError(400, 99992351, f"department_id not exist: {dept}")
        people = [
            u.contact()
            for u in sim.directory.users.values()
            if u.department_id == dept and u.active
        ]
        return ok({"items": people, "has_more": False, "page_token": ""})

    @app.get("/open-apis/contact/v3/users/{user_id}")
    async def user(user_id: str, request: Request) -> Response:
        guard(request)
        user_id_type(request)
        found = sim.directory.users.get(user_id)
        if found is None:
            raise FeishuError(400, 99992351, f"user_id not exist: {user_id}")
        return ok({"user": found.contact()})

    @app.get("/open-apis/contact/v3/departments/{dept}/children")
    async def children(dept: str, request: Request) -> Response:
        guard(request)
        if dept != "0" and dept not in sim.directory.departments:
            raise FeishuError(400, 99992351, f"department_id not exist: {dept}")
        everything = request.query_params.get("fetch_child") == "true"
        found = []
        wanted = {dept}
        for _ in range(10 if everything else 1):
            level = [
                d
                for d in sim.directory.departments.values()
                if d["parent_department_id"] in wanted and d not in found
            ]
            found.extend(level)
            wanted = {d["department_id"] for d in level}
        return ok({"items": found, "has_more": False, "page_token": ""})

    @app.post("/_sim/instances")
    async def employee_starts(request: Request) -> Response:
        """An employee starts an expense approval in Feishu's own app (no uuid)."""
        body = await body_of(request) or {}
        if isinstance(body, dict):
            body.setdefault("approval_code", APPROVAL_CODE)
            if isinstance(body.get("form"), list):
                body["form"] = json.dumps(body["form"], ensure_ascii=False)
        return json_response(sim.create_instance(body))

    @app.get("/_sim/instances/{code}")
    async def instance(code: str) -> Response:
        return json_response(sim.instance(code))

    @app.post("/_sim/instances/{code}/finish")
    async def finish(code: str, request: Request) -> Response:
        """Decide a pending instance by hand: `{"status": "APPROVED" | "REJECTED" |
        "CANCELED" | "DELETED", "comment": "…"}`."""
        body = await body_of(request) or {}
        status = body.get("status") if isinstance(body, dict) else None
        if status not in INSTANCE_STATUSES:
            raise _invalid(f"status: one of {', '.join(INSTANCE_STATUSES)}")
        comment = body.get("comment")
        return json_response(
            sim.finish_instance(code, status, comment if isinstance(comment, str) else None)
        )

    @app.get("/_sim/external_instances")
    async def externals() -> Response:
        rows = sim.conn.execute(
            "SELECT instance_id, body, status, versions FROM external_instances"
        ).fetchall()
        return json_response(
            [
                {
                    "instance_id": r["instance_id"],
                    "status": r["status"],
                    "versions": r["versions"],
                    "body": json.loads(r["body"]),
                }
                for r in rows
            ]
        )

    return app


def run_feishu_simulator(host: str, port: int, sim: FeishuSimulator) -> None:
    """Serve the Feishu simulator until interrupted."""
    serve(create_feishu_app(sim), host, port)
