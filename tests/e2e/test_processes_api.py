"""Process definitions over real HTTP against a hub process, on SQLite and PostgreSQL:
deploying BPMN + DMN as multipart or a bare XML body, versions, export, refusals as
problem+json naming element and line, the scopes, and a deployed process routing claims."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e.helpers import HubClient, StackFactory, assert_problem, claim_body

from finoa.workflow.specs import DEFAULT_BPMN, DEFAULT_DMN

BPMN = DEFAULT_BPMN.read_bytes()
DMN = DEFAULT_DMN.read_bytes()


@pytest.fixture(scope="module")
def hub(start_stack: StackFactory) -> Iterator[HubClient]:
    with start_stack(auto_decide=False) as h:
        yield h


def test_deploy_versions_and_export_over_http(hub: HubClient) -> None:
    """The controller's client deploys the claim process with a raised threshold (multipart,
    BPMN and DMN): 201, version 1. The same files answer 200, version 1. The export is the
    bytes deployed; a claim of 6,000 元 submitted now needs the manager only."""
    manager = hub.token_with("processes:manage processes:read")
    raised = DMN.replace(b"&lt; 500000</text>", b"&lt; 1000000</text>")
    files = [
        ("files", ("claim.bpmn", BPMN, "application/xml")),
        ("files", ("levels.dmn", raised, "application/xml")),
    ]
    url = f"{hub.url}/api/v1/processes"
    first = hub.http.post(url, files=files, headers=hub.auth(manager))
    assert first.status_code == 201, first.text
    assert (first.json()["process_key"], first.json()["version"]) == ("claim_approval", 1)
    again = hub.http.post(url, files=files, headers=hub.auth(manager))
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 1 and again.json()["created"] is False

    exported = hub.http.get(f"{url}/claim_approval/bpmn", headers=hub.auth(manager))
    assert exported.status_code == 200
    assert exported.content == BPMN and exported.headers["x-process-version"] == "1"
    dmn = hub.http.get(f"{url}/claim_approval/dmn?version=1", headers=hub.auth(manager))
    assert dmn.content == raised
    shipped = hub.http.get(f"{url}/claim_approval/dmn?version=0", headers=hub.auth(manager))
    assert shipped.content == DMN
    listed = hub.http.get(url, headers=hub.auth(manager)).json()
    latest = [(p["process_key"], p["version"]) for p in listed if p["latest"]]
    assert ("claim_approval", 1) in latest and ("advance_approval", 0) in latest

    claim = hub.submit(claim_body(amount="5469.50"))  # with its 530 元 line: 5,999.50 元
    assert [t["role"] for t in claim["tasks"]] == ["manager"]


def test_a_bare_bpmn_body_and_a_refused_one(hub: HubClient) -> None:
    """A relabelled BPMN alone (application/xml) is version 2 and keeps version 1's
    decisions. One naming an undeployed decision is 422, naming the task and its line, and
    stores nothing."""
    manager = hub.token_with("processes:manage processes:read")
    url = f"{hub.url}/api/v1/processes"
    relabelled = BPMN.replace(b"Direct manager approval", b"Line manager approval")
    headers = {**hub.auth(manager), "content-type": "application/xml"}
    second = hub.http.post(url, content=relabelled, headers=headers)
    assert second.status_code in (200, 201), second.text
    version = second.json()["version"]
    assert version >= 2

    bad = BPMN.replace(b'decisionRef="approval_levels"', b'decisionRef="levels_2027"')
    refused = hub.http.post(url, content=bad, headers=headers)
    problem = assert_problem(refused, 422, field="body.bpmn", detail_contains="levels_2027")
    line = bad.decode()[: bad.decode().index('id="determine_levels"')].count("\n") + 1
    (error,) = problem["errors"]
    assert (error["field"], error["element"], error["line"]) == (
        "body.bpmn",
        "determine_levels",
        line,
    )
    assert error["message"].startswith(f"line {line}: determine_levels: decision 'levels_2027'")
    assert f"line {line}: determine_levels" in problem["detail"]
    current = hub.http.get(f"{url}/claim_approval/bpmn", headers=hub.auth(manager))
    assert current.headers["x-process-version"] == str(version)

    broken = hub.http.post(url, content=b"<bpmn:definitions", headers=headers)
    assert_problem(broken, 422, field="body.bpmn", detail_contains="line 1")
    wrong_type = hub.http.post(
        url, content=b"{}", headers={**hub.auth(manager), "content-type": "application/json"}
    )
    assert_problem(wrong_type, 422, field="content-type")


def test_scopes_and_unknown_processes(hub: HubClient) -> None:
    reader = hub.token_with("processes:read")
    url = f"{hub.url}/api/v1/processes"
    denied = hub.http.post(
        url, content=BPMN, headers={**hub.auth(reader), "content-type": "application/xml"}
    )
    assert_problem(denied, 403, field="authorization", detail_contains="processes:manage")
    missing = hub.http.get(f"{url}/travel_approval/bpmn", headers=hub.auth(reader))
    assert_problem(missing, 404, field="process_key")
    no_version = hub.http.get(f"{url}/claim_approval/bpmn?version=99", headers=hub.auth(reader))
    assert_problem(no_version, 404, field="version")
