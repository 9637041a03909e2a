"""A Weaver e-cology (泛微 E9) simulator: what the hub meets at a real e-cology, in one process.

It enforces what e-cology enforces:

- **The E9 token handshake.** `regist` (headers `appid`, `cpk`) answers the `secret` and the
  server's RSA public key `spk`; `applytoken` (headers `appid`, `secret` = RSA(spk, secret),
  `time` = seconds wanted) answers a token that expires after `time` or `--token-ttl`,
  whichever is shorter. Every E9 REST call needs headers `appid`, `token` and `userid` =
  RSA(spk, user id); an unknown or expired token is e-cology's
  `{"code": -1, "msg": "token不存在或者超时！", "status": false}`.
- **Base data.** Users and departments (HRM) are the sample company's; a request or todo for
  an unknown or departed user, or an unknown department, is refused as e-cology refuses it.
- **No idempotency on requests**: `doCreateRequest` and `doCreateWorkflowRequest` create a new
  request every time, as e-cology does. Unified todos (统一待办) are keyed by (flowid,
  receiver) and ordered by `receivets`: a record older than the one held changes nothing.
- **SOAP `WorkflowService`** with its WSDL at `/services/WorkflowService?wsdl`; a failure is a
  negative request id, as e-cology answers.
- **OA-led requests.** A request made by `doCreateRequest` or SOAP runs the expense
  workflow: the simulated approver archives it (归档) or rejects it (退回, at `reject_rate`)
  and the flow action at its end posts the result (`requestid`, `operate`
  archive/reject/withdraw, `finoadh`) to `--callback-url`, signed as below.
  `getMyWorkflowRequestList` pages through the requests the acting user made, each with its
  `lastOperateTime`, so a sweep can find a result whose callback was lost.
- **Employees start requests.** `POST /_sim/requests` (`creator` = the employee's login id,
  `requestName`, `mainData` and `detailData` as `doCreateRequest` takes them) submits a request
  as that employee, refused as e-cology refuses a bad one. Every submitted request, whoever
  made it, runs the flow action on the creator's node: it posts `operate` = `create`
  (`requestid`, `workflowid`, `creator`) to `--callback-url`, signed as below, and a
  request's later result is posted only once that one was answered.
  `getWorkflowRequest` answers the main table and the detail tables.
- **Message centre (消息中心).** `sendCustomMessageSingle` (form fields, the E9 token
  headers) sends a message of a message source (消息来源) whose `code` e-cology knows (the
  console's `message_code`; another is `NO_PERMISSION`) to the receivers of exactly one of
  `userIdList` (HRM ids), `loginIdList` or `workCodeList` (comma-separated), each known and
  employed (else `USER_EXCEPTION`, naming them); `title` or `context` must be given
  (`PARAM_ERROR`). Refusals are `{"code": …, "msg": …, "status": false}`; a message sent is
  `status` true and kept, listed at `/_sim/messages`.
- **Approvers.** When a todo opens, the simulated approver acts on it (批准, or 退回 at
  `reject_rate`) and e-cology's flow action posts the decision to `--callback-url`, signed
  (`timestamp`, `sign` = hex HMAC-SHA256 of `timestamp + "\\n" + body` with the callback
  secret), retrying with capped backoff while the hub answers 429/5xx or cannot be reached.

The credentials are made at first start and kept in the data directory
(`credentials.json`); `finoa sim weaver --show-credentials` prints them with e-cology's
names: `appid`, `secret`, `spk`, plus `syscode` (the unified-todo system code),
`message_code` (the hub's message source) and `callback_secret`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from finoa.connectors.simulation import (
    FaultMiddleware,
    FaultState,
    add_sim_routes,
    json_response,
    now_iso,
    serve,
)
from finoa.connectors.weaver import crypto
from finoa.connectors.weaver.inbound import callback_signature
from finoa.connectors.weaver.mapping import weaver_time
from finoa.connectors.weaver.wsdl import WORKFLOW_LISTS, WORKFLOW_NS, workflow_wsdl
from finoa.services.masterdata import sample_masterdata
from finoa.soap.envelope import (
    SOAP_CONTENT_TYPE,
    SoapRequestError,
    element_data,
    fault_envelope,
    read_call,
    response_envelope,
)

TOKEN_ERROR = "token不存在或者超时！"
DEFAULT_TOKEN_TTL = 1800
WORKFLOWS = {"6": "费用报销 expense claim"}
DETAIL_TABLE = "formtable_main_214_dt1"
# HRM status: 0 试用, 1 正式, 2 临时, 3 试用延期 are employed; 4 解聘, 5 离职, 6 退休, 7 无效 not.
EMPLOYED = {"0", "1", "2", "3"}
CALLBACK_ATTEMPTS = 12
NODE_APPROVAL, NODE_ARCHIVED = ("部门经理审批", "1"), ("归档", "3")
NODE_CREATED = ("申请人提交", "0")  # where a rejected or withdrawn request comes back to
REQUEST_ENDS = {"archive": NODE_ARCHIVED, "reject": NODE_CREATED, "withdraw": NODE_CREATED}
COMPANY_TIMEZONE = "Asia/Shanghai"
REQUEST_APPROVER = "E0010"  # the expense workflow's approver node (部门经理)


def weaver_error(message: str, code: int = -1) -> dict[str, Any]:
    """E9's error shape for the auth layer (HTTP 200, status false)."""
    return {"code": code, "msg": message, "msgShowType": "none", "status": False}


