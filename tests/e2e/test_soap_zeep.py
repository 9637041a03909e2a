"""zeep, a SOAP client, against finoa's own claims Web Service on a hub running as a real
process (SQLite and PostgreSQL): it reads the WSDL, submits a claim that runs the whole loop,
queries its status, and gets SOAP faults naming the field for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import zeep
from e2e.helpers import FINAL, HubClient, StackFactory, claim_body, new_external_id
from lxml import etree
from zeep.exceptions import Fault

from finoa.api.soap_wsdl import CLAIMS_NS


@pytest.fixture(scope="module")
def hub(start_stack: StackFactory) -> Iterator[HubClient]:
    with start_stack(auto_decide=True) as h:
        yield h


def soap_client(hub: HubClient, token: str | None) -> zeep.Client:
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    transport = zeep.Transport(session=session, timeout=30, operation_timeout=30)
    return zeep.Client(f"{hub.url}/soap/v1/claims?wsdl", transport=transport)


def as_soap(body: dict[str, Any]) -> dict[str, Any]:
    """A REST claim body in the WSDL's shape: lists inside their wrapper elements."""
    lines = [
        {**line, "invoice_refs": {"invoice_ref": line.get("invoice_refs", [])}}
        for line in body["lines"]
    ]
    return {**body, "lines": {"line": lines}}


def problem_of(fault: Fault) -> dict[str, str | None]:
    detail = fault.detail
    assert detail is not None
    node = detail.find(f"{{{CLAIMS_NS}}}problem")
    assert node is not None, etree.tostring(detail)
    return {tag: node.findtext(f"{{{CLAIMS_NS}}}{tag}") for tag in ("status", "field", "type")}


def test_a_claim_submitted_by_soap_runs_the_loop(hub: HubClient) -> None:
    client = soap_client(hub, hub.token)
    body = claim_body()
    answer = client.service.SubmitClaim(
        message_id=f"soap-{body['external_id']}", claim=as_soap(body)
    )
    assert answer.duplicate is False and answer.status == "in_approval"
    assert answer.total_fen == hub.claim(answer.claim_id)["total_fen"]
    final = hub.wait_claim(answer.claim_id, "posted")
    status = client.service.GetClaimStatus(external_id=body["external_id"])
    assert status.claim_id == answer.claim_id and status.status in FINAL
    assert status.voucher_no == final["voucher"]["voucher_no"]
    assert status.erp_voucher_no == final["voucher"]["erp_voucher_no"]
    again = client.service.SubmitClaim(
        message_id=f"soap-{body['external_id']}", claim=as_soap(body)
    )
    assert again.claim_id == answer.claim_id and again.duplicate is True


def test_faults_name_the_field_and_change_nothing(hub: HubClient) -> None:
    client = soap_client(hub, hub.token)
    body = claim_body(external_id=new_external_id())
    with hub.writes_nothing():
        bad = as_soap({**body, "applicant_id": "E9999"})
        with pytest.raises(Fault) as refused:
            client.service.SubmitClaim(message_id="soap-bad-1", claim=bad)
        assert refused.value.message.startswith("applicant_id: ")
        assert problem_of(refused.value)["field"] == "applicant_id"

        zero = as_soap(claim_body(amount="0"))
        with pytest.raises(Fault) as refused:
            client.service.SubmitClaim(message_id="soap-bad-2", claim=zero)
        assert problem_of(refused.value) == {
            "status": "422",
            "field": "lines[0].amount",
            "type": "https://finoa.dev/problems/validation",
        }

        with pytest.raises(Fault) as refused:
            client.service.GetClaimStatus(claim_id="CL-none")
        assert problem_of(refused.value)["field"] == "claim_id"


def test_a_reused_message_id_with_other_content_is_a_conflict(hub: HubClient) -> None:
    client = soap_client(hub, hub.token)
    body = claim_body()
    message_id = f"soap-{body['external_id']}"
    client.service.SubmitClaim(message_id=message_id, claim=as_soap(body))
    changed = as_soap({**body, "title": "另一个 another claim"})
    with pytest.raises(Fault) as refused:
        client.service.SubmitClaim(message_id=message_id, claim=changed)
    assert problem_of(refused.value)["status"] == "409"
    assert problem_of(refused.value)["field"] == "message_id"


def test_without_a_token_zeep_gets_a_fault_naming_authorization(hub: HubClient) -> None:
    client = soap_client(hub, None)
    with hub.writes_nothing(), pytest.raises(Fault) as refused:
        client.service.SubmitClaim(claim=as_soap(claim_body()))
    assert problem_of(refused.value) == {
        "status": "401",
        "field": "authorization",
        "type": "https://finoa.dev/problems/unauthorized",
    }


def test_an_advance_submitted_by_soap_posts_to_other_receivables(hub: HubClient) -> None:
    """A legacy OA sends an advance (借款) of 1,810.50 元 by SOAP; approved by the OA, it posts
    Dr 1221 其他应收款 / Cr 1002 银行存款."""
    client = soap_client(hub, hub.token)
    body = {**claim_body(), "document_type": "advance"}
    answer = client.service.SubmitClaim(
        message_id=f"soap-{body['external_id']}", claim=as_soap(body)
    )
    final = hub.wait_claim(answer.claim_id, "posted")
    assert final["document_type"] == "advance"
    entries = [
        (e["account_code"], e["debit_fen"], e["credit_fen"]) for e in final["voucher"]["entries"]
    ]
    assert entries == [("1221", 181_050, 0), ("1002", 0, 181_050)]
