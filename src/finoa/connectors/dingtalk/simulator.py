"""A DingTalk simulator: the open API and event callbacks as DingTalk speaks them.

What it enforces, as DingTalk does:

- **Tokens.** `POST /v1.0/oauth2/accessToken` with the app's `appKey`/`appSecret` gives a
  token valid for `token_ttl` seconds (7200 as DingTalk); an expired or unknown token is
  refused with HTTP 401 `InvalidAuthentication` (v1.0) or errcode 40014 / 42001 (topapi).
- **Base data.** Users and departments come from master data (the sample company by
  default): userid = employee id, unionid = `union-<userid>`, the departments numbered as
  the default code table numbers them. An unknown or departed user, or a department the
  user is not in, is refused (`processInstanceInvalidParameter`; topapi errcode 60121 /
  60003), as DingTalk refuses them.
- **Forms.** Values must be strings and a table a JSON string of rows of `{name, value}`;
  an unknown component is `formConverterError`. There is no idempotency on creating an
  instance or a todo: sending twice makes two, as at DingTalk.
- **Rate limits.** At most `qps` calls per second per app (403
  `Forbidden.AccessDenied.QpsLimitForApi`; topapi errcode 90018).
- **Callbacks.** Events are encrypted (AES-256-CBC, the EncodingAESKey, the appKey as owner
  key) and signed (`msg_signature`); the reply must be the encrypted `success`, else the
  event is sent again after 10, 30, 60 and 120 seconds (times `retry_scale`).

Simulated approvers decide what reaches them: an instance's approver (the applicant's
manager) agrees, or refuses at `reject_rate`; a todo's approver presses its 同意 / 拒绝 button,
which sends the request the button was given, as DingTalk does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
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

from finoa.connectors.dingtalk.crypto import SUCCESS, CallbackCrypto, new_encoding_aes_key
from finoa.connectors.simulation import json_response, serve, transaction
from finoa.connectors.vendor_sim import (
    EVENT_CALLBACKS_TABLE,
    ConsoleCredentials,
    ErrcodeError,
    SimDirectory,
    SimOptions,
    VendorSimulator,
    add_press_route,
    json_body,
    now_ms,
    vendor_app,
)

log = logging.getLogger(__name__)

RETRY_DELAYS = (10.0, 30.0, 60.0, 120.0)  # DingTalk's callback retry schedule
PROCESS_CODE = "PROC-FINOA-EXPENSE"
AGENT_ID = 3000001
FORM_FIELDS = ("报销事由", "finoa单号", "币种", "总金额（元）", "费用明细", "成本中心", "项目")
TABLE_FIELD = "费用明细"
TABLE_COLUMNS = ("费用类别", "金额（元）", "可抵扣税额（元）", "费用日期", "说明")
REQUIRED_FIELDS = ("报销事由", "费用明细")
APPROVE_REMARK = "同意"
REFUSE_REMARK = "预算不足 / over budget"

SCHEMA = (
    EVENT_CALLBACKS_TABLE
    + """
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY, process_code TEXT NOT NULL, originator TEXT NOT NULL,
    dept_id INTEGER NOT NULL, form TEXT NOT NULL, status TEXT NOT NULL, result TEXT NOT NULL,
    approver TEXT NOT NULL, task_id INTEGER NOT NULL, create_ms INTEGER NOT NULL,
    finish_ms INTEGER, remark TEXT
);
CREATE TABLE IF NOT EXISTS todos (
    id TEXT PRIMARY KEY, union_id TEXT NOT NULL, source_id TEXT, body TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS todos_source ON todos (union_id, source_id);
CREATE TABLE IF NOT EXISTS presses (
    todo_id TEXT PRIMARY KEY, decision TEXT NOT NULL, status INTEGER, answer TEXT
);
CREATE TABLE IF NOT EXISTS notices (
    task_id INTEGER PRIMARY KEY AUTOINCREMENT, userid TEXT NOT NULL, content TEXT NOT NULL,
    day TEXT NOT NULL, delivered INTEGER NOT NULL, sent_ms INTEGER NOT NULL
);
"""
)


class DingTalkError(Exception):
    """An error answered in DingTalk's v1.0 shape: `{"code", "message", "requestid"}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        body = {"code": self.code, "message": self.message, "requestid": uuid.uuid4().hex}
        return json_response(body, self.status)


class TopApiError(ErrcodeError):
    """An error answered in the topapi's shape: HTTP 200 `{"errcode", "errmsg"}`."""


@dataclass(frozen=True)
class Credentials(ConsoleCredentials):
    """What the app's developer console shows, under the console's names."""

    CONSOLE_NAMES: ClassVar[dict[str, str]] = {
        "app_key": "appKey",
        "app_secret": "appSecret",
        "token": "token",
        "aes_key": "aesKey",
        "corp_id": "corpId",
    }

    app_key: str
    app_secret: str
    token: str
    aes_key: str
    corp_id: str

    def constants(self) -> dict[str, Any]:
        return {"agentId": AGENT_ID, "processCode": PROCESS_CODE}

    @classmethod
    def fresh(cls) -> Credentials:
        return cls(
            app_key="ding" + secrets.token_hex(8),
            app_secret=secrets.token_urlsafe(48),
            token=secrets.token_urlsafe(16),
            aes_key=new_encoding_aes_key(),
            corp_id="ding" + secrets.token_hex(9),
        )


@dataclass(frozen=True)
class User:
    userid: str
    unionid: str
    name: str
    dept_id: int
    manager: str | None
    active: bool


class Directory(SimDirectory[User]):
    """DingTalk's contacts: unionid = `union-<userid>`, departments under the root (1)."""

    vendor = "dingtalk"

    def __init__(self, masterdata: dict[str, Any]) -> None:
        super().__init__(masterdata)
        self.by_union = {u.unionid: u for u in self.users.values()}

    def department_entry(self, unit: dict[str, Any], key: Any, parent: Any) -> dict[str, Any]:
        return {"dept_id": key, "name": unit["name"], "parent_id": parent or 1}

    def user_entry(self, person: dict[str, Any], department: Any) -> User:
        userid = person["id"]
        return User(userid, f"union-{userid}", person["name"], department,
                    person.get("manager_id"), bool(person.get("active", True)))  # fmt: skip

    def refusal(self, field: str, userid: Any, user: User | None) -> Exception:
        why = "用户不存在" if user is None else "用户已离职"
        return DingTalkError(400, "processInstanceInvalidParameter", f"{field}: {why} ({userid})")


def _iso_minutes(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(ms / 1000))


class DingTalkSimulator(VendorSimulator):
    """State and behaviour behind the DingTalk simulator app."""

    credentials_type = Credentials
    directory_type = Directory
    database = "dingtalk.sqlite3"
    schema = SCHEMA
    retry_delays = RETRY_DELAYS
    counters = ("notices_deduplicated",)
    stat_queries = {
        "instances": "SELECT status, COUNT(*) FROM instances GROUP BY status",
        "todos": "SELECT CASE WHEN deleted = 1 THEN 'deleted' WHEN done = 1 THEN 'done' ELSE "
        "'open' END, COUNT(*) FROM todos GROUP BY 1",
    }
    credentials: Credentials
    directory: Directory

    def __init__(self, data_dir: Path, **options: Unpack[SimOptions]) -> None:
        super().__init__(data_dir, **options)
        self.crypto = CallbackCrypto(
            self.credentials.token, self.credentials.aes_key, self.credentials.app_key
        )

    # -- tokens --------------------------------------------------------------------------

    def issue_token(self, body: Any) -> dict[str, Any]:
        if (
            not isinstance(body, dict)
            or body.get("appKey") != self.credentials.app_key
            or (body.get("appSecret") != self.credentials.app_secret)
        ):
            raise DingTalkError(400, "invalidClientIdOrSecret", "无效的appKey或appSecret")
        token = secrets.token_hex(16)
        self.store_token(token)
        return {"accessToken": token, "expireIn": self.token_ttl}

    # -- workflow ------------------------------------------------------------------------

    def start_instance(self, body: Any, *, by_employee: bool = False) -> str:
        if not isinstance(body, dict):
            raise DingTalkError(
                400, "processInstanceInvalidParameter", "the body must be an object"
            )
        if body.get("processCode") != PROCESS_CODE:
            raise DingTalkError(
                400, "processCodeNotFound", f"processCode: 未找到审批模板 {body.get('processCode')}"
            )
        user = self.directory.active_user(body.get("originatorUserId"), "originatorUserId")
        dept = body.get("deptId")
        if (
            isinstance(dept, bool)
            or not isinstance(dept, int)
            or dept not in self.directory.departments
        ):
            raise DingTalkError(
                400, "processInstanceInvalidParameter", f"deptId: 部门不存在 ({dept})"
            )
        if dept != user.dept_id:
            raise DingTalkError(
                400, "processInstanceInvalidParameter", f"deptId: {user.userid} 不在部门 {dept}"
            )
        form = self._form(body.get("formComponentValues"))
        approver = self.directory.approver_of(user).userid
        instance_id = secrets.token_urlsafe(18).replace("_", "x").replace("-", "y")
        now = now_ms()
        task_id = self.rng.randint(10**10, 10**11)
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO instances VALUES (?, ?, ?, ?, ?, 'RUNNING', '', ?, ?, ?, NULL, NULL)",
                (
                    instance_id,
                    PROCESS_CODE,
                    user.userid,
                    dept,
                    json.dumps(form, ensure_ascii=False),
                    approver,
                    task_id,
                    now,
                ),
            )
        self.emit(self._instance_event(instance_id, "start", staff=user.userid))
        self.emit(self._task_event(instance_id, task_id, "start", staff=approver))
        if self.auto_decide:
            self.later(self.decide_soon(lambda agree: self.finish_instance(
                instance_id, "agree" if agree else "refuse")))  # fmt: skip
        return instance_id

    def _form(self, values: Any) -> dict[str, Any]:
        if not isinstance(values, list) or not values:
            raise DingTalkError(400, "formConverterError", "formComponentValues: a non-empty list")
        form: dict[str, Any] = {}
        for i, item in enumerate(values):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise DingTalkError(
                    400, "formConverterError", f"formComponentValues[{i}]: needs a name"
                )
            name, value = item["name"], item.get("value")
            if name not in FORM_FIELDS:
                raise DingTalkError(
                    400, "formConverterError", f"formComponentValues[{i}]: 表单中没有组件 {name}"
                )
            if not isinstance(value, str):
                raise DingTalkError(400, "formConverterError", f"{name}: value must be a string")
            if name == TABLE_FIELD:
                form[name] = self._table(value)
            else:
                form[name] = value
        missing = [name for name in REQUIRED_FIELDS if not form.get(name)]
        if missing:
            raise DingTalkError(400, "formConverterError", f"{missing[0]}: 必填")
        return form

    def _table(self, value: str) -> list[list[dict[str, str]]]:
        try:
            rows = json.loads(value)
        except json.JSONDecodeError:
            raise DingTalkError(
                400, "formConverterError", f"{TABLE_FIELD}: value is not a JSON string"
            ) from None
        if not isinstance(rows, list) or not rows:
            raise DingTalkError(400, "formConverterError", f"{TABLE_FIELD}: rows of cells")
        for r, row in enumerate(rows):
            if not isinstance(row, list):
                raise DingTalkError(
                    400, "formConverterError", f"{TABLE_FIELD}[{r}]: a row is a list of cells"
                )
            for cell in row:
                if (
                    not isinstance(cell, dict)
                    or cell.get("name") not in TABLE_COLUMNS
                    or not isinstance(cell.get("value"), str)
                ):
                    raise DingTalkError(
                        400,
                        "formConverterError",
                        f"{TABLE_FIELD}[{r}]: unknown or non-string cell {cell!r}",
                    )
        return rows

    def instance(self, instance_id: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM instances WHERE id = ?", (instance_id,)).fetchone()
        if row is None:
            raise DingTalkError(
                400,
                "processInstanceInvalidParameter",
                f"processInstanceId: 审批实例不存在 {instance_id}",
            )
        form = json.loads(row["form"])
        values = []
        for name, value in form.items():
            if name == TABLE_FIELD:
                rows = [
                    {
                        "rowValue": [
                            {
                                "label": cell["name"],
                                "value": cell["value"],
                                "key": f"{cell['name']}-{c}",
                            }
                            for c, cell in enumerate(cells)
                        ],
                        "rowNumber": f"TableField_{r + 1}",
                    }
                    for r, cells in enumerate(value)
                ]
                values.append(
                    {
                        "id": "TableField_1",
                        "name": name,
                        "componentType": "TableField",
                        "value": json.dumps(rows, ensure_ascii=False),
                    }
                )
            else:
                values.append(
                    {
                        "id": f"TextField_{name}",
                        "name": name,
                        "componentType": "TextField",
                        "value": value,
                    }
                )
        finished = row["status"] != "RUNNING"
        return {
            "title": f"{self.directory.users[row['originator']].name}提交的报销",
            "createTime": _iso_minutes(row["create_ms"]),
            "finishTime": _iso_minutes(row["finish_ms"]) if row["finish_ms"] else None,
            "originatorUserId": row["originator"],
            "originatorDeptId": str(row["dept_id"]),
            "status": row["status"],
            "result": row["result"],
            "businessId": f"{row['create_ms']}{row['task_id'] % 1000:03d}",
            "approverUserIds": [row["approver"]],
            "ccUserIds": [],
            "formComponentValues": values,
            "operationRecords": [],
            "tasks": [
                {
                    "taskId": row["task_id"],
                    "userId": row["approver"],
                    "status": "COMPLETED" if finished else "RUNNING",
                    "result": row["result"].upper() or "NONE",
                    "activityId": "approve",
                    "createTime": _iso_minutes(row["create_ms"]),
                }
            ],
        }

    def list_instance_ids(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("processCode") != PROCESS_CODE:
            raise DingTalkError(400, "processCodeNotFound", "processCode: 未找到审批模板")
        start, end = body.get("startTime"), body.get("endTime")
        if not isinstance(start, int) or (end is not None and not isinstance(end, int)):
            raise DingTalkError(
                400, "processInstanceInvalidParameter", "startTime: epoch milliseconds"
            )
        size = body.get("maxResults") or 20
        if not isinstance(size, int) or not 1 <= size <= 20:
            raise DingTalkError(400, "processInstanceInvalidParameter", "maxResults: 1-20")
        offset = int(body.get("nextToken") or 0)
        users = body.get("userIds") or None
        rows = self.conn.execute(
            "SELECT id, originator FROM instances WHERE create_ms >= ? AND create_ms <= ? "
            "ORDER BY create_ms, id",
            (start, end if end is not None else now_ms()),
        ).fetchall()
        ids = [r["id"] for r in rows if users is None or r["originator"] in users]
        page = ids[offset : offset + size]
        more = offset + size < len(ids)
        return {
            "result": {"list": page, "nextToken": str(offset + size) if more else None},
            "success": True,
        }

    def finish_instance(self, instance_id: str, result: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM instances WHERE id = ?", (instance_id,)).fetchone()
        if row is None or row["status"] != "RUNNING":
            raise DingTalkError(
                400, "processInstanceInvalidParameter", f"{instance_id} is not running"
            )
        remark = APPROVE_REMARK if result == "agree" else REFUSE_REMARK
        now = now_ms()
        if result in ("agree", "refuse"):
            status, change = "COMPLETED", "finish"
        else:  # terminate: the originator revoked it
            status, change, remark = "TERMINATED", "terminate", "撤销"
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE instances SET status = ?, result = ?, finish_ms = ?, remark = ? WHERE "
                "id = ?",
                (status, result if change == "finish" else "", now, remark, instance_id),
            )
        if change == "finish":
            self.emit(
                self._task_event(
                    instance_id,
                    row["task_id"],
                    "finish",
                    staff=row["approver"],
                    result=result,
                    remark=remark,
                )
            )
        self.emit(
            self._instance_event(
                instance_id,
                change,
                staff=row["approver"],
                result=result if change == "finish" else None,
                remark=remark,
            )
        )
        return {"instanceId": instance_id, "status": status}

    def _instance_event(
        self,
        instance_id: str,
        change: str,
        *,
        staff: str,
        result: str | None = None,
        remark: str | None = None,
    ) -> dict[str, Any]:
        now = now_ms()
        event: dict[str, Any] = {
            "EventType": "bpms_instance_change",
            "EventTime": now,
            "CorpId": self.credentials.corp_id,
            "eventId": uuid.uuid4().hex,
            "processInstanceId": instance_id,
            "processCode": PROCESS_CODE,
            "bizCategoryId": "",
            "type": change,
            "title": "报销",
            "staffId": staff,
            "createTime": now,
            "url": f"https://aflow.dingtalk.com/dingtalk/mobile/homepage.htm#/approval?procInstId={instance_id}",
        }
        if result is not None:
            event["result"] = result
        if change != "start":
            event["finishTime"] = now
        if remark:
            event["remark"] = remark
        return event

    def _task_event(
        self,
        instance_id: str,
        task_id: int,
        change: str,
        *,
        staff: str,
        result: str | None = None,
        remark: str | None = None,
    ) -> dict[str, Any]:
        event = self._instance_event(instance_id, change, staff=staff, result=result, remark=remark)
        event.update({"EventType": "bpms_task_change", "taskId": task_id})
        return event

    # -- todo ----------------------------------------------------------------------------

    def create_todo(self, union_id: str, body: Any) -> dict[str, Any]:
        if union_id not in self.directory.by_union:
            raise DingTalkError(400, "todoUserNotFound", f"unionId: 用户不存在 {union_id}")
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("subject"), str)
            or not body["subject"]
        ):
            raise DingTalkError(400, "invalidParameter", "subject: 必填")
        executors = body.get("executorIds") or []
        if not isinstance(executors, list) or any(
            e not in self.directory.by_union for e in executors
        ):
            raise DingTalkError(400, "todoUserNotFound", f"executorIds: 用户不存在 {executors}")
        todo_id = uuid.uuid4().hex[:24]
        now = now_ms()
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO todos (id, union_id, source_id, body, created_ms) VALUES (?, ?, "
                "?, ?, ?)",
                (
                    todo_id,
                    union_id,
                    body.get("sourceId"),
                    json.dumps(body, ensure_ascii=False),
                    now,
                ),
            )
        if self.auto_decide and body.get("actionList"):
            self.later(self.press(todo_id))
        return self.todo(todo_id)

    def todo(self, todo_id: str) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT * FROM todos WHERE id = ? AND deleted = 0", (todo_id,)
        ).fetchone()
        if row is None:
            raise DingTalkError(404, "todoNotFound", f"taskId: 待办不存在 {todo_id}")
        body = json.loads(row["body"])
        return {
            "id": row["id"],
            "subject": body.get("subject"),
            "description": body.get("description"),
            "sourceId": row["source_id"],
            "creatorId": body.get("creatorId"),
            "executorIds": body.get("executorIds") or [],
            "participantIds": body.get("participantIds") or [],
            "detailUrl": body.get("detailUrl"),
            "done": bool(row["done"]),
            "createdTime": row["created_ms"],
            "bizTag": "",
            "requestId": uuid.uuid4().hex,
        }

    def todo_by_source(self, union_id: str, source_id: str) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT id FROM todos WHERE union_id = ? AND source_id = ? AND deleted = 0 ORDER "
            "BY created_ms DESC",
            (union_id, source_id),
        ).fetchone()
        if row is None:
            raise DingTalkError(404, "todoNotFound", f"sourceId: 待办不存在 {source_id}")
        return self.todo(row["id"])

    def update_todo(self, union_id: str, todo_id: str, body: Any) -> dict[str, Any]:
        self._own_todo(union_id, todo_id)
        if not isinstance(body, dict):
            raise DingTalkError(400, "invalidParameter", "the body must be an object")
        with transaction(self.conn):
            if "done" in body:
                self.conn.execute(
                    "UPDATE todos SET done = ? WHERE id = ?", (1 if body["done"] else 0, todo_id)
                )
            if isinstance(body.get("subject"), str):
                stored = json.loads(
                    self.conn.execute("SELECT body FROM todos WHERE id = ?", (todo_id,)).fetchone()[
                        0
                    ]
                )
                stored["subject"] = body["subject"]
                self.conn.execute(
                    "UPDATE todos SET body = ? WHERE id = ?",
                    (json.dumps(stored, ensure_ascii=False), todo_id),
                )
        return {"result": True, "requestId": uuid.uuid4().hex}

    def delete_todo(self, union_id: str, todo_id: str) -> dict[str, Any]:
        self._own_todo(union_id, todo_id)
        with transaction(self.conn):
            self.conn.execute("UPDATE todos SET deleted = 1 WHERE id = ?", (todo_id,))
        return {"result": True, "requestId": uuid.uuid4().hex}

    def _own_todo(self, union_id: str, todo_id: str) -> None:
        row = self.conn.execute(
            "SELECT union_id FROM todos WHERE id = ? AND deleted = 0", (todo_id,)
        ).fetchone()
        if row is None or row["union_id"] != union_id:
            raise DingTalkError(404, "todoNotFound", f"taskId: 待办不存在 {todo_id}")

    async def press(self, todo_id: str, decision: str | None = None) -> dict[str, Any]:
        """The todo's executor presses a button: 同意, or 拒绝 at `reject_rate`."""
        await asyncio.sleep(0.02)
        body = json.loads(
            self.conn.execute("SELECT body FROM todos WHERE id = ?", (todo_id,)).fetchone()[0]
        )
        if decision is None:
            decision = "approve" if self.approves() else "reject"
        action = next(
            (a for a in body.get("actionList") or [] if a.get("actionKey") == decision), None
        )
        if action is None or action.get("actionType") != 2 or not action.get("url"):
            return {"pressed": False, "reason": f"the todo has no {decision} button"}
        param = action.get("param") or {}
        sent = str(param.get("body", "")).encode("utf-8")
        headers = dict(param.get("header") or {})
        status, answer = await self.press_button(todo_id, decision, action["url"], sent, headers)
        return {"pressed": True, "decision": decision, "status": status, "answer": answer}

    # -- callbacks -----------------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        """Queue an event for the callback URL (nothing is sent without one)."""
        self.queue_callback(
            {"event_id": event["eventId"], "event": json.dumps(event, ensure_ascii=False)}
        )

    def envelope(self, event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        """The query and body of one push, as DingTalk builds them."""
        timestamp = str(now_ms())
        sealed = self.crypto.envelope(json.dumps(event, ensure_ascii=False), timestamp=timestamp)
        query = {
            "msg_signature": sealed["msg_signature"],
            "timestamp": timestamp,
            "nonce": sealed["nonce"],
        }
        return query, orjson.dumps({"encrypt": sealed["encrypt"]})

    async def post_callback(self, row: Any) -> httpx.Response:
        query, body = self.envelope(json.loads(row["event"]))
        return await self.client().post(
            row["url"], params=query, content=body, headers={"content-type": "application/json"}
        )

    def reply_problem(self, response: httpx.Response) -> str | None:
        """None when the reply is the encrypted `success`; else why not."""
        problem = super().reply_problem(response)
        if problem is not None:
            return problem
        try:
            reply = orjson.loads(response.content)
            text = self.crypto.open(
                reply["msg_signature"], str(reply["timeStamp"]), reply["nonce"], reply["encrypt"]
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return f"the reply is not the encrypted success: {exc}"
        return None if text == SUCCESS else f"the reply decrypts to {text!r}, not success"

    # -- work notifications (工作通知) ---------------------------------------------------

    def send_work_notice(self, body: Any) -> int:
        """`topapi/message/corpconversation/asyncsend_v2`: a text work notification from the
        app to its users; the task id. As DingTalk does, the same content reaches the same user
        once a day (a repeat is accepted and dropped), and users who are unknown or have left
        are accepted and not reached (`getsendresult` lists them)."""
        if not isinstance(body, dict):
            raise TopApiError(400002, "参数错误: body")
        if body.get("agent_id") != AGENT_ID:
            raise TopApiError(400014, f"agent_id: 应用不存在 {body.get('agent_id')}")
        users = [u for u in str(body.get("userid_list") or "").split(",") if u]
        if not users or len(users) > 100:
            raise TopApiError(400002, "参数错误: userid_list 须为 1-100 个 userid")
        msg = body.get("msg")
        text = msg.get("text") if isinstance(msg, dict) else None
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(msg, dict) or msg.get("msgtype") != "text":
            raise TopApiError(400002, "参数错误: msg.msgtype (this simulator takes text)")
        if not isinstance(content, str) or not content.strip():
            raise TopApiError(400002, "参数错误: msg.text.content")
        now_ms = int(time.time() * 1000)
        day = time.strftime("%Y-%m-%d", time.gmtime(now_ms / 1000 + 8 * 3600))
        task_id = 0
        with transaction(self.conn):
            for userid in users:
                user = self.directory.users.get(userid)
                seen = self.conn.execute(
                    "SELECT 1 FROM notices WHERE userid = ? AND content = ? AND day = ? AND "
                    "delivered = 1",
                    (userid, content, day),
                ).fetchone()
                delivered = user is not None and user.active and seen is None
                if seen is not None:
                    self.counts["notices_deduplicated"] += 1
                cursor = self.conn.execute(
                    "INSERT INTO notices (userid, content, day, delivered, sent_ms) VALUES "
                    "(?, ?, ?, ?, ?)",
                    (userid, content, day, int(delivered), now_ms),
                )
                task_id = task_id or int(cursor.lastrowid or 0)
        return task_id

    def notices(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM notices ORDER BY task_id").fetchall()
        return [
            {"task_id": r["task_id"], "userid": r["userid"], "content": r["content"],
             "delivered": bool(r["delivered"])}
            for r in rows
        ]  # fmt: skip


def create_dingtalk_app(sim: DingTalkSimulator) -> FastAPI:
    """The simulator's HTTP app: DingTalk's paths at the root, `/_sim/*` to steer it."""

    app = vendor_app(sim, "finoa DingTalk simulator")
    add_press_route(app, sim)

    @app.exception_handler(DingTalkError)
    async def dingtalk_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DingTalkError)
        return exc.response()

    @app.exception_handler(TopApiError)
    async def topapi_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TopApiError)
        return json_response(
            {"errcode": exc.errcode, "errmsg": exc.errmsg, "request_id": uuid.uuid4().hex}
        )

    async def body_of(request: Request) -> Any:
        return await json_body(
            request, lambda: DingTalkError(400, "invalidParameter", "the body is not JSON")
        )

    def guard(request: Request) -> None:
        if not sim.limit.allow():
            raise DingTalkError(403, "Forbidden.AccessDenied.QpsLimitForApi", "调用频率超过限制")
        state = sim.token_state(request.headers.get("x-acs-dingtalk-access-token"))
        if state != "ok":
            message = "access_token已过期" if state == "expired" else "不合法的access_token"
            raise DingTalkError(401, "InvalidAuthentication", message)

    def topapi_guard(request: Request) -> None:
        if not sim.limit.allow():
            raise TopApiError(90018, "当前企业调用该接口的频率超过限制")
        state = sim.token_state(request.query_params.get("access_token"))
        if state != "ok":
            raise TopApiError(42001 if state == "expired" else 40014, "不合法的access_token")

    @app.post("/v1.0/oauth2/accessToken")
    async def access_token(request: Request) -> Response:
        return json_response(sim.issue_token(await body_of(request)))

    @app.post("/v1.0/workflow/processInstances")
    async def start(request: Request) -> Response:
        guard(request)
        return json_response({"instanceId": sim.start_instance(await body_of(request))})

    @app.get("/v1.0/workflow/processInstances")
    async def get_instance(request: Request, processInstanceId: str = "") -> Response:  # noqa: N803
        guard(request)
        return json_response({"result": sim.instance(processInstanceId), "success": True})

    @app.post("/v1.0/workflow/processes/instanceIds/query")
    async def list_ids(request: Request) -> Response:
        guard(request)
        return json_response(sim.list_instance_ids(await body_of(request)))

    @app.post("/v1.0/todo/users/{union_id}/tasks")
    async def create_todo(union_id: str, request: Request) -> Response:
        guard(request)
        return json_response(sim.create_todo(union_id, await body_of(request)))

    @app.get("/v1.0/todo/users/{union_id}/tasks/sources/{source_id}")
    async def todo_by_source(union_id: str, source_id: str, request: Request) -> Response:
        guard(request)
        return json_response(sim.todo_by_source(union_id, source_id))

    @app.put("/v1.0/todo/users/{union_id}/tasks/{todo_id}")
    async def update_todo(union_id: str, todo_id: str, request: Request) -> Response:
        guard(request)
        return json_response(sim.update_todo(union_id, todo_id, await body_of(request)))

    @app.delete("/v1.0/todo/users/{union_id}/tasks/{todo_id}")
    async def delete_todo(union_id: str, todo_id: str, request: Request) -> Response:
        guard(request)
        return json_response(sim.delete_todo(union_id, todo_id))

    @app.post("/topapi/v2/user/get")
    async def user_get(request: Request) -> Response:
        topapi_guard(request)
        body = await body_of(request) or {}
        user = sim.directory.users.get(str(body.get("userid"))) if isinstance(body, dict) else None
        if user is None or not user.active:
            raise TopApiError(60121, "找不到该用户")
        return json_response(
            {
                "errcode": 0,
                "errmsg": "ok",
                "result": {
                    "userid": user.userid,
                    "unionid": user.unionid,
                    "name": user.name,
                    "dept_id_list": [user.dept_id],
                    "active": True,
                    "manager_userid": user.manager,
                },
            }
        )

    @app.post("/topapi/message/corpconversation/asyncsend_v2")
    async def work_notice(request: Request) -> Response:
        topapi_guard(request)
        task_id = sim.send_work_notice(await body_of(request))
        return json_response({"errcode": 0, "errmsg": "ok", "task_id": task_id,
                              "request_id": uuid.uuid4().hex[:12]})  # fmt: skip

    @app.get("/_sim/notices")
    async def notices() -> Response:
        return json_response(sim.notices())

    @app.post("/topapi/v2/department/listsub")
    async def department_listsub(request: Request) -> Response:
        topapi_guard(request)
        body = await body_of(request) or {}
        dept = body.get("dept_id", 1) if isinstance(body, dict) else None
        if dept != 1 and dept not in sim.directory.departments:
            raise TopApiError(60003, "部门不存在")
        subs = [
            d
            for d in sim.directory.departments.values()
            if d["parent_id"] == dept and d["dept_id"] != dept
        ]
        return json_response({"errcode": 0, "errmsg": "ok", "result": subs})

    @app.post("/topapi/v2/user/list")
    async def user_list(request: Request) -> Response:
        topapi_guard(request)
        body = await body_of(request) or {}
        dept = body.get("dept_id") if isinstance(body, dict) else None
        if dept not in sim.directory.departments:
            raise TopApiError(60003, "部门不存在")
        cursor, size = int(body.get("cursor") or 0), int(body.get("size") or 100)
        people = [u for u in sim.directory.users.values() if u.dept_id == dept and u.active]
        page = people[cursor : cursor + size]
        more = cursor + size < len(people)
        return json_response(
            {
                "errcode": 0,
                "errmsg": "ok",
                "result": {
                    "has_more": more,
                    "next_cursor": cursor + size if more else None,
                    "list": [
                        {
                            "userid": u.userid,
                            "unionid": u.unionid,
                            "name": u.name,
                            "dept_id_list": [u.dept_id],
                        }
                        for u in page
                    ],
                },
            }
        )

    @app.post("/_sim/instances")
    async def employee_starts(request: Request) -> Response:
        """An employee starts an expense approval in DingTalk's own app."""
        body = await body_of(request) or {}
        if isinstance(body, dict):
            body.setdefault("processCode", PROCESS_CODE)
        return json_response({"instanceId": sim.start_instance(body, by_employee=True)})

    @app.get("/_sim/instances/{instance_id}")
    async def instance(instance_id: str) -> Response:
        return json_response(sim.instance(instance_id))

    @app.post("/_sim/instances/{instance_id}/finish")
    async def finish(instance_id: str, request: Request) -> Response:
        """Decide a running instance by hand: `{"result": "agree" | "refuse" | "terminate"}`."""
        body = await body_of(request) or {}
        result = body.get("result") if isinstance(body, dict) else None
        if result not in ("agree", "refuse", "terminate"):
            raise DingTalkError(400, "invalidParameter", "result: agree, refuse or terminate")
        return json_response(sim.finish_instance(instance_id, result))

    @app.get("/_sim/todos")
    async def todos() -> Response:
        rows = sim.conn.execute("SELECT id FROM todos ORDER BY created_ms").fetchall()
        out = []
        for row in rows:
            with contextlib.suppress(DingTalkError):
                out.append(sim.todo(row["id"]))
        return json_response(out)

    return app


def run_dingtalk_simulator(host: str, port: int, sim: DingTalkSimulator) -> None:
    """Serve the DingTalk simulator until interrupted."""
    serve(create_dingtalk_app(sim), host, port)
