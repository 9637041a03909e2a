"""finoa's Feishu client against the simulator in its own process: tenant tokens and their
expiry, approval instances and their uuid, external instances, contacts, base data and rate
limits as Feishu enforces them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from support.dingtalk import CLAIM, TODO
from support.feishu import FeishuSim, form_values, message
from support.notices import NOTICE

from finoa.connectors.feishu.client import FeishuConnector
from finoa.connectors.feishu.mapping import create_uuid
from finoa.messaging.retry import DeliveryError, ErrorClass

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http() -> Any:
    async with httpx.AsyncClient() as client:
        yield client


async def test_a_claim_becomes_a_feishu_instance_with_widgets_and_a_field_list(
    sim: FeishuSim, http: httpx.AsyncClient
) -> None:
    connector = FeishuConnector(sim.config(), http)
    (result,) = await connector.deliver([message("approval.create", CLAIM)])
    assert result.ok, result.error
    code = result.response["oa_approval_id"]
    instance = sim.get(f"/_sim/instances/{code}")
    assert (instance["user_id"], instance["department_id"]) == ("E0011", "fs-d02")
    assert instance["uuid"] == create_uuid("CL0001") and instance["status"] == "PENDING"
    form = form_values(instance)
    assert form["claim_no"] == "CL0001" and form["total"] == 1234.5
    amounts = [{c["id"]: c["value"] for c in row}["amount"] for row in form["details"]]
    assert amounts == [1000, 234.5]
    # The posted-lookup finds it by its uuid; another claim is not there.
    (found,) = await connector.lookup([message("approval.create", CLAIM)])
    assert found is not None and found.response == {"oa_approval_id": code}
    (absent,) = await connector.lookup([message("approval.create", {**CLAIM, "id": "CL9999"})])
    assert absent is None


async def test_a_repeat_is_60012_and_the_instance_already_made_is_the_answer(
    sim: FeishuSim, http: httpx.AsyncClient
) -> None:
    connector = FeishuConnector(sim.config(), http)
    (first,) = await connector.deliver([message("approval.create", CLAIM)])
    (again,) = await connector.deliver([message("approval.create", CLAIM, 2)])
    assert again.ok, again.error
    assert again.response["oa_approval_id"] == first.response["oa_approval_id"]
    assert again.response["status"] == "already_created"
    stats = sim.get("/_sim/stats")
    assert stats["instances"] == {"PENDING": 1} and stats["uuid_conflicts"] == 1


async def test_departed_or_unknown_people_and_departments_are_refused(
    sim: FeishuSim, http: httpx.AsyncClient
) -> None:
    connector = FeishuConnector(sim.config(), http)
    departed = {**CLAIM, "id": "CL-D", "applicant_id": "E0099"}
    elsewhere = {**CLAIM, "id": "CL-E", "department_id": "D03"}
    results = await connector.deliver(
        [message("approval.create", departed), message("approval.create", elsewhere, 2)]
    )
    assert [r.error.error_class for r in results if r.error] == [
        ErrorClass.PERMANENT,
        ErrorClass.PERMANENT,
    ]
    assert "resigned" in results[0].error.reason  # type: ignore[union-attr]
    assert "1390001" in results[1].error.reason  # type: ignore[union-attr]
    assert sim.get("/_sim/stats")["instances"] == {}


async def test_an_expired_token_is_refused_with_99991663_and_refreshed_once(
    sim: FeishuSim, http: httpx.AsyncClient
) -> None:
    connector = FeishuConnector(sim.config(), http)
    assert (await connector.deliver([message("approval.create", CLAIM)]))[0].ok
    assert sim.post("/_sim/tokens:expire").json()["expired"] == 1
    (again,) = await connector.deliver([message("approval.create", {**CLAIM, "id": "CL0002"}, 2)])
    assert again.ok, again.error
    stats = sim.get("/_sim/stats")
    assert stats["tokens_issued"] == 2 and stats["token_refusals"] == 1
    # Without a token at all Feishu answers 99991661.
    bare = httpx.get(sim.url + "/open-apis/approval/v4/instances/x", timeout=5)
    assert (bare.status_code, bare.json()["code"]) == (400, 99991661)


async def test_a_token_is_fetched_again_before_it_expires(
    start_sim: Any, http: httpx.AsyncClient
) -> None:
    sim = start_sim("--token-ttl", "200", "--no-auto-decide")  # inside the 5-minute margin
    connector = FeishuConnector(sim.config(), http)
    for n in range(3):
        claim = {**CLAIM, "id": f"CL{n}"}
        assert (await connector.deliver([message("approval.create", claim, n)]))[0].ok
    stats = sim.get("/_sim/stats")
    assert stats["tokens_issued"] == 3 and stats["token_refusals"] == 0


async def test_wrong_app_secret_is_an_auth_failure(sim: FeishuSim, http: httpx.AsyncClient) -> None:
    connector = FeishuConnector(sim.config(app_secret="wrong"), http)
    (result,) = await connector.deliver([message("approval.create", CLAIM)])
    assert result.error is not None and result.error.error_class is ErrorClass.AUTH
    assert "10014" in result.error.reason
    health = await connector.health()
    assert not health.ok and "refused the app" in health.detail


async def test_a_bad_form_is_a_config_error(sim: FeishuSim, http: httpx.AsyncClient) -> None:
    connector = FeishuConnector(sim.config(), http)
    (result,) = await connector.deliver([message("approval.create", {**CLAIM, "lines": []})])
    assert result.error is not None and result.error.error_class is ErrorClass.CONFIG
    assert "details" in result.error.reason


async def test_a_wrong_approval_code_is_a_config_error(
    sim: FeishuSim, http: httpx.AsyncClient
) -> None:
    connector = FeishuConnector(sim.config(approval_code="NOPE"), http)
    (result,) = await connector.deliver([message("approval.create", CLAIM)])
    assert result.error is not None and result.error.error_class is ErrorClass.CONFIG
    assert "1390002" in result.error.reason


async def test_a_task_is_an_external_instance_sent_again_when_decided(
    sim: FeishuSim, http: httpx.AsyncClient
) -> None:
    connector = FeishuConnector(sim.config(callback_url="http://127.0.0.1:9/hook"), http)
    (created,) = await connector.deliver([message("todo.push", TODO)])
    assert created.ok, created.error
    (external,) = sim.get("/_sim/external_instances")
    assert external["instance_id"] == "T-1" and external["status"] == "PENDING"
    (task,) = external["body"]["task_list"]
    assert task["user_id"] == "E0010" and task["status"] == "PENDING"
    assert {c["action_type"] for c in task["action_configs"]} == {"APPROVE", "REJECT"}
    (closed,) = await connector.deliver([message("todo.push", {**TODO, "op": "close"}, 2)])
    assert closed.ok, closed.error
    (external,) = sim.get("/_sim/external_instances")
    assert external["status"] == "TERMINATED" and external["versions"] == 2
    assert external["body"]["task_list"][0]["status"] == "DONE"
    # An unknown approver is refused as Feishu refuses it.
    (bad,) = await connector.deliver([message("todo.push", {**TODO, "assignee_id": "E9"}, 3)])
    assert bad.error is not None and bad.error.error_class is ErrorClass.PERMANENT


async def test_contacts_are_read_as_master_data(sim: FeishuSim, http: httpx.AsyncClient) -> None:
    api = FeishuConnector(sim.config(), http).api
    assert api is not None
    departments = await api.departments()
    assert {"fs-d01", "fs-d02", "fs-d03"} <= {d["department_id"] for d in departments}
    sales = await api.department_users("fs-d02")
    assert "E0010" in {u["user_id"] for u in sales} and "E0099" not in {u["user_id"] for u in sales}
    departed = await api.user("E0099")
    assert departed["status"]["is_resigned"] is True
    with pytest.raises(DeliveryError, match="99992351"):
        await api.user("E4040")
    with pytest.raises(DeliveryError, match="99992351"):
        await api.department_users("fs-d99")


async def test_rate_limits_are_paced_and_backed_off(
    start_sim: Any, http: httpx.AsyncClient
) -> None:
    sim = start_sim("--qps", "3", "--no-auto-decide")
    # A client that does not pace itself meets 99991400 and waits it out once.
    eager = FeishuConnector(sim.config(rate_limit_per_second=1000), http)
    results = await eager.deliver(
        [message("approval.create", {**CLAIM, "id": f"CL{n}"}, n) for n in range(6)]
    )
    assert all(r.ok for r in results), [r.error for r in results]
    assert eager.api is not None and eager.api.backoffs >= 1
    assert sim.get("/_sim/stats")["rate_limited"] >= 1
    # One paced to the documented limit is never refused.
    paced_sim = start_sim("--qps", "3", "--no-auto-decide")
    paced = FeishuConnector(paced_sim.config(rate_limit_per_second=3), http)
    results = await paced.deliver(
        [message("approval.create", {**CLAIM, "id": f"CP{n}"}, n) for n in range(4)]
    )
    assert all(r.ok for r in results) and paced_sim.get("/_sim/stats")["rate_limited"] == 0


async def test_a_persistent_rate_limit_is_classed_rate_limited(
    start_sim: Any, http: httpx.AsyncClient
) -> None:
    sim = start_sim("--qps", "1", "--no-auto-decide")
    connector = FeishuConnector(sim.config(rate_limit_per_second=1000), http)
    api = connector.api
    assert api is not None
    # Six calls at once, one allowed a second: after the one wait, most are still refused.
    await api.auth.token()
    outcomes = await asyncio.gather(
        *(api.list_instance_codes(0, 2**41) for _ in range(6)), return_exceptions=True
    )
    errors = [o for o in outcomes if isinstance(o, DeliveryError)]
    assert errors and all(e.error_class is ErrorClass.RATE_LIMITED for e in errors)
    assert all(e.retry_after == 1.0 for e in errors) and len(errors) < 6
    assert api.backoffs >= len(errors)


async def test_a_notice_is_a_text_message_from_the_bot_sent_once_per_notice(
    sim: FeishuSim, http: httpx.AsyncClient
) -> None:
    connector = FeishuConnector(sim.config(), http)
    (sent,) = await connector.deliver([message("notice.send", NOTICE)])
    assert sent.ok, sent.error
    assert sent.response["status"] == "sent" and sent.response["message_id"].startswith("om_")
    (again,) = await connector.deliver([message("notice.send", NOTICE, 2)])  # a re-send
    assert again.response["message_id"] == sent.response["message_id"]  # Feishu's uuid dedup
    (kept,) = sim.get("/_sim/messages")
    assert kept["receive_id"] == "E0011" and kept["sender"]["sender_type"] == "app"
    text = json.loads(kept["body"]["content"])["text"]
    assert text.splitlines() == [NOTICE["title"], NOTICE["body"]]
    assert sim.get("/_sim/stats")["messages_deduplicated"] == 1


async def test_a_notice_to_a_departed_or_unknown_user_is_refused_for_good(
    sim: FeishuSim, http: httpx.AsyncClient
) -> None:
    connector = FeishuConnector(sim.config(), http)
    results = await connector.deliver(
        [
            message("notice.send", {**NOTICE, "notice_id": "n-d", "recipient_id": "E0099"}),
            message("notice.send", {**NOTICE, "notice_id": "n-u", "recipient_id": "E7777"}, 2),
        ]
    )
    errors = [r.error for r in results]
    assert all(e is not None and e.error_class is ErrorClass.PERMANENT for e in errors)
    assert "230013" in errors[0].reason and "230001" in errors[1].reason  # type: ignore[union-attr]
    assert "E7777" in errors[1].reason  # type: ignore[union-attr]
    assert sim.get("/_sim/messages") == []
