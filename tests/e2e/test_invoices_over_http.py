"""E-invoices over HTTP against a real hub process and a real tax platform simulator, on
SQLite and PostgreSQL: upload (multipart) with verification, originals kept byte for byte,
bad files refused naming the field, and the duplicate block under concurrent uploads."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.helpers import PROBLEM_JSON, HubClient, StackFactory, claim_body
from support import invoices as build
from support.processes import Server, free_port, start

from finoa.invoices.parsing import read_invoice

INVOICE_MAX_BYTES = 300_000
CONCURRENT_UPLOADS = 24


@pytest.fixture(scope="module")
def tax_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    directory = tmp_path_factory.mktemp("tax-platform")
    key = os.urandom(12).hex()
    port = free_port()
    env = {"FINOA_TAX_PLATFORM_API_KEY": key, "FINOA_DATA_DIR": str(directory)}
    server = start(
        "tax", ["sim", "tax-platform", "--port", str(port)], env, "/_sim/stats", port, directory
    )
    try:
        yield server, key
    finally:
        server.stop()


@pytest.fixture(scope="module")
def hub(start_stack: StackFactory, tax_platform: tuple[Server, str]) -> Iterator[HubClient]:
    server, key = tax_platform
    env = {
        "FINOA_COMPANY_TAX_ID": build.COMPANY_TAX_ID,
        "FINOA_TAX_PLATFORM_URL": server.url,
        "FINOA_TAX_PLATFORM_API_KEY": key,
        "FINOA_INVOICE_MAX_BYTES": str(INVOICE_MAX_BYTES),
    }
    with start_stack(auto_decide=False, extra_env=env) as client:
        yield client


def issue(tax: Server, data: bytes, **changes: Any) -> dict[str, Any]:
    """Register the invoice in `data` at the tax platform, as its issuer would."""
    invoice = read_invoice(data).invoice
    assert invoice is not None
    record = {
        "number": invoice.number,
        "issue_date": invoice.issue_date.isoformat(),
        "amount": f"{invoice.total_fen / 100:.2f}",
        **changes,
    }
    response = httpx.post(f"{tax.url}/_sim/invoices", json=record)
    assert response.status_code == 200, response.text
    return record


def new_claim(hub: HubClient, amount: str = "2000.00") -> dict[str, Any]:
    return hub.submit(claim_body(amount=amount))


def upload(
    hub: HubClient,
    claim_id: str,
    data: bytes,
    *,
    line: int = 1,
    name: str = "invoice.xml",
    http: httpx.Client | None = None,
) -> httpx.Response:
    return (http or hub.http).post(
        f"{hub.url}/api/v1/claims/{claim_id}/lines/{line}/invoices",
        files={"file": (name, data, "application/octet-stream")},
        headers=hub.auth(),
    )


def listed(hub: HubClient, claim_id: str) -> list[dict[str, Any]]:
    response = hub.http.get(f"{hub.url}/api/v1/claims/{claim_id}/invoices", headers=hub.auth())
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("shape", "name"),
    [("xml", "fapiao.xml"), ("ofd", "fapiao.ofd"), ("pdf", "fapiao.pdf")],
)
def test_upload_verify_list_and_read_back_unchanged(
    hub: HubClient, tax_platform: tuple[Server, str], shape: str, name: str
) -> None:
    xml = build.railway_xbrl(fare="553.00")
    data = {"xml": xml, "ofd": build.ofd(xml), "pdf": build.pdf(xml)}[shape]
    issue(tax_platform[0], xml)
    claim = new_claim(hub)
    response = upload(hub, claim["id"], data, name=f"../../{name}")
    assert response.status_code == 201, response.text
    invoice = response.json()
    assert invoice["verification"] == "consistent"
    assert invoice["deductible_vat_fen"] == 4566 and invoice["kind"] == "railway"
    assert invoice["file_name"] == name
    assert invoice["sha256"] == hashlib.sha256(data).hexdigest()
    assert [i["id"] for i in listed(hub, claim["id"])] == [invoice["id"]]
    original = hub.http.get(hub.url + response.headers["location"], headers=hub.auth())
    assert original.status_code == 200 and original.content == data
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert original.headers["repr-digest"] == f"sha-256=:{digest}:"


def test_verification_failures_are_refused(
    hub: HubClient, tax_platform: tuple[Server, str]
) -> None:
    claim = new_claim(hub)
    never_issued = build.railway_xbrl()
    body = problem(upload(hub, claim["id"], never_issued), 422)
    assert body["field"] == "file" and body["verification"] == "not_found"
    other_amount = build.railway_xbrl(fare="553.00")
    issue(tax_platform[0], other_amount, amount="535.00")
    body = problem(upload(hub, claim["id"], other_amount), 422)
    assert body["verification"] == "inconsistent" and "je" in body["detail"]
    voided = build.railway_xbrl()
    issue(tax_platform[0], voided, status="voided")
    assert problem(upload(hub, claim["id"], voided), 422)["verification"] == "voided"
    assert listed(hub, claim["id"]) == []


def test_a_printout_is_accepted_for_manual_entry(hub: HubClient) -> None:
    claim = new_claim(hub)
    response = upload(hub, claim["id"], build.pdf(None), name="scan.pdf")
    assert response.status_code == 201, response.text
    assert response.json()["verification"] == "manual_entry"
    assert "no embedded invoice XML" in response.json()["manual_entry_reason"]


@pytest.mark.parametrize(
    ("data", "status", "field"),
    [
        (b"GIF89a\x01\x00\x01\x00", 415, "file"),
        (b"", 422, "file"),
        (b"<EInvoice><Header>", 422, "file"),
        (b'<!DOCTYPE x [<!ENTITY a "a">]><EInvoice>&a;</EInvoice>', 422, "file"),
        (build.einv_xbrl(buyer=build.OTHER_TAX_ID), 422, "invoice.buyer_tax_id"),
        (build.einvoice_xml(build.EInvoiceSpec(total="530.01")), 422, "invoice.total"),
        (build.einvoice_xml(build.EInvoiceSpec(number="2531200000010")), 422, "invoice.number"),
        (b"<" + b" " * INVOICE_MAX_BYTES, 413, "file"),
        (b"<" + b" " * 1_100_000, 413, "body"),  # over max_body_bytes too
    ],
    ids=[
        "gif", "empty", "broken-xml", "doctype", "other-buyer", "sums", "number",
        "over-invoice-limit", "over-body-limit",
    ],
)  # fmt: skip
def test_bad_files_are_refused_naming_the_field(
    hub: HubClient, data: bytes, status: int, field: str
) -> None:
    claim = new_claim(hub)
    body = problem(upload(hub, claim["id"], data), status)
    assert body["field"] == field, body
    assert listed(hub, claim["id"]) == []


def test_bad_requests_name_the_part(hub: HubClient) -> None:
    claim = new_claim(hub)
    no_file = hub.http.post(
        f"{hub.url}/api/v1/claims/{claim['id']}/lines/1/invoices",
        files={"other": ("x.xml", b"<x/>")},
        headers=hub.auth(),
    )
    assert problem(no_file, 422)["field"] == "file"
    assert problem(upload(hub, claim["id"], b"<x/>", line=9), 404)["field"] == "line_no"
    assert problem(upload(hub, "CLnope", b"<x/>"), 404)["field"] == "claim_id"
    anonymous = hub.http.post(
        f"{hub.url}/api/v1/claims/{claim['id']}/lines/1/invoices", files={"file": b"<x/>"}
    )
    assert problem(anonymous, 401)["field"] == "authorization"


def test_a_duplicate_is_refused_naming_the_first_claim(
    hub: HubClient, tax_platform: tuple[Server, str]
) -> None:
    data = build.einvoice_xml()
    issue(tax_platform[0], data)
    first, second = new_claim(hub), new_claim(hub)
    assert upload(hub, first["id"], data, line=2).status_code == 201
    again = upload(hub, first["id"], data, line=2)
    assert again.status_code == 200  # the same file on the same line: returned, not added
    body = problem(upload(hub, second["id"], build.pdf(data), name="same.pdf"), 409)
    assert body["first_claim_id"] == first["id"] and first["id"] in body["detail"]
    assert body["type"].endswith("duplicate-invoice")


def test_concurrent_uploads_of_one_invoice_book_it_once(
    hub: HubClient, tax_platform: tuple[Server, str]
) -> None:
    data = build.railway_xbrl(fare="553.00")
    issue(tax_platform[0], data)
    claims = [new_claim(hub)["id"] for _ in range(CONCURRENT_UPLOADS)]
    gate = threading.Barrier(CONCURRENT_UPLOADS)

    def send(claim_id: str) -> tuple[str, httpx.Response]:
        with httpx.Client(timeout=60.0) as http:
            gate.wait()
            return claim_id, upload(hub, claim_id, data, http=http)

    with ThreadPoolExecutor(CONCURRENT_UPLOADS) as pool:
        results = list(pool.map(send, claims))
    accepted = [claim_id for claim_id, r in results if r.status_code == 201]
    assert len(accepted) == 1, [(r.status_code, r.text) for _, r in results]
    winner = accepted[0]
    refused = [r for claim_id, r in results if claim_id != winner]
    assert all(r.status_code == 409 for r in refused), [r.text for r in refused]
    assert {r.json()["first_claim_id"] for r in refused} == {winner}
    assert sum(len(listed(hub, claim_id)) for claim_id in claims) == 1


def test_rejection_frees_the_invoice_for_another_claim(
    hub: HubClient, tax_platform: tuple[Server, str]
) -> None:
    data = build.railway_xbrl()
    issue(tax_platform[0], data)
    first = new_claim(hub)
    assert upload(hub, first["id"], data).status_code == 201
    task = next(t for t in hub.claim(first["id"])["tasks"] if t["status"] == "pending")
    decision = hub.decide(
        task["id"], {"approver_id": task["assignee_id"], "decision": "reject", "comment": "缺发票"}
    )
    assert decision.status_code == 200, decision.text
    hub.wait_claim(first["id"], "rejected")
    second = new_claim(hub)
    assert upload(hub, second["id"], data).status_code == 201
    (released,) = listed(hub, first["id"])
    assert released["released_reason"] == "claim rejected"


def test_files_are_stored_under_their_digest(hub: HubClient) -> None:
    claim = new_claim(hub)
    data = build.pdf(None)
    response = upload(hub, claim["id"], data, name="scan.pdf")
    digest = response.json()["sha256"]
    stored = Path(hub.stack.data_dir) / "invoices" / digest[:2] / digest
    assert stored.read_bytes() == data
