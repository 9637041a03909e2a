"""OA-led approvals through Weaver e-cology, with the hub, the e-cology simulator and the
ERP simulator as real processes (SQLite and PostgreSQL): a claim started in finoa becomes an
expense request (`doCreateRequest`) running e-cology's own workflow; how the request ends
(归档, 退回, 撤回) comes back as e-cology's signed callback and concludes the claim. A result
whose callback was lost is found by `finoa sync oa weaver`, and a second sweep changes
nothing. A request an employee submits in e-cology reaches the hub by the creator node's flow
action and becomes a claim linked to it; a repeat changes nothing, a form the mapping refuses
is refused naming the field and records nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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
class OaLedStack:
    hub: Server
    weaver: Server
    secrets: Secrets
    http: httpx.Client
    env: dict[str, str]
    credentials: dict[str, str]

    def token(self) -> dict[str, str]:
        bearer = hub_token(self.hub.url, self.secrets.client_id, self.secrets.client_secret,
                           http=self.http)  # fmt: skip
        return {"authorization": f"Bearer {bearer}"}

    def claim(self, claim_id: str) -> dict[str, Any]:
        bearer = self.token()["authorization"].removeprefix("Bearer ")
        return read_claim(self.hub.url, bearer, claim_id, self.http)

    def submit(self) -> dict[str, Any]:
        answer = self.http.post(
            f"{self.hub.url}/api/v1/claims", content=orjson.dumps(claim_body()),
            headers={**self.token(), "content-type": "application/json"},
        )  # fmt: skip
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def request_of(self, claim_id: str) -> dict[str, Any]:
        """The e-cology request finoa made for the claim (its claim id in `finoadh`)."""

        def find() -> dict[str, Any] | None:
            rows = self.http.get(f"{self.weaver.url}/_sim/requests").json()
            return next((r for r in rows if r["mainData"].get("finoadh") == claim_id), None)

        found: dict[str, Any] = wait_for(find, 30, f"the e-cology request of {claim_id}")
        return found

    def end(self, request_id: int, result: str, **extra: Any) -> None:
        answer = self.http.post(
            f"{self.weaver.url}/_sim/requests/{request_id}/end",
            content=orjson.dumps({"result": result, **extra}),
        )
        assert answer.status_code == 200, answer.text

    def wait_status(self, claim_id: str, status: str) -> dict[str, Any]:
        reached: dict[str, Any] = wait_for(
            lambda: (c := self.claim(claim_id))["status"] == status and c,
            30,
            f"claim {claim_id} to be {status}",
        )
        return reached

    def sweep(self) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "finoa", "sync", "oa", "weaver", "--since", "1h"],
            env={**os.environ, **self.env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    def claims_of(self, applicant_id: str) -> list[dict[str, Any]]:
        answer = self.http.get(
            f"{self.hub.url}/api/v1/claims", params={"applicant_id": applicant_id},
            headers=self.token(),
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    def employee_submits(self, creator: str, *, callback: bool = True, **cells: str) -> int:
        """An employee submits the expense form in e-cology; the request id (`callback`
        false: its start never reaches the hub)."""
        line = {"fylb": "transport", "je": "86.50", "se": "0.00", "fyrq": "2025-11-03",
                "sm": "出租车 taxi", **cells}  # fmt: skip
        form = {
            "creator": creator,
            "callback": callback,
            "requestName": "客户拜访交通费",
            "mainData": [{"fieldName": name, "fieldValue": value} for name, value in
                         (("sqr", creator), ("sqbm", "D04"), ("sy", "客户拜访交通费"),
                          ("je", line["je"]))],
            "detailData": [{"tableDBName": "formtable_main_214_dt1",
                            "workflowRequestTableRecords": [{"recordOrder": 0,
                             "workflowRequestTableFields": [
                                 {"fieldName": k, "fieldValue": v} for k, v in line.items()]}]}],
        }  # fmt: skip
        answer = self.http.post(f"{self.weaver.url}/_sim/requests", content=orjson.dumps(form))
        assert answer.status_code == 200, answer.text
        return int(answer.json()["data"]["requestid"])

    def callback(self, eventid: str) -> dict[str, Any]:
        """The simulator's callback once the hub answered it."""

        def settled() -> dict[str, Any] | None:
            rows = self.http.get(f"{self.weaver.url}/_sim/callbacks").json()
            row = next((c for c in rows if c["eventid"] == eventid), None)
            return row if row is not None and row["outcome"] != "pending" else None

        found: dict[str, Any] = wait_for(settled, 30, f"the callback {eventid} answered")
        return found

    def post_callback(self, body: dict[str, Any]) -> httpx.Response:
        """A callback signed as e-cology's flow action signs it."""
        raw, stamp = orjson.dumps(body), str(int(time.time() * 1000))
        sign = callback_signature(self.credentials["callback_secret"], stamp, raw)
        return self.http.post(
            f"{self.hub.url}/api/v1/webhooks/weaver", content=raw,
            headers={"content-type": "application/json", "appid": self.credentials["appid"],
                     "timestamp": stamp, "sign": sign},
        )  # fmt: skip


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OaLedStack]:
    directory: Path = tmp_path_factory.mktemp(f"weaver-oa-led-{request.param}")
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
                               "approvals": {"expense_claim": "oa-led"},
                               "config": weaver_config(weaver.url, credentials, hub_url=hub_url)},
                    "ledger": {"connector": "generic-erp", "default": True,
                               "config": {"base_url": erp.url, "api_key": secrets.erp_api_key}},
                }  # fmt: skip
                hub = start_configured_hub(env, connectors, database_url, hub_port, directory)
                sweep_env = {**env, "FINOA_CONFIG": str(directory / "finoa.yaml"),
                             "FINOA_DATABASE_URL": database_url}  # fmt: skip
                try:
                    with httpx.Client(timeout=30) as http:
                        yield OaLedStack(hub, weaver, secrets, http, sweep_env, credentials)
                finally:
                    hub.stop()
        finally:
            erp.stop()


