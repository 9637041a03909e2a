"""finoa's SOAP claims endpoint in-process on a real database (SQLite and PostgreSQL): raw
envelopes in, SOAP faults naming the field out, nothing written for bad input, the same
idempotency and audit as REST, and the XML defences (no DTD, no entities, size limit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import create_engine, func, select

from finoa.api.app import create_app
from finoa.api.soap_wsdl import CLAIMS_NS
from finoa.config import ALL_SCOPES, ApiClient, load_settings
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.soap.envelope import SOAP_ENV
from finoa.store.tables import audit_events, claims, inbox, outbox

SECRET = "s3cret"
URL = "/soap/v1/claims"
MAX_BODY = 50_000


@pytest.fixture
def db(db_url: str) -> Iterator[Any]:
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    yield engine
    engine.dispose()


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        max_body_bytes=MAX_BODY,
        clients=[
            ApiClient("legacy-oa", SECRET, ALL_SCOPES),
            ApiClient("reader", SECRET, ("claims:read",)),
        ],
    )
    seed = Hub.create(settings)
    load_masterdata(seed.db)
    seed.close()
    with TestClient(create_app(settings, dispatch=False)) as test_client:
        yield test_client


def auth(client: TestClient, client_id: str = "legacy-oa") -> dict[str, str]:
    answer = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": SECRET},
    )
    assert answer.status_code == 200, answer.text
    return {"authorization": f"Bearer {answer.json()['access_token']}"}


def claim_xml(*, external_id: str = "OA-77", amount: str = "1280.50", extra: str = "") -> str:
    return (
        f"<c:external_id>{external_id}</c:external_id>"
        "<c:applicant_id>E0011</c:applicant_id><c:department_id>D02</c:department_id>"
        "<c:title>上海客户拜访</c:title>"
        "<c:lines><c:line><c:category>travel</c:category>"
        f"<c:amount>{amount}</c:amount><c:expense_date>2025-11-03</c:expense_date>"
        "<c:invoice_refs><c:invoice_ref>25312000000012345678</c:invoice_ref></c:invoice_refs>"
        "</c:line><c:line><c:category>lodging</c:category><c:amount>530.00</c:amount>"
        "<c:tax>30.00</c:tax><c:expense_date>2025-11-03</c:expense_date></c:line></c:lines>"
        f"{extra}"
    )


def envelope(operation: str, inner: str, *, prolog: str = "") -> bytes:
    return (
        f'{prolog}<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:c="{CLAIMS_NS}">'
        f"<soap:Body><c:{operation}>{inner}</c:{operation}></soap:Body></soap:Envelope>"
    ).encode()


def submit_body(message_id: str | None = "m-1", **claim: Any) -> bytes:
    mid = f"<c:message_id>{message_id}</c:message_id>" if message_id else ""
    return envelope("SubmitClaim", f"{mid}<c:claim>{claim_xml(**claim)}</c:claim>")


def call(client: TestClient, body: bytes, headers: dict[str, str] | None) -> Any:
    response = client.post(
        URL, content=body, headers={"content-type": "text/xml", **(headers or {})}
    )
    assert response.headers["content-type"].startswith("text/xml"), response.text
    return response, etree.fromstring(response.content)


def ns(tag: str) -> str:
    return f"{{{CLAIMS_NS}}}{tag}"


def fault(client: TestClient, body: bytes, headers: dict[str, str] | None, status: int = 500):  # type: ignore[no-untyped-def]
    response, root = call(client, body, headers)
    assert response.status_code == status, response.text
    node = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert node is not None, response.text
    problem = node.find(f"detail/{ns('problem')}")
    assert problem is not None
    return {
        "faultcode": node.findtext("faultcode"),
        "faultstring": node.findtext("faultstring"),
        "status": int(problem.findtext(ns("status"))),
        "field": problem.findtext(ns("field")),
        "errors": [e.findtext(ns("field")) for e in problem.iter(ns("error"))],
    }


def counts(db: Any) -> dict[str, int]:
    with db.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (claims, inbox, outbox, audit_events)
        }


def test_wsdl_is_served_with_its_address(client: TestClient) -> None:
    response = client.get(URL + "?wsdl")
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    address = root.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address is not None and address.get("location") == "http://testserver" + URL
    operations = {o.get("name") for o in root.iter("{http://schemas.xmlsoap.org/wsdl/}operation")}
    assert operations == {"SubmitClaim", "GetClaimStatus"}


def test_submit_records_the_claim_audited_once_per_message_id(client: TestClient, db: Any) -> None:
    headers = auth(client)
    response, root = call(client, submit_body(), headers)
    assert response.status_code == 200, response.text
    answer = root.find(f"{{{SOAP_ENV}}}Body/{ns('SubmitClaimResponse')}")
    assert answer is not None
    claim_id = answer.findtext(ns("claim_id"))
    assert answer.findtext(ns("duplicate")) == "false"
    assert answer.findtext(ns("total_fen")) == str(128050 + 53000)
    rest = client.get(f"/api/v1/claims/{claim_id}", headers=headers).json()
    assert rest["source"] == "legacy-oa" and rest["external_id"] == "OA-77"
    assert answer.findtext(ns("status")) == rest["status"] == "in_approval"
    with db.connect() as conn:
        actors = set(
            conn.execute(
                select(audit_events.c.actor).where(audit_events.c.object_id == claim_id)
            ).scalars()
        )
    assert actors == {"client:legacy-oa"}
    before = counts(db)

    _, again = call(client, submit_body(), headers)
    repeat = again.find(f"{{{SOAP_ENV}}}Body/{ns('SubmitClaimResponse')}")
    assert repeat is not None and repeat.findtext(ns("claim_id")) == claim_id
    assert repeat.findtext(ns("duplicate")) == "true"
    assert counts(db) == before

    conflict = fault(client, submit_body(amount="99.00"), headers)
    assert conflict["status"] == 409 and conflict["field"] == "message_id"
    assert conflict["faultcode"] == "soap:Client"
    assert counts(db) == before

    # The same document again under another message id: a duplicate by its business key.
    _, resync = call(client, submit_body("m-2"), headers)
    assert resync.findtext(f".//{ns('claim_id')}") == claim_id
    assert resync.findtext(f".//{ns('duplicate')}") == "true"


def test_status_by_claim_id_and_by_external_id(client: TestClient) -> None:
    headers = auth(client)
    _, root = call(client, submit_body(external_id="OA-88"), headers)
    claim_id = root.findtext(f".//{ns('claim_id')}")
    reader = auth(client, "reader")
    # An external id is the sender's own: it is looked up among the caller's documents.
    by_id = (f"<c:claim_id>{claim_id}</c:claim_id>", reader)
    by_external_id = ("<c:external_id>OA-88</c:external_id>", headers)
    for inner, who in (by_id, by_external_id):
        response, status = call(client, envelope("GetClaimStatus", inner), who)
        assert response.status_code == 200, response.text
        assert status.findtext(f".//{ns('claim_id')}") == claim_id
        assert status.findtext(f".//{ns('version')}") == "1"
        assert status.findtext(f".//{ns('status')}") == "in_approval"
    elsewhere = envelope("GetClaimStatus", "<c:external_id>OA-88</c:external_id>")
    missing = fault(client, elsewhere, reader)
    assert (missing["status"], missing["field"]) == (404, "external_id")
    both = fault(
        client,
        envelope(
            "GetClaimStatus", f"<c:claim_id>{claim_id}</c:claim_id><c:external_id>x</c:external_id>"
        ),
        reader,
    )
    assert (both["status"], both["field"]) == (422, "claim_id")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (submit_body(amount="-1"), 422, "lines[0].amount"),
        (submit_body(amount="1e3"), 422, "lines[0].amount"),
        (submit_body(extra="<c:colour>red</c:colour>"), 422, "colour"),
        (submit_body(extra="<c:title>again</c:title>"), 400, "claim.title"),
        (submit_body(extra="<c:project_id>P999</c:project_id>"), 422, "project_id"),
        (submit_body(message_id=" "), 422, "message_id"),
        (envelope("SubmitClaim", "<c:message_id>m</c:message_id>"), 422, "claim"),
        (envelope("Explode", ""), 400, "Body"),
        (b"<not-soap/>", 400, "Envelope"),
        (b"<soap:Envelope", 400, "body"),
        (b"", 400, "body"),
    ],
)
def test_bad_input_is_a_fault_naming_the_field_and_writes_nothing(
    client: TestClient, db: Any, body: bytes, status: int, field: str
) -> None:
    before = counts(db)
    found = fault(client, body, auth(client))
    assert (found["status"], found["field"]) == (status, field), found
    assert found["faultstring"].startswith(f"{field}: ")
    assert counts(db) == before


def test_every_refused_field_is_listed(client: TestClient) -> None:
    body = submit_body(extra="<c:currency>USD</c:currency>", amount="0")
    found = fault(client, body, auth(client))
    assert set(found["errors"]) == {"currency", "lines[0].amount"}


def test_entities_and_document_types_are_refused(
    client: TestClient, db: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    before = counts(db)
    external = f'<!DOCTYPE e [<!ENTITY x SYSTEM "file://{secret}">]>'
    bomb = '<!DOCTYPE e [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    for prolog, ref in ((external, "&x;"), (bomb, "&b;")):
        body = envelope(
            "SubmitClaim", f"<c:claim>{claim_xml(external_id='OA-' + ref)}</c:claim>", prolog=prolog
        )
        response, _ = call(client, body, auth(client))
        assert b"TOP-SECRET" not in response.content
        found = fault(client, body, auth(client))
        assert (found["status"], found["field"]) == (400, "body")
    assert counts(db) == before


def test_a_body_over_the_limit_is_refused_before_it_is_read(client: TestClient, db: Any) -> None:
    before = counts(db)
    body = submit_body(extra="<c:project_id>" + "x" * MAX_BODY + "</c:project_id>")
    response = client.post(URL, content=body, headers={"content-type": "text/xml", **auth(client)})
    assert response.status_code == 413
    assert counts(db) == before


def test_authentication_and_scopes(client: TestClient, db: Any) -> None:
    before = counts(db)
    missing = fault(client, submit_body(), None, status=401)
    assert (missing["status"], missing["field"]) == (401, "authorization")
    forged = fault(client, submit_body(), {"authorization": "Bearer nope"}, status=401)
    assert forged["field"] == "authorization"
    read_only = fault(client, submit_body(), auth(client, "reader"))
    assert (read_only["status"], read_only["field"]) == (403, "authorization")
    assert counts(db) == before
