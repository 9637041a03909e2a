"""Bad input over real HTTP: each case is a 4xx problem+json naming the field, and writes nothing.

"Writes nothing" is checked from the outside, once the stack is quiet: the hub's claim and
outbox counts and both simulators' statistics are the same before and after the request.
Nobody decides in the OA here, so approval tasks stay pending until a test decides them.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
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


def assert_webhook_header_refused(
    hub: HubClient, name: str, value: str | bytes | None, words: str
) -> None:
    """A correctly signed claim webhook with header `name` changed to `value` (None: left
    out) is a 401 naming that header, and writes nothing."""
    body, msg_id = claim_event()
    headers: dict[str, Any] = signed_headers(hub.stack.secrets.oa_webhook_secret, msg_id, body)
    if value is None:
        del headers[name]
    else:
        headers[name] = value
    with hub.writes_nothing():
        assert_problem(
            hub.send_webhook(body, headers),
            401,
            field=name,
            kind="invalid-signature",
            detail_contains=words,
        )


def test_webhook_without_an_id_is_401(hub: HubClient) -> None:
    assert_webhook_header_refused(hub, "webhook-id", None, "missing")


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


# -- input rules: each class of input that is refused before anything is stored ----------------


def raw_claim(change: Callable[[bytes], bytes]) -> bytes:
    """A valid claim's JSON, rewritten as bytes (for what a JSON encoder would not produce)."""
    return change(orjson.dumps(claim_body()))


def set_attachment(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body["attachments"] = [{"name": "receipt.pdf", "sha256": "a" * 64, "size": 1, **fields}]

    return change


def many_lines(count: int) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        line = {"category": "transport", "amount": "1", "expense_date": "2025-11-03"}
        body["lines"] = [dict(line) for _ in range(count)]

    return change


# (change, field, words the detail must contain)
REFUSED_TEXT: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    "nul-in-title": (set_field("title", "taxi\x00fare"), "title", "U+0000"),
    "bell-in-description": (set_line("description", "ding\x07"), "lines[0].description", "U+0007"),
    "line-break-in-applicant": (set_field("applicant_id", "E00\n11"), "applicant_id", "U+000A"),
    "nul-in-attachment-type": (
        set_attachment(content_type="application/pdf\x00"),
        "attachments[0].content_type",
        "pattern",
    ),
    "zero-width-title": (set_field("title", "\u200b\u200b"), "title", "invisible"),
    "bom-title": (set_field("title", "\ufeff"), "title", "invisible"),
    "nbsp-only-title": (set_field("title", "\xa0\u3000\xa0"), "title", "at least 1 character"),
    "zero-width-project": (set_field("project_id", "\u200d"), "project_id", "invisible"),
    "zero-width-description": (
        set_line("description", "\u2060"),
        "lines[0].description",
        "invisible",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED_TEXT))
def test_control_and_invisible_only_text_is_refused(hub: HubClient, case: str) -> None:
    """NUL would make PostgreSQL fail the write; it is refused first, on every database."""
    change, field, words = REFUSED_TEXT[case]
    body = claim_body()
    change(body)
    with hub.writes_nothing():
        assert_problem(
            hub.post_claim(body), 422, field=field, kind="validation", detail_contains=words
        )


REFUSED_AMOUNTS = {
    "underscores": "1_280.50",
    "arabic-indic-digits": "١٢٨٠",
    "fullwidth-digits": "１２８０",
    "exponent-text": "1.2805e3",
    "surrounding-spaces": " 1280.50 ",
    "plus-sign": "+1280.50",
    "infinity": "Infinity",
    "leading-point": ".50",
}


@pytest.mark.parametrize("case", list(REFUSED_AMOUNTS))
def test_amount_that_is_not_a_plain_decimal_is_refused(hub: HubClient, case: str) -> None:
    body = claim_body()
    body["lines"][0]["amount"] = REFUSED_AMOUNTS[case]
    with hub.writes_nothing():
        assert_problem(
            hub.post_claim(body), 422, field="lines[0].amount", detail_contains="plain form"
        )


