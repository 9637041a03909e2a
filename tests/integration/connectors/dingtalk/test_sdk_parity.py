"""Parity with DingTalk's official SDK (`alibabacloud-dingtalk`): its calls work against the
simulator, and what each side makes the other reads.

DingTalk's callback crypto is not in the SDK; the vendor's reference vector covers it
(`tests/unit/connectors/dingtalk/test_callback_crypto.py`)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from alibabacloud_dingtalk.oauth2_1_0 import models as oauth_models
from alibabacloud_dingtalk.oauth2_1_0.client import Client as OAuthClient
from alibabacloud_dingtalk.todo_1_0 import models as todo_models
from alibabacloud_dingtalk.todo_1_0.client import Client as TodoClient
from alibabacloud_dingtalk.workflow_1_0 import models as wf
from alibabacloud_dingtalk.workflow_1_0.client import Client as WorkflowClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models
from support.dingtalk import CLAIM, TODO, DingTalkSim, message

from finoa.connectors.dingtalk.client import DingTalkConnector
from finoa.connectors.dingtalk.mapping import DingTalkConfig, claim_from_instance

pytestmark = pytest.mark.anyio
RUNTIME = util_models.RuntimeOptions()


def sdk_config(sim: DingTalkSim) -> open_api_models.Config:
    host = sim.url.removeprefix("http://")
    return open_api_models.Config(protocol="http", region_id="central", endpoint=host)


def sdk_token(sim: DingTalkSim) -> str:
    request = oauth_models.GetAccessTokenRequest(
        app_key=sim.credentials["appKey"], app_secret=sim.credentials["appSecret"]
    )
    answer = OAuthClient(sdk_config(sim)).get_access_token(request)
    assert answer.body.expire_in == 7200
    return str(answer.body.access_token)


def test_the_sdk_gets_a_token_and_a_wrong_secret_is_refused(sim: DingTalkSim) -> None:
    assert len(sdk_token(sim)) >= 16
    bad = oauth_models.GetAccessTokenRequest(app_key=sim.credentials["appKey"], app_secret="nope")
    with pytest.raises(Exception) as caught:
        OAuthClient(sdk_config(sim)).get_access_token(bad)
    assert getattr(caught.value, "code", None) == "invalidClientIdOrSecret"


def test_an_instance_the_sdk_starts_is_a_claim_for_finoa(sim: DingTalkSim) -> None:
    token = sdk_token(sim)
    rows = [
        [
            {"name": "费用类别", "value": "交通费"},
            {"name": "金额（元）", "value": "88.50"},
            {"name": "费用日期", "value": "2026-11-20"},
        ]
    ]
    values = [
        wf.StartProcessInstanceRequestFormComponentValues(name="报销事由", value="打车 客户拜访"),
        wf.StartProcessInstanceRequestFormComponentValues(
            name="费用明细", value=json.dumps(rows, ensure_ascii=False)
        ),
    ]
    request = wf.StartProcessInstanceRequest(
        process_code=sim.credentials["processCode"],
        originator_user_id="E0021",
        dept_id=4,
        microapp_agent_id=sim.credentials["agentId"],
        form_component_values=values,
    )
    headers = wf.StartProcessInstanceHeaders(x_acs_dingtalk_access_token=token)
    client = WorkflowClient(sdk_config(sim))
    instance_id = client.start_process_instance_with_options(
        request, headers, RUNTIME
    ).body.instance_id
    got = client.get_process_instance_with_options(
        wf.GetProcessInstanceRequest(process_instance_id=instance_id),
        wf.GetProcessInstanceHeaders(x_acs_dingtalk_access_token=token),
        RUNTIME,
    ).body.result
    assert got.status == "RUNNING" and got.originator_user_id == "E0021"
    claim = claim_from_instance(DingTalkConfig.parse(sim.config()), instance_id, got.to_map())
    assert (claim.applicant_id, claim.department_id, claim.external_id) == (
        "E0021",
        "D03",
        instance_id,
    )
    assert [(line.category.value, str(line.amount)) for line in claim.lines] == [
        ("transport", "88.50")
    ]
    ids = client.list_process_instance_ids_with_options(
        wf.ListProcessInstanceIdsRequest(
            process_code=sim.credentials["processCode"], start_time=0, max_results=20, next_token=0
        ),
        wf.ListProcessInstanceIdsHeaders(x_acs_dingtalk_access_token=token),
        RUNTIME,
    ).body.result
    assert ids.list == [instance_id]


def test_the_sdk_sees_dingtalks_errors(sim: DingTalkSim) -> None:
    client = WorkflowClient(sdk_config(sim))
    request = wf.StartProcessInstanceRequest(
        process_code=sim.credentials["processCode"],
        originator_user_id="E0099",
        dept_id=3,
        form_component_values=[
            wf.StartProcessInstanceRequestFormComponentValues(name="报销事由", value="x")
        ],
    )
    with pytest.raises(Exception) as departed:
        client.start_process_instance_with_options(
            request,
            wf.StartProcessInstanceHeaders(x_acs_dingtalk_access_token=sdk_token(sim)),
            RUNTIME,
        )
    assert getattr(departed.value, "code", None) == "processInstanceInvalidParameter"
    with pytest.raises(Exception) as expired:
        client.get_process_instance_with_options(
            wf.GetProcessInstanceRequest(process_instance_id="x"),
            wf.GetProcessInstanceHeaders(x_acs_dingtalk_access_token="stale"),
            RUNTIME,
        )
    assert getattr(expired.value, "code", None) == "InvalidAuthentication"


async def test_the_sdk_reads_what_finoa_creates(sim: DingTalkSim) -> None:
    async with httpx.AsyncClient() as http:
        connector = DingTalkConnector(sim.config(callback_url="http://127.0.0.1:9/hook"), http)
        (created,) = await connector.deliver([message("approval.create", CLAIM)])
        (todo,) = await connector.deliver([message("todo.push", TODO, 2)])
    assert created.ok and todo.ok
    token = sdk_token(sim)
    got = (
        WorkflowClient(sdk_config(sim))
        .get_process_instance_with_options(
            wf.GetProcessInstanceRequest(process_instance_id=created.response["oa_approval_id"]),
            wf.GetProcessInstanceHeaders(x_acs_dingtalk_access_token=token),
            RUNTIME,
        )
        .body.result
    )
    values = {v.name: v.value for v in got.form_component_values}
    assert all(isinstance(v, str) for v in values.values())
    assert values["finoa单号"] == CLAIM["id"]
    todos = TodoClient(sdk_config(sim))
    found = todos.get_todo_task_by_source_id_with_options(
        "union-E0010",
        "T-1",
        todo_models.GetTodoTaskBySourceIdHeaders(x_acs_dingtalk_access_token=token),
        RUNTIME,
    ).body
    assert (
        found.subject == TODO["title"]
        and found.executor_ids == ["union-E0010"]
        and found.done is False
    )


def test_todo_create_update_delete_through_the_sdk(sim: DingTalkSim) -> None:
    token = sdk_token(sim)
    client = TodoClient(sdk_config(sim))
    created = client.create_todo_task_with_options(
        "union-E0002",
        todo_models.CreateTodoTaskRequest(
            subject="审批报销",
            source_id="S-1",
            executor_ids=["union-E0002"],
            operator_id="union-E0002",
        ),
        todo_models.CreateTodoTaskHeaders(x_acs_dingtalk_access_token=token),
        RUNTIME,
    ).body
    assert created.id and created.done is False
    headers: Any = todo_models.UpdateTodoTaskHeaders(x_acs_dingtalk_access_token=token)
    client.update_todo_task_with_options(
        "union-E0002",
        created.id,
        todo_models.UpdateTodoTaskRequest(done=True, operator_id="union-E0002"),
        headers,
        RUNTIME,
    )
    assert sim.get("/_sim/todos")[0]["done"] is True
    client.delete_todo_task_with_options(
        "union-E0002",
        created.id,
        todo_models.DeleteTodoTaskRequest(operator_id="union-E0002"),
        todo_models.DeleteTodoTaskHeaders(x_acs_dingtalk_access_token=token),
        RUNTIME,
    )
    assert sim.get("/_sim/todos") == []
    with pytest.raises(Exception) as unknown:
        client.create_todo_task_with_options(
            "union-NOBODY",
            todo_models.CreateTodoTaskRequest(subject="x", executor_ids=["union-NOBODY"]),
            todo_models.CreateTodoTaskHeaders(x_acs_dingtalk_access_token=token),
            RUNTIME,
        )
    assert getattr(unknown.value, "code", None) == "todoUserNotFound"
