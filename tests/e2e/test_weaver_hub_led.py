"""Hub-led approvals through Weaver e-cology, with the hub, the e-cology simulator and the
ERP simulator as real processes (SQLite and PostgreSQL): each approval task becomes a unified
todo (统一待办) for its approver; the approver's decision comes back as e-cology's signed
callback and moves the claim on; the todo is closed; the approved claim is posted.
Bad or replayed callbacks change nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from e2e.conftest import _database
from e2e.helpers import claim_body
from support.processes import (
    Secrets,
    Server,
    free_port,
    hub_token,
    read_claim,
    start,
    start_configured_hub,
    wait_for,
)
from support.weaver import weaver_config, weaver_simulator

from finoa.connectors.weaver.inbound import callback_signature


@dataclass
class WeaverStack:
    hub: Server
    weaver: Server
    credentials: dict[str, str]
    secrets: Secrets
    http: httpx.Client

    def bearer(self) -> str:
        return hub_token(self.hub.url, self.secrets.client_id, self.secrets.client_secret,
                         http=self.http)  # fmt: skip

    def token(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.bearer()}"}

    def claim(self, claim_id: str) -> dict[str, Any]:
        return read_claim(self.hub.url, self.bearer(), claim_id, self.http)

    def todos(self, flowid: str) -> list[dict[str, Any]]:
        return list(
            self.http.get(f"{self.weaver.url}/_sim/todos", params={"flowid": flowid}).json()
        )

    def callback(self, body: bytes, **headers: str) -> httpx.Response:
        stamp = str(int(time.time() * 1000))
        signed = {
            "content-type": "application/json",
            "appid": self.credentials["appid"],
            "timestamp": stamp,
            "sign": callback_signature(self.credentials["callback_secret"], stamp, body),
            **headers,
        }
        return self.http.post(
            f"{self.hub.url}/api/v1/webhooks/weaver", content=body, headers=signed
        )


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WeaverStack]:
    directory = tmp_path_factory.mktemp(f"weaver-{request.param}")
    secrets = Secrets.fresh()
    hub_port = free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    env = {**secrets.env(), "FINOA_DATA_DIR": str(directory / "data")}
    with _database(request.param, directory, request) as database_url:
        erp_port = free_port()
        erp = start(
            "erp", ["sim", "erp", "--port", str(erp_port)], env, "/_sim/stats", erp_port, directory
        )
        try:
            with weaver_simulator(
                directory / "weaver",
                callback_url=f"{hub_url}/api/v1/webhooks/weaver",
                auto_decide=False,
            ) as (weaver, credentials):
                connectors = {
                    "weaver": {"connector": "weaver", "default": True,
                               "config": weaver_config(weaver.url, credentials, hub_url=hub_url)},
                    "ledger": {"connector": "generic-erp", "default": True,
                               "config": {"base_url": erp.url, "api_key": secrets.erp_api_key}},
                }  # fmt: skip
                hub = start_configured_hub(env, connectors, database_url, hub_port, directory)
                try:
                    with httpx.Client(timeout=30) as http:
                        yield WeaverStack(hub, weaver, credentials, secrets, http)
                finally:
                    hub.stop()
        finally:
            erp.stop()


def submit(stack: WeaverStack, **overrides: Any) -> dict[str, Any]:
    answer = stack.http.post(
        f"{stack.hub.url}/api/v1/claims", content=orjson.dumps(claim_body(**overrides)),
        headers={**stack.token(), "content-type": "application/json"},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def open_task(stack: WeaverStack, claim_id: str) -> dict[str, Any] | None:
    pending = [t for t in stack.claim(claim_id)["tasks"] if t["status"] == "pending"]
    return pending[0] if pending else None


def wait_open_todo(stack: WeaverStack, task: dict[str, Any]) -> dict[str, Any]:
    def opened() -> dict[str, Any] | None:
        rows = [r for r in stack.todos(task["id"]) if r["isremark"] == "0"]
        return rows[0] if rows else None

    todo: dict[str, Any] = wait_for(opened, 30, f"the todo of {task['id']} in e-cology")
    return todo


def decide(stack: WeaverStack, task: dict[str, Any], approve: bool) -> None:
    wait_open_todo(stack, task)
    stack.http.post(
        f"{stack.weaver.url}/_sim/decide",
        content=orjson.dumps(
            {"flowid": task["id"], "receiver": task["assignee_id"], "approve": approve}
        ),
    )


def test_every_task_is_a_unified_todo_and_decisions_from_ecology_post_the_claim(
    stack: WeaverStack,
) -> None:
    claim = submit(stack)
    decided: list[dict[str, Any]] = []
    while (task := open_task(stack, claim["id"])) is not None:
        todo = wait_open_todo(stack, task)
        assert todo["receiver"] == task["assignee_id"]
        assert todo["record"]["pcurl"].endswith(f"/tasks/{task['id']}")
        decide(stack, task, approve=True)
        wait_for(lambda t=task: open_task(stack, claim["id"]) != t, 30, "the decision to arrive")
        decided.append(task)
    assert decided
    final = wait_for(
        lambda: (c := stack.claim(claim["id"]))["status"] == "posted" and c, 30, "the posting"
    )
    assert final["voucher"]["erp_voucher_no"]
    for task in decided:
        wait_for(lambda t=task: stack.todos(t["id"])[0]["isremark"] == "2", 30, "the todo to close")
        assert stack.todos(task["id"])[0]["history"] == ["0", "2"]


def test_a_rejection_in_ecology_rejects_the_claim_with_its_reason(stack: WeaverStack) -> None:
    claim = submit(stack)
    task = wait_for(lambda: open_task(stack, claim["id"]), 30, "the first task")
    decide(stack, task, approve=False)
    final = wait_for(
        lambda: (c := stack.claim(claim["id"]))["status"] == "rejected" and c, 30, "the rejection"
    )
    assert final["reason"] == "费用超标准，退回"
    wait_for(lambda: stack.todos(task["id"])[0]["isremark"] == "2", 30, "the todo to close")


def test_bad_and_replayed_callbacks_change_nothing(stack: WeaverStack) -> None:
    claim = submit(stack)
    task = wait_for(lambda: open_task(stack, claim["id"]), 30, "the first task")
    body = orjson.dumps(
        {
            "eventid": f"manual-{task['id']}",
            "flowid": task["id"],
            "operator": task["assignee_id"],
            "operate": "submit",
            "remark": "同意",
        }
    )
    forged = stack.callback(body, sign="0" * 64)
    assert forged.status_code == 401 and forged.json()["field"] == "sign"
    stale = stack.callback(body, timestamp=str(int(time.time() * 1000) - 3_600_000))
    assert stale.status_code == 401 and stale.json()["field"] == "timestamp"
    malformed = stack.callback(b'{"eventid": "x", "flowid": ')
    assert malformed.status_code == 400
    wrong_person = stack.callback(body.replace(task["assignee_id"].encode(), b"E0012"))
    assert wrong_person.status_code in (403, 409, 422), wrong_person.text
    assert open_task(stack, claim["id"]) == task  # still pending, unchanged

    first = stack.callback(body)
    assert first.status_code == 200 and first.json()["duplicate"] is False, first.text
    after = stack.claim(claim["id"])
    again = stack.callback(body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert stack.claim(claim["id"])["tasks"] == after["tasks"]