@pytest.mark.parametrize("number", [b"1.2805e3", b"12805E-1", b"1e2"])
def test_amount_written_as_a_json_number_with_an_exponent_is_refused(
    hub: HubClient, number: bytes
) -> None:
    raw = raw_claim(lambda b: b.replace(b'"amount":"1280.50"', b'"amount":' + number))
    assert number in raw
    with hub.writes_nothing():
        assert_problem(
            hub.post_claim(None, raw=raw), 422, field="lines[0].amount", detail_contains="plain"
        )


def test_amount_as_a_plain_json_number_is_accepted(hub: HubClient) -> None:
    raw = raw_claim(lambda b: b.replace(b'"amount":"1280.50"', b'"amount":1280.5'))
    response = hub.post_claim(None, raw=raw)
    assert response.status_code == 201, response.text
    assert response.json()["lines"][0]["amount_fen"] == 128050


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.replace(b'"title":', b'"title":"first","title":'), "title"),
        (
            lambda b: b.replace(b'"amount":"1280.50"', b'"amount":"1.00","amount":"1280.50"'),
            "lines[0].amount",
        ),
        (lambda b: b.replace(b'"tax":"30.00"', b'"tax":"30.00","tax":"0"'), "lines[1].tax"),
    ],
    ids=["top-level", "in-the-first-line", "in-the-second-line"],
)
def test_repeated_key_in_a_claim_is_refused_naming_it(
    hub: HubClient, change: Callable[[bytes], bytes], field: str
) -> None:
    raw = raw_claim(change)
    with hub.writes_nothing():
        problem = assert_problem(
            hub.post_claim(None, raw=raw), 422, field=field, detail_contains="more than once"
        )
    assert problem["errors"] == [{"field": field, "message": problem["detail"][len(field) + 2 :]}]


def test_repeated_key_in_a_decision_is_refused(hub: HubClient, pending: dict[str, Any]) -> None:
    raw = b'{"approver_id": "E0010", "decision": "reject", "decision": "approve"}'
    with hub.writes_nothing():
        response = hub.http.post(
            f"{hub.url}/api/v1/tasks/{pending['id']}/decision",
            content=raw,
            headers={**hub.auth(), "content-type": "application/json"},
        )
        assert_problem(response, 422, field="decision", detail_contains="more than once")
    assert_still_pending(hub, pending)


def signed_raw_webhook(hub: HubClient, body: bytes) -> httpx.Response:
    headers = signed_headers(hub.stack.secrets.oa_webhook_secret, f"msg-{uuid.uuid4().hex}", body)
    return hub.send_webhook(body, headers)


def test_repeated_key_in_a_webhook_is_refused_naming_it(
    hub: HubClient, pending: dict[str, Any]
) -> None:
    claim = orjson.dumps({"type": "claim.submitted", "data": claim_body()})
    claim = claim.replace(b'"amount":"1280.50"', b'"amount":"1","amount":"1280.50"')
    decided = {"task_id": pending["id"], "decision": "approve", "approver_id": "E0010"}
    batch = orjson.dumps(
        {
            "type": "batch",
            "data": {
                "events": [
                    {"id": "e1", "type": "claim.submitted", "data": claim_body()},
                    {"id": "e2", "type": "task.decided", "data": decided},
                ]
            },
        }
    ).replace(b'"task_id":', b'"task_id":"T-other","task_id":')
    with hub.writes_nothing():
        assert_problem(
            signed_raw_webhook(hub, claim), 422, field="data.lines[0].amount", kind="validation"
        )
        assert_problem(
            signed_raw_webhook(hub, batch),
            422,
            field="data.events[1].data.task_id",
            detail_contains="more than once",
        )
    assert_still_pending(hub, pending)


