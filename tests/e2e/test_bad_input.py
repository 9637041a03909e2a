"""Bad input over real HTTP: each case is a 4xx problem+json naming the field, and writes nothing.

"Writes nothing" is checked from the outside, once the stack is quiet: the hub's claim and
outbox counts and both simulators' statistics are the same before and after the request.
Nobody decides in the OA here, so approval tasks stay pending until a test decides them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from e2e.helpers import (
    HubClient,
    StackFactory,
    assert_problem,
    assert_still_pending,
    claim_body,
    pending_task,
)

from finoa.security.signatures import new_secret, signed_headers

MAX_BODY_BYTES = 20_000


@pytest.fixture(scope="module")
def hub(start_stack: StackFactory) -> Iterator[HubClient]:
    with start_stack(
        auto_decide=False, extra_env={"FINOA_MAX_BODY_BYTES": str(MAX_BODY_BYTES)}
    ) as h:
        yield h


# -- claims -----------------------------------------------------------------------------------


def set_line(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body["lines"][0][name] = value

    return change


def set_field(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body[name] = value

    return change


def drop_field(name: str) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        del body[name]

    return change


# (change, status, field, problem kind, words the detail must contain)
CLAIM_CASES: dict[str, tuple[Callable[[dict[str, Any]], None], int, str, str, str]] = {
    "missing-title": (drop_field("title"), 422, "title", "validation", "required"),
    "missing-lines": (drop_field("lines"), 422, "lines", "validation", "required"),
    "extra-field": (set_field("colour", "red"), 422, "colour", "validation", "not a known field"),
    "lines-as-string": (set_field("lines", "two taxis"), 422, "lines", "validation", "list"),
    "amount-abc": (set_line("amount", "abc"), 422, "lines[0].amount", "validation", "decimal"),
    "amount-zero": (set_line("amount", "0"), 422, "lines[0].amount", "validation", "greater"),
    "amount-negative": (
        set_line("amount", "-12.50"),
        422,
        "lines[0].amount",
        "validation",
        "greater",
    ),
    "amount-3-decimals": (
        set_line("amount", "12.345"),
        422,
        "lines[0].amount",
        "validation",
        "2 decimal places",
    ),
    "unknown-employee": (
        set_field("applicant_id", "E9999"),
        422,
        "applicant_id",
        "invalid-input",
        "unknown employee E9999",
    ),
    "departed-employee": (
        set_field("applicant_id", "E0099"),
        422,
        "applicant_id",
        "invalid-input",
        "E0099 has left",
    ),
    "unknown-department": (
        set_field("department_id", "D99"),
        422,
        "department_id",
        "invalid-input",
        "unknown department D99",
    ),
    "unknown-cost-center": (
        set_field("cost_center_id", "CC99"),
        422,
        "cost_center_id",
        "invalid-input",
        "unknown cost center CC99",
    ),
    "unknown-project": (
        set_field("project_id", "P999"),
        422,
        "project_id",
        "invalid-input",
        "unknown project P999",
    ),
    "unknown-category": (
        set_line("category", "yacht"),
        422,
        "lines[0].category",
        "validation",
        "travel",
    ),
    "currency-usd": (set_field("currency", "USD"), 422, "currency", "validation", "CNY"),
    "tax-not-below-amount": (
        set_line("tax", "9999.00"),
        422,
        "lines[0].tax",
        "invalid-input",
        "less than the line amount",
    ),
}


@pytest.mark.parametrize("case", list(CLAIM_CASES))
def test_invalid_claim_is_refused_naming_the_field(hub: HubClient, case: str) -> None:
    change, status, field, kind, words = CLAIM_CASES[case]
    body = claim_body()
    change(body)
    with hub.writes_nothing():
        problem = assert_problem(
            hub.post_claim(body), status, field=field, kind=kind, detail_contains=words
        )
    if kind == "validation":
        assert problem["errors"][0]["field"] == field
    assert hub.oa_history(body["external_id"]) == []


def test_malformed_json_is_400(hub: HubClient) -> None:
    with hub.writes_nothing():
        response = hub.post_claim(None, raw=b'{"title": "taxi", "lines": [')
        assert_problem(
            response,
            400,
            field="body",
            kind="malformed-json",
            detail_contains="not valid JSON",
            prefixed=False,
        )


def big_claim_body() -> bytes:
    """A well-formed claim of about 30 kB: many lines with long descriptions."""
    body = claim_body()
    line = {
        "category": "transport",
        "amount": "23.00",
        "expense_date": "2025-11-04",
        "description": "出租车 taxi " + "x" * 200,
    }
    body["lines"] = [dict(line) for _ in range(110)]
    raw = orjson.dumps(body)
    assert 28_000 < len(raw) < 40_000
    return raw


def test_body_over_the_limit_is_413(hub: HubClient) -> None:
    raw = big_claim_body()
    with hub.writes_nothing():
        response = hub.post_claim(None, raw=raw)
        assert_problem(response, 413, field="body", kind="body-too-large", detail_contains="20000")


@pytest.mark.parametrize("path", ["/api/v1/claims", "/api/v1/webhooks/generic-oa"])
def test_streamed_body_over_the_limit_is_413(hub: HubClient, path: str) -> None:
    """Without a Content-Length (chunked), the limit is enforced while the body is read."""
    raw = big_claim_body()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), 4096):
            yield raw[start : start + 4096]

    with hub.writes_nothing():
        response = hub.http.post(
            hub.url + path,
            content=chunks(),
            headers={**hub.auth(), "content-type": "application/json"},
        )
        assert "content-length" not in response.request.headers
        assert_problem(response, 413, field="body", kind="body-too-large")


def test_body_just_under_the_limit_is_not_refused_for_size(hub: HubClient) -> None:
    body = claim_body(applicant_id="E9999")  # refused for the employee, not for the size
    body["lines"] = body["lines"] * 40
    raw = orjson.dumps(body)
    assert 10_000 < len(raw) < MAX_BODY_BYTES
    with hub.writes_nothing():
        assert_problem(hub.post_claim(None, raw=raw), 422, field="applicant_id")


# -- authentication and scopes ----------------------------------------------------------------


def test_no_token_is_401(hub: HubClient) -> None:
    with hub.writes_nothing():
        response = hub.http.post(f"{hub.url}/api/v1/claims", json=claim_body())
        assert_problem(response, 401, field="authorization", kind="unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_forged_token_is_401(hub: HubClient) -> None:
    with hub.writes_nothing():
        response = hub.post_claim(claim_body(), token="eyJhbGciOiJIUzI1NiJ9.e30.forged")
        assert_problem(
            response, 401, field="authorization", kind="unauthorized", detail_contains="invalid"
        )


def test_token_without_the_scope_is_403(hub: HubClient) -> None:
    read_only = hub.token_with("claims:read")
    with hub.writes_nothing():
        response = hub.post_claim(claim_body(), token=read_only)
        assert_problem(
            response,
            403,
            field="authorization",
            kind="insufficient-scope",
            detail_contains="claims:write",
        )
    # the same token still reads: the refusal was about the scope, not the token
    listing = hub.http.get(f"{hub.url}/api/v1/claims", headers=hub.auth(read_only))
    assert listing.status_code == 200, listing.text


def test_bad_client_secret_is_401(hub: HubClient) -> None:
    with hub.writes_nothing():
        response = hub.http.post(
            f"{hub.url}/api/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": hub.stack.secrets.client_id,
                "client_secret": "not-the-secret",
            },
        )
        problem = assert_problem(response, 401, field="client_secret", kind="invalid-client")
        assert "access_token" not in problem
        assert hub.stack.secrets.client_secret not in response.text


# -- webhooks ---------------------------------------------------------------------------------


def claim_event() -> tuple[bytes, str]:
    body = orjson.dumps({"type": "claim.submitted", "data": claim_body()})
    return body, f"msg-{uuid.uuid4().hex}"


def test_webhook_with_a_bad_signature_is_401(hub: HubClient) -> None:
    body, msg_id = claim_event()
    other_key = signed_headers(new_secret(), msg_id, body)
    tampered = signed_headers(hub.stack.secrets.oa_webhook_secret, msg_id, body)
    with hub.writes_nothing():
        for headers, sent in ((other_key, body), (tampered, body.replace(b"E0011", b"E0012"))):
            assert_problem(
                hub.send_webhook(sent, headers),
                401,
                field="webhook-signature",
                kind="invalid-signature",
                detail_contains="does not match",
            )
    assert hub.send_webhook(body, tampered).status_code == 200  # the control: correctly signed


def test_webhook_with_a_stale_timestamp_is_401(hub: HubClient) -> None:
    body, msg_id = claim_event()
    stale = signed_headers(hub.stack.secrets.oa_webhook_secret, msg_id, body, now=time.time() - 360)
    future = signed_headers(
        hub.stack.secrets.oa_webhook_secret, msg_id, body, now=time.time() + 360
    )
    with hub.writes_nothing():
        for headers in (stale, future):
            assert_problem(
                hub.send_webhook(body, headers),
                401,
                field="webhook-timestamp",
                kind="invalid-signature",
                detail_contains="tolerance",
            )
    fresh = signed_headers(hub.stack.secrets.oa_webhook_secret, msg_id, body)
    assert hub.send_webhook(body, fresh).status_code == 200


def test_webhook_without_an_id_is_401(hub: HubClient) -> None:
    body, msg_id = claim_event()
    headers = signed_headers(hub.stack.secrets.oa_webhook_secret, msg_id, body)
    del headers["webhook-id"]
    with hub.writes_nothing():
        assert_problem(
            hub.send_webhook(body, headers),
            401,
            field="webhook-id",
            kind="invalid-signature",
            detail_contains="missing",
        )


def test_signed_webhook_with_an_invalid_claim_names_the_field_in_the_body(hub: HubClient) -> None:
    bad_amount = claim_body()
    bad_amount["lines"][0]["amount"] = "abc"
    with hub.writes_nothing():
        response = hub.webhook({"type": "claim.submitted", "data": bad_amount})
        assert_problem(response, 422, field="data.lines[0].amount", kind="validation")
        response = hub.webhook({"type": "claim.submitted", "data": claim_body(project_id="P999")})
        assert_problem(response, 422, field="project_id", detail_contains="unknown project P999")
        response = hub.webhook({"type": "claim.exploded", "data": {}})
        assert_problem(response, 422, field="type", kind="validation")


# -- decisions --------------------------------------------------------------------------------


@pytest.fixture
def pending(hub: HubClient) -> dict[str, Any]:
    return pending_task(hub)


def test_unknown_task_is_404(hub: HubClient) -> None:
    with hub.writes_nothing():
        response = hub.decide("T-does-not-exist", {"approver_id": "E0010", "decision": "approve"})
        assert_problem(
            response, 404, field="task_id", detail_contains="unknown task T-does-not-exist"
        )


def test_decision_by_someone_else_is_403(hub: HubClient, pending: dict[str, Any]) -> None:
    with hub.writes_nothing():
        response = hub.decide(pending["id"], {"approver_id": "E0003", "decision": "approve"})
        assert_problem(
            response, 403, field="approver_id", detail_contains="E0003 is not the assignee"
        )
    assert_still_pending(hub, pending)


def test_rejection_without_a_comment_is_422(hub: HubClient, pending: dict[str, Any]) -> None:
    with hub.writes_nothing():
        for body in (
            {"approver_id": "E0010", "decision": "reject"},
            {"approver_id": "E0010", "decision": "reject", "comment": "   "},
        ):
            assert_problem(
                hub.decide(pending["id"], body),
                422,
                field="comment",
                kind="validation",
                detail_contains="reason",
            )
        assert_problem(
            hub.decide(pending["id"], {"approver_id": "E0010", "decision": "maybe"}),
            422,
            field="decision",
        )
    assert_still_pending(hub, pending)


def test_webhook_rejection_without_a_comment_names_the_comment(
    hub: HubClient, pending: dict[str, Any]
) -> None:
    event = {
        "type": "task.decided",
        "data": {"task_id": pending["id"], "decision": "reject", "approver_id": "E0010"},
    }
    with hub.writes_nothing():
        assert_problem(hub.webhook(event), 422, field="data.comment", detail_contains="reason")
    assert_still_pending(hub, pending)


def test_deciding_a_task_twice_is_409(hub: HubClient, pending: dict[str, Any]) -> None:
    first = hub.decide(pending["id"], {"approver_id": "E0010", "decision": "approve"})
    assert first.status_code == 200, first.text
    hub.wait_claim(pending["claim_id"], "posted")
    with hub.writes_nothing():
        for body in (
            {"approver_id": "E0010", "decision": "approve"},
            {"approver_id": "E0010", "decision": "reject", "comment": "改主意了 changed my mind"},
        ):
            assert_problem(
                hub.decide(pending["id"], body),
                409,
                field="task_id",
                kind="conflict",
                detail_contains="already decided",
            )
    claim = hub.claim(pending["claim_id"])
    assert claim["status"] == "posted"
    (task,) = claim["tasks"]
    assert (task["status"], task["comment"]) == ("approved", None)
    assert len(hub.erp_vouchers(pending["claim_id"])) == 1