def test_a_claim_started_in_finoa_runs_as_an_ecology_request_and_is_posted(
    stack: OaLedStack,
) -> None:
    claim = stack.submit()
    assert claim["status"] == "in_approval" and claim["tasks"] == []  # e-cology runs it
    request = stack.request_of(claim["id"])
    assert request["workflowId"] == "6" and request["channel"] == "rest"
    assert request["mainData"]["je"] == f"{claim['total_fen'] / 100:.2f}"
    assert len(request["detailData"][0]["workflowRequestTableRecords"]) == 2
    stack.end(request["requestid"], "archive")
    posted = stack.wait_status(claim["id"], "posted")
    assert posted["voucher"]["erp_voucher_no"]
    wait_for(
        lambda: next(
            c for c in stack.http.get(f"{stack.weaver.url}/_sim/callbacks").json()
            if c["eventid"] == f"weaver-request-{request['requestid']}-archive"
        )["outcome"] == "delivered",
        30,
        "the callback answered with HTTP 200",
    )  # fmt: skip


def test_rejected_and_withdrawn_in_ecology_conclude_the_claims(stack: OaLedStack) -> None:
    rejected, withdrawn = stack.submit(), stack.submit()
    stack.end(stack.request_of(rejected["id"])["requestid"], "reject", remark="发票缺失")
    stack.end(stack.request_of(withdrawn["id"])["requestid"], "withdraw")
    assert stack.wait_status(rejected["id"], "rejected")["reason"] == "发票缺失"
    stack.wait_status(withdrawn["id"], "withdrawn")