def test_control_characters_in_a_webhook_are_refused(hub: HubClient) -> None:
    with hub.writes_nothing():
        response = hub.webhook({"type": "claim.submitted", "data": claim_body(title="a\x00b")})
        assert_problem(response, 422, field="data.title", detail_contains="U+0000")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/api/v1/claims?page={2**63}", "page"),
        (f"/api/v1/claims?page={10**30}", "page"),
        ("/api/v1/claims?page=0", "page"),
        ("/api/v1/claims?page_size=101", "page_size"),
        ("/api/v1/claims?page_size=100000", "page_size"),
        ("/api/v1/claims?applicant_id=E%0011", "applicant_id"),
        ("/api/v1/claims?department_id=" + "D" * 33, "department_id"),
        ("/api/v1/claims/CL%00x", "claim_id"),
        ("/api/v1/claims/" + "C" * 41, "claim_id"),
    ],
)
def test_query_and_path_values_outside_what_is_stored_are_refused(
    hub: HubClient, path: str, field: str
) -> None:
    """page × page_size must stay a 64-bit offset; ids as long as their columns, no NUL."""
    response = hub.http.get(hub.url + path, headers=hub.auth())
    assert_problem(response, 422, field=field, kind="validation")


def test_the_largest_allowed_page_is_answered(hub: HubClient) -> None:
    response = hub.http.get(
        f"{hub.url}/api/v1/claims?page=1000000&page_size=100", headers=hub.auth()
    )
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


@pytest.mark.parametrize("letter_id", [str(2**63), str(10**30), "0", "-1"])
def test_dead_letter_id_outside_64_bits_is_refused(hub: HubClient, letter_id: str) -> None:
    with hub.writes_nothing():
        response = hub.http.post(
            f"{hub.url}/api/v1/dead-letters/{letter_id}/replay", headers=hub.auth()
        )
        assert_problem(response, 422, field="letter_id", kind="validation")
    largest = hub.http.post(f"{hub.url}/api/v1/dead-letters/{2**63 - 1}/replay", headers=hub.auth())
    assert_problem(largest, 404, detail_contains="no dead letter")


UNBOUNDED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "21-invoice-refs": (
        set_line("invoice_refs", [str(10**19 + i) for i in range(21)]),
        "lines[0].invoice_refs",
    ),
    "long-invoice-ref": (set_line("invoice_refs", ["9" * 41]), "lines[0].invoice_refs[0]"),
    "51-attachments": (
        lambda body: body.update(
            attachments=[{"name": f"r{i}.pdf", "sha256": "a" * 64, "size": 1} for i in range(51)]
        ),
        "attachments",
    ),
    "201-lines": (many_lines(201), "lines"),
    "long-description": (set_line("description", "x" * 501), "lines[0].description"),
    "long-title": (set_field("title", "x" * 201), "title"),
}


@pytest.mark.parametrize("case", list(UNBOUNDED))
def test_lists_and_texts_are_bounded(hub: HubClient, case: str) -> None:
    change, field = UNBOUNDED[case]
    body = claim_body()
    change(body)
    with hub.writes_nothing():
        assert_problem(hub.post_claim(body), 422, field=field, kind="validation")


def test_comment_is_bounded(hub: HubClient, pending: dict[str, Any]) -> None:
    with hub.writes_nothing():
        response = hub.decide(
            pending["id"], {"approver_id": "E0010", "decision": "reject", "comment": "x" * 1001}
        )
        assert_problem(response, 422, field="comment", kind="validation")
        response = hub.decide(
            pending["id"], {"approver_id": "E0010", "decision": "reject", "comment": "\u200b"}
        )
        assert_problem(response, 422, field="comment", detail_contains="invisible")
    assert_still_pending(hub, pending)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "a/b.pdf", "a\\b.pdf", "..", ".", "/abs.pdf", "r\x00.pdf"]
)
def test_attachment_name_with_a_path_is_refused(hub: HubClient, name: str) -> None:
    body = claim_body()
    set_attachment(name=name)(body)
    with hub.writes_nothing():
        assert_problem(hub.post_claim(body), 422, field="attachments[0].name", kind="validation")


