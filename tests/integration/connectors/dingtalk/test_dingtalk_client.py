"""finoa's DingTalk client against the simulator in its own process: tokens and their
expiry, approval instances, todos, contacts, base data and rate limits as DingTalk
enforces them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from support.dingtalk import CLAIM, TODO, DingTalkSim, message
from support.notices import NOTICE
from support.pacing import check_paced_at_quota

from finoa.connectors.dingtalk.client import DingTalkConnector
from finoa.messaging.circuit import CircuitBreaker
from finoa.messaging.dispatcher import Dispatcher
from finoa.messaging.retry import ErrorClass
from finoa.store.tables import outbox
from finoa.store.uow import Database, OutboxMessage

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http() -> Any:
    async with httpx.AsyncClient() as client:
        yield client


async def test_a_claim_becomes_a_dingtalk_instance_with_string_values_and_a_json_table(
    sim: DingTalkSim, http: httpx.AsyncClient
) -> None:
    connector = DingTalkConnector(sim.config(), http)
    (result,) = await connector.deliver([message("approval.create", CLAIM)])
    assert result.ok, result.error
    instance_id = result.response["oa_approval_id"]
    instance = sim.get(f"/_sim/instances/{instance_id}")
    assert instance["originatorUserId"] == "E0011" and instance["originatorDeptId"] == "3"
    form = {c["name"]: c["value"] for c in instance["formComponentValues"]}
    assert form["finoa单号"] == "CL0001" and form["总金额（元）"] == "1234.50"
    rows = json.loads(form["费用明细"])
    assert [{c["label"]: c["value"] for c in row["rowValue"]}["金额（元）"] for row in rows] == [
        "1000.00",
        "234.50",
    ]
    # The posted-lookup finds it by the claim id in the form; another claim is not there.
    (found,) = await connector.lookup([message("approval.create", CLAIM)])
    assert found is not None and found.response == {"oa_approval_id": instance_id}
    (absent,) = await connector.lookup([message("approval.create", {**CLAIM, "id": "CL9999"})])
    assert absent is None
    assert await connector.api.list_instance_ids(0, 2**41) == [instance_id]  # type: ignore[union-attr]


async def test_departed_or_unknown_people_and_departments_are_refused(
    sim: DingTalkSim, http: httpx.AsyncClient
) -> None:
    connector = DingTalkConnector(sim.config(), http)
    departed = {**CLAIM, "applicant_id": "E0099"}
    elsewhere = {**CLAIM, "department_id": "D03"}
    results = await connector.deliver(
        [message("approval.create", departed), message("approval.create", elsewhere, 2)]
    )
    assert [r.error.error_class for r in results if r.error] == [
        ErrorClass.PERMANENT,
        ErrorClass.PERMANENT,
    ]
    assert "用户已离职" in results[0].error.reason  # type: ignore[union-attr]
    assert "processInstanceInvalidParameter" in results[1].error.reason  # type: ignore[union-attr]
    assert sim.get("/_sim/stats")["instances"] == {}


async def test_an_expired_token_is_refused_and_refreshed_once(
    sim: DingTalkSim, http: httpx.AsyncClient
) -> None:
    connector = DingTalkConnector(sim.config(), http)
    assert (await connector.deliver([message("approval.create", CLAIM)]))[0].ok
    assert sim.post("/_sim/tokens:expire").json()["expired"] == 1
    (again,) = await connector.deliver([message("approval.create", {**CLAIM, "id": "CL0002"}, 2)])
    assert again.ok, again.error
    stats = sim.get("/_sim/stats")
    assert stats["tokens_issued"] == 2 and stats["token_refusals"] == 1


async def test_a_token_is_fetched_again_before_it_expires(
    start_sim: Any, http: httpx.AsyncClient
) -> None:
    sim = start_sim("--token-ttl", "200", "--no-auto-decide")  # inside the 5-minute margin
    connector = DingTalkConnector(sim.config(), http)
    for n in range(3):
        assert (
            await connector.deliver([message("approval.create", {**CLAIM, "id": f"CL{n}"}, n)])
        )[0].ok
    stats = sim.get("/_sim/stats")
    assert stats["tokens_issued"] == 3 and stats["token_refusals"] == 0


async def test_wrong_app_secret_is_an_auth_failure(
    sim: DingTalkSim, http: httpx.AsyncClient
) -> None:
    connector = DingTalkConnector(sim.config(app_secret="wrong"), http)
    (result,) = await connector.deliver([message("approval.create", CLAIM)])
    assert result.error is not None and result.error.error_class is ErrorClass.AUTH
    health = await connector.health()
    assert not health.ok and "refused the app key" in health.detail


async def test_a_bad_form_is_a_config_error(sim: DingTalkSim, http: httpx.AsyncClient) -> None:
    connector = DingTalkConnector(sim.config(), http)
    (result,) = await connector.deliver([message("approval.create", {**CLAIM, "lines": []})])
    assert result.error is not None and result.error.error_class is ErrorClass.CONFIG
    assert "费用明细" in result.error.reason


async def test_todos_are_created_for_the_approver_and_closed(
    sim: DingTalkSim, http: httpx.AsyncClient
) -> None:
    connector = DingTalkConnector(sim.config(callback_url="http://127.0.0.1:9/hook"), http)
    (created,) = await connector.deliver([message("todo.push", TODO)])
    assert created.ok, created.error
    (todo,) = sim.get("/_sim/todos")
    assert todo["executorIds"] == ["union-E0010"] and todo["sourceId"] == "T-1" and not todo["done"]
    (found,) = await connector.lookup([message("todo.push", TODO)])
    assert found is not None and found.response["todo_id"] == todo["id"]
    (closed,) = await connector.deliver([message("todo.push", {**TODO, "op": "close"}, 2)])
    assert closed.ok and sim.get("/_sim/todos")[0]["done"] is True
    assert closed.response == {"todo_id": todo["id"], "status": "closed"}
    # the connector made the todo: it closed it by its id, without looking it up by sourceId
    lookups = [p for p in sim.get("/_sim/stats")["api_calls"] if "/tasks/sources/" in p]
    assert lookups == ["/v1.0/todo/users/union-E0010/tasks/sources/T-1"]  # the lookup above
    # closing again, or a todo that never existed, changes nothing and succeeds
    (again,) = await connector.deliver(
        [message("todo.push", {**TODO, "op": "close", "task_id": "T-404"}, 3)]
    )
    assert again.ok


async def test_a_todo_made_by_another_process_or_deleted_in_dingtalk_is_closed_all_the_same(
    sim: DingTalkSim, http: httpx.AsyncClient
) -> None:
    config = sim.config(callback_url="http://127.0.0.1:9/hook")
    maker = DingTalkConnector(config, http)
    for n, task in enumerate(("T-1", "T-2"), 1):
        (created,) = await maker.deliver([message("todo.push", {**TODO, "task_id": task}, n)])
        assert created.ok, created.error
    # another process (a restarted hub) knows neither todo's id: it looks T-1 up by sourceId
    other = DingTalkConnector(config, http)
    (closed,) = await other.deliver([message("todo.push", {**TODO, "op": "close"}, 3)])
    assert closed.ok and closed.response["status"] == "closed"
    assert "/v1.0/todo/users/union-E0010/tasks/sources/T-1" in sim.get("/_sim/stats")["api_calls"]
    # T-2 was deleted in DingTalk: closing it by the id kept succeeds, with nothing to close
    t2 = next(t for t in sim.get("/_sim/todos") if t["sourceId"] == "T-2")
    assert maker.api is not None
    await maker.api.delete_todo("union-E0010", t2["id"])
    (gone,) = await maker.deliver(
        [message("todo.push", {**TODO, "op": "close", "task_id": "T-2"}, 4)]
    )
    assert gone.ok and gone.response == {"todo_id": None, "status": "closed"}
    done = {t["sourceId"]: t["done"] for t in sim.get("/_sim/todos")}
    assert done["T-1"] is True


async def test_calls_are_paced_at_the_apps_quota(start_sim: Any, http: httpx.AsyncClient) -> None:
    claims = [message("approval.create", {**CLAIM, "id": f"CL{n}"}, n) for n in range(5)]
    await check_paced_at_quota(start_sim, DingTalkConnector, claims, http)


async def test_contacts_are_read_as_master_data(sim: DingTalkSim, http: httpx.AsyncClient) -> None:
    api = DingTalkConnector(sim.config(), http).api
    assert api is not None
    departments = await api.sub_departments(1)
    assert {d["dept_id"] for d in departments} >= {2, 3, 4}
    sales = await api.department_users(3)
    assert "E0010" in {u["userid"] for u in sales} and "E0099" not in {u["userid"] for u in sales}
    from finoa.messaging.retry import DeliveryError

    with pytest.raises(DeliveryError, match="60121"):
        await api.user("E0099")
    with pytest.raises(DeliveryError, match="60003"):
        await api.department_users(99)


async def test_rate_limits_are_classed_rate_limited(
    start_sim: Any, http: httpx.AsyncClient
) -> None:
    sim = start_sim("--qps", "2", "--no-auto-decide")
    connector = DingTalkConnector(sim.config(), http)
    results = await connector.deliver(
        [message("approval.create", {**CLAIM, "id": f"CL{n}"}, n) for n in range(4)]
    )
    classes = [r.error.error_class if r.error else None for r in results]
    assert ErrorClass.RATE_LIMITED in classes and classes[0] is None
    limited = next(r for r in results if r.error)
    assert limited.error is not None and limited.error.retry_after is not None


async def test_a_notice_is_a_work_notification_from_the_app_reaching_the_user_once(
    sim: DingTalkSim, http: httpx.AsyncClient
) -> None:
    connector = DingTalkConnector(sim.config(), http)
    (sent,) = await connector.deliver([message("notice.send", NOTICE)])
    assert sent.ok, sent.error
    assert sent.response["status"] == "sent" and sent.response["task_id"]
    (again,) = await connector.deliver([message("notice.send", NOTICE, 2)])  # a re-send
    assert again.ok, again.error
    first, repeat = sim.get("/_sim/notices")
    assert first["userid"] == "E0011" and first["delivered"] is True
    assert first["content"].splitlines() == [NOTICE["title"], NOTICE["body"]]
    assert repeat["delivered"] is False  # DingTalk's once-a-day rule for the same content
    assert sim.get("/_sim/stats")["notices_deduplicated"] == 1


async def test_a_notice_needs_the_apps_agent_id(sim: DingTalkSim, http: httpx.AsyncClient) -> None:
    config = {k: v for k, v in sim.config().items() if k != "agent_id"}
    (refused,) = await DingTalkConnector(config, http).deliver([message("notice.send", NOTICE)])
    assert refused.error is not None and refused.error.error_class is ErrorClass.CONFIG
    assert "agent_id" in refused.error.reason
    wrong = await DingTalkConnector(sim.config(agent_id=42), http).deliver(
        [message("notice.send", NOTICE)]
    )
    assert wrong[0].error is not None and wrong[0].error.error_class is ErrorClass.CONFIG
    assert "400014" in wrong[0].error.reason and sim.get("/_sim/notices") == []


async def test_a_rate_above_the_quota_is_learnt_from_and_never_opens_the_breaker(
    start_sim: Any, http: httpx.AsyncClient, db_url: str
) -> None:
    sim = start_sim("--qps", "2", "--no-auto-decide")
    connector = DingTalkConnector(sim.config(rate_limit_per_second=20), http)
    db = Database.connect(db_url)
    try:
        db.perform(
            lambda uow: [
                uow.enqueue(
                    OutboxMessage(
                        "dingtalk",
                        "approval.create",
                        "claim",
                        f"CL{n}",
                        {**CLAIM, "id": f"CL{n}"},
                        f"create:CL{n}",
                    )
                )
                for n in range(8)
            ],
            actor="t",
        )
        hub = Dispatcher(db, {"dingtalk": connector}, breaker=lambda: CircuitBreaker(threshold=2))
        await hub.run_until_idle(max_seconds=30)
        with db.engine.connect() as conn:
            done = conn.execute(select(outbox.c.status)).scalars().all()
    finally:
        db.dispose()
    assert done == ["done"] * 8
    assert sim.get("/_sim/stats")["rate_limited"] >= 2  # refused more often than the threshold
    assert hub.breakers["dingtalk"].opened == 0
    assert connector.api is not None and connector.api.pacer.rate < 20  # it slowed down