def test_a_sweep_finds_a_result_whose_callback_was_lost_and_a_second_changes_nothing(
    stack: OaLedStack,
) -> None:
    lost, running = stack.submit(), stack.submit()
    request = stack.request_of(lost["id"])
    stack.request_of(running["id"])
    stack.end(request["requestid"], "archive", callback=False)
    assert stack.claim(lost["id"])["status"] == "in_approval"  # nothing told the hub

    first = stack.sweep()
    assert first["applied"] == 1 and first["refused"] == [], first  # the others: duplicates
    stack.wait_status(lost["id"], "posted")
    assert stack.claim(running["id"])["status"] == "in_approval"  # still running in e-cology
    before = {c: stack.claim(c)["status"] for c in (lost["id"], running["id"])}

    second = stack.sweep()
    assert second["applied"] == 0 and second["duplicates"] == first["seen"], second
    assert second["refused"] == []
    assert {c: stack.claim(c)["status"] for c in before} == before


def test_a_request_an_employee_submits_in_ecology_becomes_a_claim_and_is_posted(
    stack: OaLedStack,
) -> None:
    request_id = stack.employee_submits("E0031")
    started = stack.callback(f"weaver-request-{request_id}-create")
    assert started["outcome"] == "delivered", started

    claim = next(c for c in stack.claims_of("E0031") if c["external_id"] == str(request_id))
    assert claim["status"] == "in_approval" and claim["tasks"] == []  # e-cology runs it
    assert claim["total_fen"] == 8650 and claim["department_id"] == "D04"
    assert stack.claim(claim["id"])["lines"][0]["expense_date"] == "2025-11-03"
    stack.end(request_id, "archive")
    posted = stack.wait_status(claim["id"], "posted")
    assert posted["voucher"]["erp_voucher_no"]


def test_the_start_callback_sent_again_is_a_duplicate_and_changes_nothing(
    stack: OaLedStack,
) -> None:
    request_id = stack.employee_submits("E0032", je="12.00")
    started = stack.callback(f"weaver-request-{request_id}-create")
    assert started["outcome"] == "delivered", started
    before = stack.claims_of("E0032")
    (claim,) = [c for c in before if c["external_id"] == str(request_id)]

    again = stack.post_callback(started["body"])
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True and again.json()["claim_id"] == claim["id"]
    assert stack.claims_of("E0032") == before
    stack.end(request_id, "reject", remark="发票缺失")
    assert stack.wait_status(claim["id"], "rejected")["reason"] == "发票缺失"


def test_a_request_whose_form_is_invalid_is_refused_naming_the_field_and_records_nothing(
    stack: OaLedStack,
) -> None:
    before = stack.claims_of("E0031")
    request_id = stack.employee_submits("E0031", fyrq="03/11/2025")
    refused = stack.callback(f"weaver-request-{request_id}-create")
    assert refused["outcome"].startswith("refused 422"), refused  # final: not sent again
    assert refused["attempts"] == 1

    again = stack.post_callback(refused["body"])
    assert again.status_code == 422
    assert again.headers["content-type"].startswith("application/problem+json")
    problem = again.json()
    assert problem["field"] == "request.lines[0].expense_date", problem
    assert "request.lines[0].expense_date" in refused["outcome"]  # what e-cology was told

    unknown = stack.post_callback({**refused["body"], "eventid": "x-1", "requestid": "999999"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "requestid", unknown.text
    assert stack.claims_of("E0031") == before


def test_a_sweep_finds_a_request_an_employee_started_whose_start_was_lost(
    stack: OaLedStack,
) -> None:
    request_id = stack.employee_submits("E0030", callback=False, je="23.00")
    assert not [c for c in stack.claims_of("E0030") if c["external_id"] == str(request_id)]

    first = stack.sweep()  # listed acting as E0030: her own requests
    assert not [r for r in first["refused"] if str(request_id) in r], first
    (claim,) = [c for c in stack.claims_of("E0030") if c["external_id"] == str(request_id)]
    assert claim["status"] == "in_approval" and claim["total_fen"] == 2300

    stack.end(request_id, "archive", callback=False)  # and its result is lost too
    second = stack.sweep()
    assert second["applied"] >= 1, second
    stack.wait_status(claim["id"], "posted")
    third = stack.sweep()
    assert third["applied"] == 0 and third["duplicates"] == third["seen"], third
    assert [c["id"] for c in stack.claims_of("E0030") if c["external_id"] == str(request_id)] == [
        claim["id"]
    ]