def test_bare_attachment_names_are_accepted(hub: HubClient) -> None:
    body = claim_body()
    set_attachment(name="发票 2025..11.pdf")(body)
    response = hub.post_claim(body)
    assert response.status_code == 201, response.text
    assert response.json()["attachments"][0]["name"] == "发票 2025..11.pdf"


# -- credentials with characters beyond ASCII ---------------------------------------------------


def test_non_ascii_client_secret_is_an_ordinary_401(hub: HubClient) -> None:
    with hub.writes_nothing():
        for secret in ("密码", "test-client-secret\u00e9", "\U0001f511"):
            response = hub.http.post(
                f"{hub.url}/api/v1/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": hub.stack.secrets.client_id,
                    "client_secret": secret,
                },
            )
            assert_problem(response, 401, field="client_secret", kind="invalid-client")


def test_non_ascii_basic_credentials_are_400(hub: HubClient) -> None:
    for value in (
        "Basic 密码".encode(),
        b"Basic \xff\xfe",
        b"Basic " + base64.b64encode(b"\xff:\xfe"),
    ):
        response = hub.http.post(
            f"{hub.url}/api/v1/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"authorization": value},
        )
        assert_problem(response, 400, field="authorization", kind="invalid-request")


def test_non_ascii_bearer_token_is_401(hub: HubClient) -> None:
    for value in ("Bearer 密码".encode(), b"Bearer \xff", ("Bearer " + hub.token + "é").encode()):
        response = hub.http.get(f"{hub.url}/api/v1/claims", headers={"authorization": value})
        assert_problem(response, 401, field="authorization", kind="unauthorized")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("webhook-signature", "v1,密码".encode(), "does not match"),
        ("webhook-signature", b"v1,\xff\xfe", "does not match"),
        ("webhook-timestamp", "١٧".encode(), "plain digits"),
        ("webhook-timestamp", "１７００".encode(), "plain digits"),
    ],
    ids=["chinese-signature", "latin1-signature", "arabic-digits", "fullwidth-digits"],
)
def test_non_ascii_webhook_headers_are_401(
    hub: HubClient, name: str, value: bytes, words: str
) -> None:
    assert_webhook_header_refused(hub, name, value, words)


@pytest.mark.parametrize(
    "shape", ["inner-space", "plus-sign", "leading-zero", "underscores", "fraction"]
)
def test_webhook_timestamp_that_is_not_a_canonical_integer_is_401(
    hub: HubClient, shape: str
) -> None:
    now = int(time.time())
    written = {
        "inner-space": f"{str(now)[:5]} {str(now)[5:]}",
        "plus-sign": f"+{now}",
        "leading-zero": f"0{now}",
        "underscores": f"{now:_}",
        "fraction": f"{now}.0",
    }[shape]
    assert_webhook_header_refused(hub, "webhook-timestamp", written, "plain digits")


@pytest.mark.parametrize("instance", ["no-such-oa", "generic-erp"])
def test_a_webhook_to_an_instance_that_takes_none_is_404_naming_instance(
    hub: HubClient, instance: str
) -> None:
    """Unknown instances, and instances without an inbound side (the ERP), take no webhooks."""
    body = orjson.dumps({"type": "claim.submitted", "data": claim_body()})
    headers = signed_headers(hub.stack.secrets.oa_webhook_secret, f"wh-{uuid.uuid4().hex}", body)
    with hub.writes_nothing():
        response = hub.http.post(
            f"{hub.url}/api/v1/webhooks/{instance}",
            content=body,
            headers={**headers, "content-type": "application/json"},
        )
        assert_problem(response, 404, field="instance", kind="unknown-instance")