@dataclass(frozen=True)
class WeaverCredentials:
    appid: str
    secret: str
    private_key: str  # base64 DER PKCS#8; never shown
    syscode: str
    callback_secret: str
    message_code: str = "526"  # the message source (消息来源) made for the hub

    @property
    def spk(self) -> str:
        return crypto.public_key_text(crypto.load_private_key(self.private_key))

    def console(self) -> dict[str, str]:
        """What e-cology's console shows an integrator, by e-cology's names."""
        return {
            "appid": self.appid,
            "secret": self.secret,
            "spk": self.spk,
            "syscode": self.syscode,
            "message_code": self.message_code,
            "callback_secret": self.callback_secret,
        }


def load_credentials(data_dir: Path) -> WeaverCredentials:
    """The simulator's credentials, made at first use and kept in `credentials.json`."""
    path = data_dir / "credentials.json"
    if path.exists():
        return WeaverCredentials(**json.loads(path.read_text()))
    data_dir.mkdir(parents=True, exist_ok=True)
    made = WeaverCredentials(
        appid=str(uuid.uuid4()).upper(),
        secret=str(uuid.uuid4()),
        private_key=crypto.private_key_text(crypto.new_private_key()),
        syscode="finoa",
        callback_secret=secrets.token_urlsafe(24),
    )
    path.write_text(json.dumps(made.__dict__))
    path.chmod(0o600)
    return made


@dataclass
class Todo:
    flowid: str
    receiver: str
    record: dict[str, Any]
    receivets: int
    isremark: str
    history: list[str] = field(default_factory=list)


@dataclass
class Callback:
    eventid: str
    body: bytes
    attempts: int = 0
    outcome: str = "pending"
    last_status: int | None = None
    after: str | None = None  # the event whose delivery this one waits for
    settled: asyncio.Event = field(default_factory=asyncio.Event)


class WeaverSimulator:
    """The state of one simulated e-cology: tokens, requests, todos, callbacks."""

    def __init__(
        self,
        credentials: WeaverCredentials,
        *,
        callback_url: str | None,
        token_ttl: float,
        reject_rate: float,
        auto_decide: bool,
        clock: Any = time.time,
    ) -> None:
        self.credentials = credentials
        self.key = crypto.load_private_key(credentials.private_key)
        self.callback_url = callback_url
        self.token_ttl = token_ttl
        self.reject_rate = reject_rate
        self.auto_decide = auto_decide
        self.clock = clock
        self.rng = random.Random(7)
        self.tokens: dict[str, float] = {}
        self.registered_cpk: str | None = None
        company = sample_masterdata()
        self.departments = {
            unit["id"]: {
                "id": str(index),
                "departmentcode": unit["id"],
                "departmentname": unit["name"],
                "supdepid": unit["parent_id"] or "0",
            }
            for index, unit in enumerate(company["org_units"], start=1)
        }
        self.users = {
            person["id"]: {
                "id": str(index),
                "loginid": person["id"],
                "workcode": person["id"],
                "lastname": person["name"],
                "departmentid": self.departments[person["department_id"]]["id"],
                "departmentcode": person["department_id"],
                "email": person.get("email") or "",
                "status": "1" if person.get("active", True) else "5",
            }
            for index, person in enumerate(company["employees"], start=1)
        }
        self.user_ids = {u["id"]: login for login, u in self.users.items()}
        self.request_ids = itertools.count(447_001)
        self.requests: dict[int, dict[str, Any]] = {}
        self.todos: dict[tuple[str, str], Todo] = {}
        self.callbacks: dict[str, Callback] = {}
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.messages: list[dict[str, Any]] = []
        self.counts = {"tokens_issued": 0, "tokens_refused": 0, "requests": 0, "todo_records": 0,
                       "messages_refused": 0}  # fmt: skip
        self.http: httpx.AsyncClient | None = None

    # -- auth -------------------------------------------------------------------------------
    def regist(self, appid: str, cpk: str) -> dict[str, Any]:
        if not hmac.compare_digest(appid.encode(), self.credentials.appid.encode()):
            return weaver_error("appid不存在或未授权")
        try:
            crypto.load_public_key(cpk)
        except ValueError:
            return weaver_error("cpk不是有效的RSA公钥")
        self.registered_cpk = cpk
        secret = self.credentials.secret
        # Older e-cology releases spell the field `secrit`; clients read either.
        return {"code": 0, "msg": "ok", "status": True, "secret": secret, "secrit": secret,
                "spk": self.credentials.spk}  # fmt: skip

    def applytoken(self, appid: str, encrypted_secret: str, lifetime: str) -> dict[str, Any]:
        if not hmac.compare_digest(appid.encode(), self.credentials.appid.encode()):
            return weaver_error("appid不存在或未授权")
        try:
            secret = crypto.decrypt(self.key, encrypted_secret)
        except ValueError:
            secret = ""
        if not hmac.compare_digest(secret.encode(), self.credentials.secret.encode()):
            self.counts["tokens_refused"] += 1
            return weaver_error("secret解密失败或不正确")
        try:
            wanted = float(lifetime) if lifetime else self.token_ttl
        except ValueError:
            wanted = self.token_ttl
        token = str(uuid.uuid4())
        self.tokens[token] = self.clock() + max(1.0, min(wanted, self.token_ttl))
        self.counts["tokens_issued"] += 1
        return {"code": 0, "msg": "获取成功!", "msgShowType": "none", "status": True,
                "token": token}  # fmt: skip

    def caller(self, headers: Mapping[str, str]) -> dict[str, Any] | str:
        """The user a call acts as, or e-cology's error message (a str)."""
        if headers.get("appid") != self.credentials.appid:
            return "appid不存在或未授权"
        expires = self.tokens.get(headers.get("token", ""))
        if expires is None or expires <= self.clock():
            self.tokens.pop(headers.get("token", ""), None)
            return TOKEN_ERROR
        try:
            user_id = crypto.decrypt(self.key, headers.get("userid", ""))
        except ValueError:
            return "userid解密失败"
        user = self.users.get(self.user_ids.get(user_id, user_id))
        if user is None or user["status"] not in EMPLOYED:
            return f"人员[{user_id}]不存在或已离职"
        return user

    # -- workflow requests --------------------------------------------------------------------
    def employed(self, login: str) -> dict[str, Any] | None:
        user = self.users.get(login) or self.users.get(self.user_ids.get(login, ""))
        return user if user is not None and user["status"] in EMPLOYED else None

    def create_request(
        self,
        creator: dict[str, Any],
        workflow_id: str,
        name: str,
        main: list[dict[str, Any]],
        details: list[Any],
        channel: str,
        *,
        callback: bool = True,
    ) -> tuple[int | None, str]:
        """A new request (no idempotency), or (None, why); `callback` false loses the creator
        node's flow action on the way."""
        if workflow_id not in WORKFLOWS:
            return None, f"workflowId {workflow_id} 不存在"
        if not name:
            return None, "requestName 不能为空"
        fields = {str(f.get("fieldName")): f.get("fieldValue") for f in main}
        try:
            amount = Decimal(str(fields.get("je", "")))
        except InvalidOperation:
            return None, "主表字段 je 必须是金额"
        if amount <= 0:
            return None, "主表字段 je 必须大于0"
        applicant = fields.get("sqr")
        if applicant is not None and self.employed(str(applicant)) is None:
            return None, f"申请人 {applicant} 不存在或已离职"
        department = fields.get("sqbm")
        if department is not None and department not in self.departments:
            return None, f"部门 {department} 不存在"
        request_id = next(self.request_ids)
        self.requests[request_id] = {
            "requestid": request_id,
            "workflowId": workflow_id,
            "requestName": name,
            "creator": creator["loginid"],
            "mainData": fields,
            "detailData": details,
            "channel": channel,
            "node": NODE_APPROVAL,
            "result": "",
            "created_at": now_iso(),
            "createTime": self.now_text(),
            "lastOperateTime": self.now_text(),
        }
        self.counts["requests"] += 1
        started = f"weaver-request-{request_id}-create"
        body = {"eventid": started, "requestid": str(request_id), "operate": "create",
                "workflowid": workflow_id, "creator": creator["loginid"],
                "operatetime": self.now_text()}  # fmt: skip
        if callback:
            self._queue(Callback(started, orjson.dumps(body)))
        if self.auto_decide:
            archive = self.rng.random() >= self.reject_rate
            self.end_request(request_id, "archive" if archive else "reject")
        return request_id, ""

    def now_text(self) -> str:
        """Now as e-cology writes times: `yyyy-MM-dd HH:mm:ss` in the company's zone."""
        return weaver_time(datetime.fromtimestamp(self.clock(), UTC), COMPANY_TIMEZONE)

    def end_request(
        self, request_id: int, result: str, *, remark: str | None = None, callback: bool = True
    ) -> str | None:
        """The request ends (归档, 退回 or 撤回); its flow action posts the result to the hub
        unless `callback` is false (a callback lost on the way). None: no such request."""
        request = self.requests.get(request_id)
        if request is None or result not in REQUEST_ENDS:
            return None
        operator = request["creator"] if result == "withdraw" else REQUEST_APPROVER
        default = {"archive": "同意", "reject": "费用超标准，退回", "withdraw": "申请人撤回"}
        request.update(
            node=REQUEST_ENDS[result],
            result=result,
            lastOperator=operator,
            remark=remark or default[result],
            lastOperateTime=self.now_text(),
        )
        eventid = f"weaver-request-{request_id}-{result}"
        body = {
            "eventid": eventid,
            "requestid": str(request_id),
            "operate": result,
            "operator": operator,
            "remark": request["remark"],
            "finoadh": str(request["mainData"].get("finoadh") or ""),
            "operatetime": request["lastOperateTime"],
        }
        if callback:
            self._queue(
                Callback(eventid, orjson.dumps(body), after=f"weaver-request-{request_id}-create")
            )
        return eventid

    def _queue(self, callback: Callback) -> None:
        if callback.eventid not in self.callbacks:
            self.callbacks[callback.eventid] = callback
            self.queue.put_nowait(callback.eventid)

    def workflow_request(self, found: Mapping[str, Any]) -> dict[str, Any]:
        """`getWorkflowRequest`'s data: the request, its main table and its detail tables."""
        fields = [{"fieldName": k, "fieldValue": v} for k, v in found["mainData"].items()]
        details = [
            {
                "tableDBName": str(table.get("tableDBName") or DETAIL_TABLE),
                "workflowRequestTableRecords": [
                    {
                        "recordOrder": order,
                        "workflowRequestTableFields": list(
                            record.get("workflowRequestTableFields") or []
                        ),
                    }  # fmt: skip
                    for order, record in enumerate(table.get("workflowRequestTableRecords") or [])
                    if isinstance(record, Mapping)
                ],
            }
            for table in found["detailData"]
            if isinstance(table, Mapping)
        ]
        return {
            "requestId": str(found["requestid"]),
            "requestName": found["requestName"],
            "creatorId": self.users[found["creator"]]["id"],
            "workflowBaseInfo": {"workflowId": found["workflowId"]},
            "workflowMainTableInfo": {"requestRecords": [{"workflowRequestTableFields": fields}]},
            "workflowDetailTableInfos": details,
        }

    def my_requests(self, creator: str, page: int, size: int) -> list[dict[str, Any]]:
        """`getMyWorkflowRequestList`: the requests `creator` made, newest first, a page."""
        mine = [r for r in self.requests.values() if r["creator"] == creator]
        mine.sort(key=lambda r: -int(r["requestid"]))
        return [
            {
                "requestId": str(r["requestid"]),
                "requestName": r["requestName"],
                "workflowBaseInfo": {
                    "workflowId": r["workflowId"],
                    "workflowName": WORKFLOWS[r["workflowId"]],
                },
                "createTime": r["createTime"],
                "lastOperateTime": r["lastOperateTime"],
                "currentNodeName": r["node"][0],
                "currentNodeType": r["node"][1],
                "lastOperateType": r["result"],
                "lastOperatorName": r.get("lastOperator", ""),
                "remark": r.get("remark", ""),
            }  # fmt: skip
            for r in mine[(page - 1) * size : page * size]
        ]

    # -- message centre ----------------------------------------------------------------------
    def send_message(self, caller: Mapping[str, Any], form: Mapping[str, Any]) -> dict[str, Any]:
        """`sendCustomMessageSingle`: the message kept for its receivers, or the refusal."""
        answer = self._message_refusal(form)
        if answer is not None:
            self.counts["messages_refused"] += 1
            return answer
        kind, listed = next((k, str(form[k])) for k in RECEIVER_LISTS if form.get(k))
        receivers = [self._receiver(kind, name) for name in _names(listed)]
        self.messages.append(
            {
                "code": str(form["code"]),
                "receivers": [r["loginid"] for r in receivers if r is not None],
                "userids": [r["id"] for r in receivers if r is not None],
                "creater": str(form.get("creater") or caller["id"]),
                "title": str(form.get("title") or ""),
                "context": str(form.get("context") or ""),
                "linkUrl": str(form.get("linkUrl") or ""),
                "targetId": str(form.get("targetId") or ""),
                "bizState": str(form.get("bizState") or ""),
                "at": self.now_text(),
            }
        )
        return {"code": "SUCCESS", "msg": "消息已加入发送队列", "status": True}

    def _receiver(self, kind: str, name: str) -> dict[str, Any] | None:
        if kind == "userIdList":
            return self.employed(self.user_ids.get(name, ""))
        return self.employed(name)  # login ids and work codes are the same in this company

    def _message_refusal(self, form: Mapping[str, Any]) -> dict[str, Any] | None:
        code = str(form.get("code") or "").strip()
        if not code:
            return _message_error("PARAM_ERROR", "code(消息来源) 不能为空")
        if code != self.credentials.message_code:
            return _message_error("NO_PERMISSION", f"消息来源[{code}]不存在或未启用")
        given = [k for k in RECEIVER_LISTS if str(form.get(k) or "").strip()]
        if len(given) != 1:
            return _message_error(
                "PARAM_ERROR", f"接收人须且只能用 {'/'.join(RECEIVER_LISTS)} 之一"
            )
        names = _names(str(form[given[0]]))
        if not names:
            return _message_error("PARAM_ERROR", f"{given[0]} 不能为空")
        unknown = [n for n in names if self._receiver(given[0], n) is None]
        if unknown:
            return _message_error("USER_EXCEPTION", f"接收人[{','.join(unknown)}]不存在或已离职")
        if not str(form.get("title") or "").strip() and not str(form.get("context") or "").strip():
            return _message_error("PARAM_ERROR", "title 和 context 不能同时为空")
        target = str(form.get("targetId") or "")
        if target and not target.startswith(f"{code}|"):
            return _message_error("PARAM_ERROR", "targetId 须为 消息来源code|业务ID")
        return None

    # -- unified todo ----------------------------------------------------------------------
    def receive_todo(self, record: Mapping[str, Any]) -> dict[str, str]:
        """`ReceiveRequestInfoByJson`: create, update or finish a todo."""
        for name in ("syscode", "flowid", "requestname", "workflowname", "nodename",
                     "isremark", "receiver", "receivets"):  # fmt: skip
            if not str(record.get(name) or "").strip():
                return {"operResult": "0", "message": f"{name} 不能为空"}
        if record["syscode"] != self.credentials.syscode:
            return {"operResult": "0", "message": f"异构系统标识[{record['syscode']}]不存在"}
        if str(record["isremark"]) not in ("0", "2", "4"):
            return {"operResult": "0", "message": "isremark 只能是0、2或4"}
        receiver = str(record["receiver"])
        if self.employed(receiver) is None:
            return {"operResult": "0", "message": f"接收人[{receiver}]不存在或已离职"}
        try:
            receivets = int(str(record["receivets"]))
        except ValueError:
            return {"operResult": "0", "message": "receivets 必须是数字"}
        key = (str(record["flowid"]), receiver)
        todo = self.todos.get(key)
        self.counts["todo_records"] += 1
        if todo is not None and receivets <= todo.receivets:
            return {"operResult": "1", "message": "数据已是最新"}
        opened = todo is None or todo.isremark != "0"
        state = str(record["isremark"])
        if todo is None:
            todo = self.todos[key] = Todo(key[0], receiver, dict(record), receivets, state)
        todo.record, todo.receivets, todo.isremark = dict(record), receivets, state
        todo.history.append(state)
        if state == "0" and opened and self.auto_decide:
            self.decide(todo.flowid, receiver)
        return {"operResult": "1", "message": "操作成功"}

    def delete_todo(self, record: Mapping[str, Any]) -> dict[str, str]:
        if record.get("syscode") != self.credentials.syscode:
            return {"operResult": "0", "message": "异构系统标识不存在"}
        key = (str(record.get("flowid")), str(record.get("userid")))
        if self.todos.pop(key, None) is None:
            return {"operResult": "0", "message": "待办不存在"}
        return {"operResult": "1", "message": "删除成功"}

    # -- approvers and callbacks -----------------------------------------------------------
    def decide(self, flowid: str, receiver: str, *, approve: bool | None = None) -> str:
        """The approver acts on the todo; the decision is queued for the hub."""
        if approve is None:
            approve = self.rng.random() >= self.reject_rate
        eventid = f"weaver-{flowid}-{receiver}"
        body = {
            "eventid": eventid,
            "flowid": flowid,
            "operator": receiver,
            "operate": "submit" if approve else "reject",
            "remark": "同意" if approve else "费用超标准，退回",
            "operatetime": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        if eventid not in self.callbacks:
            self.callbacks[eventid] = Callback(eventid, orjson.dumps(body))
            self.queue.put_nowait(eventid)
        return eventid

    async def send_callbacks(self) -> None:
        while True:
            eventid = await self.queue.get()
            asyncio.ensure_future(self._deliver(self.callbacks[eventid]))

    async def _deliver(self, callback: Callback) -> None:
        if self.callback_url is None or self.http is None:
            callback.outcome = "no callback url"
            return
        try:
            await self._post(callback, self.http, self.callback_url)
        finally:
            callback.settled.set()

    async def _post(self, callback: Callback, http: httpx.AsyncClient, url: str) -> None:
        earlier = self.callbacks.get(callback.after or "")
        if earlier is not None:  # e-cology runs a request's node actions in order
            await earlier.settled.wait()
        delay, secret = 0.2, self.credentials.callback_secret
        while callback.attempts < CALLBACK_ATTEMPTS:
            callback.attempts += 1
            timestamp = str(int(time.time() * 1000))
            headers = {
                "content-type": "application/json",
                "appid": self.credentials.appid,
                "timestamp": timestamp,
                "sign": callback_signature(secret, timestamp, callback.body),
            }
            try:
                answer = await http.post(url, content=callback.body, headers=headers)
                callback.last_status = answer.status_code
                if answer.is_success:
                    callback.outcome = "delivered"
                    return
                if answer.status_code != 429 and answer.status_code < 500:
                    callback.outcome = f"refused {answer.status_code}: {answer.text[:200]}"
                    return
            except httpx.HTTPError as exc:
                callback.last_status = None
                callback.outcome = f"retrying after {type(exc).__name__}"
            await asyncio.sleep(self.rng.uniform(delay / 2, delay))
            delay = min(delay * 2, 5.0)
        callback.outcome = "gave up"

    def stats(self) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        for callback in self.callbacks.values():
            key = callback.outcome.split(" ")[0]
            outcomes[key] = outcomes.get(key, 0) + 1
        return {
            **self.counts,
            "todos_open": sum(1 for t in self.todos.values() if t.isremark == "0"),
            "todos_done": sum(1 for t in self.todos.values() if t.isremark != "0"),
            "messages": len(self.messages),
            "callbacks": outcomes,
        }


RECEIVER_LISTS = ("userIdList", "loginIdList", "workCodeList")


def _names(listed: str) -> list[str]:
    return [name.strip() for name in listed.split(",") if name.strip()]


def _message_error(code: str, message: str) -> dict[str, Any]:
    """The message centre's refusal."""
    return {"code": code, "msg": message, "status": False}


def _form_json(form: Mapping[str, Any], name: str, default: Any) -> Any:
    """A form field that e-cology reads as JSON text (mainData, detailData, params …)."""
    value = form.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        return value
    return orjson.loads(value)


async def _body(request: Request) -> dict[str, Any]:
    """A form-urlencoded or JSON body, as e-cology takes either."""
    if request.headers.get("content-type", "").startswith("application/json"):
        data = orjson.loads(await request.body() or b"{}")
        return data if isinstance(data, dict) else {}
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def create_weaver_app(sim: WeaverSimulator) -> FastAPI:
    faults = FaultState()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sim.http = httpx.AsyncClient(timeout=10.0)
        sender = asyncio.ensure_future(sim.send_callbacks())
        try:
            yield
        finally:
            sender.cancel()
            await sim.http.aclose()

    app = FastAPI(title="Weaver e-cology simulator", lifespan=lifespan)
    app.add_middleware(FaultMiddleware, state=faults)  # type: ignore[arg-type]
    add_sim_routes(app, faults)

    @app.post("/api/ec/dev/auth/regist")
    async def regist(request: Request) -> Response:
        h = request.headers
        return json_response(sim.regist(h.get("appid", ""), h.get("cpk", "")))

    @app.post("/api/ec/dev/auth/applytoken")
    async def applytoken(request: Request) -> Response:
        h = request.headers
        answer = sim.applytoken(h.get("appid", ""), h.get("secret", ""), h.get("time", ""))
        return json_response(answer)

    @app.post("/api/workflow/paService/doCreateRequest")
    async def do_create_request(request: Request) -> Response:
        caller = sim.caller(request.headers)
        if isinstance(caller, str):
            return json_response(weaver_error(caller))
        try:
            form = await _body(request)
            main = _form_json(form, "mainData", [])
            details = _form_json(form, "detailData", [])
        except orjson.JSONDecodeError as exc:
            return json_response(_pa_error("PARAM_ERROR", f"参数不是JSON: {exc}"))
        if not isinstance(main, list) or not all(isinstance(f, dict) for f in main):
            return json_response(_pa_error("PARAM_ERROR", "mainData 必须是字段数组"))
        request_id, why = sim.create_request(
            caller,
            str(form.get("workflowId", "")),
            str(form.get("requestName", "")),
            main,
            details if isinstance(details, list) else [],
            "rest",
        )
        if request_id is None:
            code = "USER_EXCEPTION" if "不存在或已离职" in why else "PARAM_ERROR"
            return json_response(_pa_error(code, why))
        return json_response(
            {"code": "SUCCESS", "data": {"requestid": request_id}, "errMsg": {}, "reqFailMsg": {}}
        )

    @app.get("/api/workflow/paService/getRequestStatus")
    async def get_request_status(request: Request) -> Response:
        caller = sim.caller(request.headers)
        if isinstance(caller, str):
            return json_response(weaver_error(caller))
        raw = request.query_params.get("requestId", "")
        found = sim.requests.get(int(raw)) if raw.isdigit() else None
        if found is None:
            return json_response(_pa_error("PARAM_ERROR", f"requestId {raw} 不存在"))
        node, node_type = found["node"]
        return json_response(
            {
                "code": "SUCCESS",
                "data": {
                    "requestId": found["requestid"],
                    "currentNodeName": node,
                    "currentNodeType": node_type,
                    "requestName": found["requestName"],
                },
                "errMsg": {},
            }
        )

    @app.get("/api/workflow/paService/getWorkflowRequest")
    async def get_workflow_request(request: Request) -> Response:
        caller = sim.caller(request.headers)
        if isinstance(caller, str):
            return json_response(weaver_error(caller))
        raw = request.query_params.get("requestId", "")
        found = sim.requests.get(int(raw)) if raw.isdigit() else None
        if found is None:
            return json_response(_pa_error("PARAM_ERROR", f"requestId {raw} 不存在"))
        return json_response({"code": "SUCCESS", "data": sim.workflow_request(found), "errMsg": {}})

    @app.post("/api/workflow/paService/getMyWorkflowRequestList")
    async def my_workflow_requests(request: Request) -> Response:
        caller = sim.caller(request.headers)
        if isinstance(caller, str):
            return json_response(weaver_error(caller))
        form = await _body(request)
        try:
            page, size = int(form.get("pageNo", 1)), int(form.get("pageSize", 10))
        except (TypeError, ValueError):
            return json_response(_pa_error("PARAM_ERROR", "pageNo/pageSize 必须是整数"))
        if page < 1 or not 1 <= size <= 100:
            return json_response(_pa_error("PARAM_ERROR", "pageNo/pageSize 超出范围"))
        rows = sim.my_requests(caller["loginid"], page, size)
        return json_response({"code": "SUCCESS", "data": rows, "errMsg": {}})

    async def hrm_page(request: Request, rows: list[dict[str, Any]]) -> Response:
        caller = sim.caller(request.headers)
        if isinstance(caller, str):
            return json_response(weaver_error(caller))
        try:
            params = _form_json(await _body(request), "params", {})
            page, size = int(params.get("curpage", 1)), int(params.get("pagesize", 100))
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            return json_response({"code": "0", "data": {}, "msg": "params 参数错误"})
        if page < 1 or not 1 <= size <= 1000:
            return json_response({"code": "0", "data": {}, "msg": "curpage/pagesize 参数错误"})
        chunk = rows[(page - 1) * size : page * size]
        return json_response(
            {
                "code": "1",
                "data": {"dataList": chunk, "totalSize": len(rows), "pagesize": size, "page": page},
            }  # fmt: skip
        )

    @app.post("/api/hrm/resful/getHrmUserInfoWithPage")
    async def hrm_users(request: Request) -> Response:
        return await hrm_page(request, list(sim.users.values()))

    @app.post("/api/hrm/resful/getHrmdepartmentWithPage")
    async def hrm_departments(request: Request) -> Response:
        return await hrm_page(request, list(sim.departments.values()))

    @app.post("/rest/ofs/ReceiveRequestInfoByJson")
    async def receive_todo(request: Request) -> Response:
        try:
            record = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return json_response({"operResult": "0", "message": "请求不是JSON"})
        if not isinstance(record, dict):
            return json_response({"operResult": "0", "message": "请求必须是JSON对象"})
        return json_response(sim.receive_todo(record))

    @app.post("/rest/ofs/deleteUserRequestInfoByJson")
    async def delete_todo(request: Request) -> Response:
        try:
            record = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return json_response({"operResult": "0", "message": "请求不是JSON"})
        return json_response(sim.delete_todo(record if isinstance(record, dict) else {}))

    @app.post("/api/ec/dev/message/sendCustomMessageSingle")
    async def send_custom_message(request: Request) -> Response:
        caller = sim.caller(request.headers)
        if isinstance(caller, str):
            return json_response(weaver_error(caller))
        return json_response(sim.send_message(caller, await _body(request)))

    @app.get("/_sim/messages")
    async def messages(receiver: str | None = None) -> Response:
        return json_response(
            [m for m in sim.messages if receiver is None or receiver in m["receivers"]]
        )

    @app.get("/services/WorkflowService")
    async def wsdl(request: Request) -> Response:
        location = str(request.url.replace(query="", fragment=""))
        return Response(workflow_wsdl(location), media_type=SOAP_CONTENT_TYPE)

    @app.post("/services/WorkflowService")
    async def workflow_service(request: Request) -> Response:
        try:
            soap = read_call(await request.body())
            if soap.namespace != WORKFLOW_NS or soap.operation != "doCreateWorkflowRequest":
                raise SoapRequestError("Body", f"unknown operation {soap.operation}")
            data = element_data(soap.element, WORKFLOW_NS, WORKFLOW_LISTS)
        except SoapRequestError as exc:
            problem = {"status": 400, "detail": str(exc), "field": exc.field,
                       "type": "weaver-sim/soap", "title": "Bad SOAP request"}  # fmt: skip
            return Response(fault_envelope(WORKFLOW_NS, problem), 500, media_type=SOAP_CONTENT_TYPE)
        return Response(
            response_envelope(
                WORKFLOW_NS, "doCreateWorkflowRequestResponse", {"out": _soap_create(sim, data)}
            ),
            media_type=SOAP_CONTENT_TYPE,
        )

    @app.get("/_sim/stats")
    async def stats() -> Response:
        return json_response(sim.stats())

    @app.get("/_sim/todos")
    async def todos(flowid: str | None = None) -> Response:
        rows = [
            {
                "flowid": t.flowid,
                "receiver": t.receiver,
                "isremark": t.isremark,
                "receivets": t.receivets,
                "history": t.history,
                "record": t.record,
            }  # fmt: skip
            for t in sim.todos.values()
            if flowid is None or t.flowid == flowid
        ]
        return json_response(rows)

    @app.get("/_sim/requests")
    async def requests_() -> Response:
        return json_response(list(sim.requests.values()))

    @app.get("/_sim/callbacks")
    async def callbacks() -> Response:
        return json_response(
            [
                {
                    "eventid": c.eventid,
                    "attempts": c.attempts,
                    "outcome": c.outcome,
                    "last_status": c.last_status,
                    "body": orjson.loads(c.body),
                }  # fmt: skip
                for c in sim.callbacks.values()
            ]
        )

    @app.post("/_sim/decide")
    async def decide(request: Request) -> Response:
        body = orjson.loads(await request.body())
        eventid = sim.decide(body["flowid"], body["receiver"], approve=bool(body["approve"]))
        return json_response({"eventid": eventid})

    @app.post("/_sim/requests")
    async def employee_request(request: Request) -> Response:
        """An employee submits an expense request in e-cology (the test's hand; `"callback":
        false` loses its start on the way to the hub)."""
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError as exc:
            return json_response(_pa_error("PARAM_ERROR", f"参数不是JSON: {exc}"), 400)
        main, details = body.get("mainData"), body.get("detailData", [])
        if not isinstance(main, list) or not all(isinstance(f, dict) for f in main):
            return json_response(_pa_error("PARAM_ERROR", "mainData 必须是字段数组"), 400)
        creator = sim.employed(str(body.get("creator") or ""))
        if creator is None:
            why = f"人员[{body.get('creator')}]不存在或已离职"
            return json_response(_pa_error("USER_EXCEPTION", why), 400)
        request_id, why = sim.create_request(
            creator, str(body.get("workflowId", "6")), str(body.get("requestName", "")), main,
            details if isinstance(details, list) else [], "employee",
            callback=bool(body.get("callback", True)),
        )  # fmt: skip
        if request_id is None:
            return json_response(_pa_error("PARAM_ERROR", why), 400)
        return json_response({"code": "SUCCESS", "data": {"requestid": request_id}})

    @app.post("/_sim/requests/{request_id}/end")
    async def end_request(request_id: int, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        eventid = sim.end_request(
            request_id,
            str(body.get("result", "")),
            remark=body.get("remark"),
            callback=bool(body.get("callback", True)),
        )
        if eventid is None:
            return json_response({"error": "no such request or result"}, 404)
        return json_response({"eventid": eventid})

    @app.post("/_sim/expire-tokens")
    async def expire_tokens() -> Response:
        count = len(sim.tokens)
        sim.tokens.clear()
        return json_response({"expired": count})

    return app


def _pa_error(code: str, message: str) -> dict[str, Any]:
    """The error shape of the workflow REST services (paService)."""
    return {"code": code, "data": {}, "errMsg": {"msg": message}, "reqFailMsg": {"msg": message}}


def _records(info: Mapping[str, Any], *path: str) -> list[dict[str, Any]]:
    node: Any = info
    for name in path:
        node = node.get(name) if isinstance(node, Mapping) else None
    return [dict(r) for r in node if isinstance(r, Mapping)] if isinstance(node, list) else []


def _soap_create(sim: WeaverSimulator, data: Mapping[str, Any]) -> str:
    """`doCreateWorkflowRequest`: the new request id, or e-cology's negative error code:
    -1 creation failed (no such workflow), -2 the user may not create requests (unknown or
    departed), -4 the main table was refused."""
    info = data.get("in0")
    if not isinstance(info, Mapping):
        return "-1"
    creator = sim.employed(str(data.get("in1") or info.get("creatorId") or ""))
    if creator is None:
        return "-2"
    workflow = info.get("workflowBaseInfo")
    workflow_id = str(workflow.get("workflowId", "")) if isinstance(workflow, Mapping) else ""
    records = _records(info, "workflowMainTableInfo", "requestRecords")
    main = []
    for record in records[:1]:
        fields = record.get("workflowRequestTableFields")
        main = (
            [dict(f) for f in fields if isinstance(f, Mapping)] if isinstance(fields, list) else []
        )
    details = _records(info, "workflowDetailTableInfos")
    request_id, why = sim.create_request(
        creator, workflow_id, str(info.get("requestName") or ""), main, details, "soap"
    )
    if request_id is None:
        return "-1" if "workflowId" in why else "-4"
    return str(request_id)


def run_weaver_simulator(
    host: str,
    port: int,
    data_dir: Path,
    callback_url: str | None,
    *,
    token_ttl: float = DEFAULT_TOKEN_TTL,
    reject_rate: float = 0.0,
    auto_decide: bool = True,
) -> None:
    sim = WeaverSimulator(
        load_credentials(data_dir),
        callback_url=callback_url,
        token_ttl=token_ttl,
        reject_rate=reject_rate,
        auto_decide=auto_decide,
    )
    serve(create_weaver_app(sim), host, port)
