"""The SAP connector against the gateway simulator running as a real process: basic auth and
the CSRF token, the LUW (nothing is in the ledger before the commit; a posting never
committed is rolled back), no idempotency, the posted-lookup by REF_DOC_NO, base data and
closed periods refused naming the field, reversal with BAPI_ACC_DOCUMENT_REV_POST."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.processes import Server, wait_for
from support.sap import sap_config, sap_simulator, sap_voucher

from finoa.connectors.base import DeliveryResult, OutboundMessage
from finoa.connectors.sap import mapping
from finoa.connectors.sap.client import SapConfig, SAPConnector
from finoa.messaging.retry import ErrorClass

Sim = tuple[Server, dict[str, str]]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with sap_simulator(tmp_path_factory.mktemp("sap")) as running:
        yield running


def message(payload: dict[str, Any]) -> OutboundMessage:
    key = f"finoa-voucher-{payload['voucher_id']}"
    return OutboundMessage(1, "voucher.post", payload["voucher_id"], key, payload)


def with_connector(sim: Sim, work: Any, **overrides: Any) -> Any:
    server, credentials = sim

    async def run() -> Any:
        async with httpx.AsyncClient() as http:
            connector = SAPConnector(sap_config(server.url, credentials, **overrides), http)
            try:
                return await work(connector)
            finally:
                await connector.aclose()

    return asyncio.run(run())


def deliver(sim: Sim, payload: dict[str, Any], **overrides: Any) -> DeliveryResult:
    async def work(connector: SAPConnector) -> DeliveryResult:
        (result,) = await connector.deliver([message(payload)])
        return result

    result: DeliveryResult = with_connector(sim, work, **overrides)
    return result


def lookup(sim: Sim, payload: dict[str, Any]) -> DeliveryResult | None:
    async def work(connector: SAPConnector) -> DeliveryResult | None:
        (found,) = await connector.lookup([message(payload)])
        return found

    found: DeliveryResult | None = with_connector(sim, work)
    return found


def documents(server: Server, reference: str) -> list[dict[str, Any]]:
    listing = httpx.get(f"{server.url}/_sim/documents").json()
    return [d for d in listing if d["XBLNR"] == reference]


class Gateway:
    """Raw gateway calls, as any HTTP client would make them."""

    def __init__(self, sim: Sim) -> None:
        server, credentials = sim
        self.url = f"{server.url}/api"
        self.http = httpx.Client(auth=(credentials["username"], credentials["password"]))
        fetched = self.http.get(f"{self.url}/", headers={"x-csrf-token": "Fetch"})
        assert fetched.status_code == 200, fetched.text
        self.token = fetched.headers["x-csrf-token"]

    def call(self, function: str, body: dict[str, Any], **options: Any) -> httpx.Response:
        return self.http.post(
            f"{self.url}/rfc/{function}", json=body, headers={"x-csrf-token": self.token},
            **options,
        )  # fmt: skip


def new_id() -> str:
    return uuid.uuid4().hex


def codes(sim: Sim) -> mapping.SapCodes:
    """The code tables the connector posts with: the shipped `sap/voucher` mapping's."""
    config = sap_config(sim[0].url, sim[1])
    return SapConfig.parse(config).mapped(config)[0].codes


def test_the_gateway_wants_basic_auth_and_a_valid_csrf_token(sim: Sim) -> None:
    server, credentials = sim
    url = f"{server.url}/api/rfc/RFC_READ_TABLE"
    body = {"QUERY_TABLE": "BKPF", "OPTIONS": [{"TEXT": "XBLNR = 'NONE'"}]}
    assert httpx.post(url, json=body).status_code == 401
    auth = (credentials["username"], "wrong")
    assert (
        httpx.get(f"{server.url}/api/", headers={"x-csrf-token": "Fetch"}, auth=auth).status_code
        == 401
    )
    gateway = Gateway(sim)
    assert gateway.call("RFC_READ_TABLE", body).json()["DATA"] == []
    refused = gateway.http.post(url, json=body)  # the session cookie, but no token
    assert refused.status_code == 403 and refused.headers["x-csrf-token"] == "Required"
    gateway.token = "stale"
    assert gateway.call("RFC_READ_TABLE", body).status_code == 403
    assert with_connector(sim, lambda c: c.health()).ok
    wrong = with_connector(sim, lambda c: c.health(), password="wrong")
    assert not wrong.ok and "username and password" in wrong.detail


def test_nothing_is_in_the_ledger_until_the_commit_and_a_rollback_discards(sim: Sim) -> None:
    server, _ = sim
    payload = sap_voucher(new_id())
    body = mapping.document(payload, codes(sim), f"finoa-voucher-{payload['voucher_id']}")
    reference = body["DOCUMENTHEADER"]["REF_DOC_NO"]
    gateway = Gateway(sim)
    checked = gateway.call("BAPI_ACC_DOCUMENT_CHECK", body).json()
    assert [(r["TYPE"], r["ID"], r["NUMBER"]) for r in checked["RETURN"]] == [("S", "RW", "614")]
    posted = gateway.call("BAPI_ACC_DOCUMENT_POST", body).json()
    assert posted["RETURN"][0]["NUMBER"] == "605" and len(posted["OBJ_KEY"]) == 18
    assert documents(server, reference) == []
    assert lookup(sim, payload) is None
    gateway.call("BAPI_TRANSACTION_ROLLBACK", {})
    commit = gateway.call("BAPI_TRANSACTION_COMMIT", {"WAIT": "X"}).json()["RETURN"]
    assert (commit["TYPE"], commit["ID"], commit["NUMBER"]) == ("W", "RW", "602")
    assert documents(server, reference) == []


def test_sap_has_no_idempotency_the_same_reference_posts_twice(sim: Sim) -> None:
    server, _ = sim
    payload = sap_voucher(new_id())
    body = mapping.document(payload, codes(sim), f"finoa-voucher-{payload['voucher_id']}")
    gateway = Gateway(sim)
    for _ in range(2):
        gateway.call("BAPI_ACC_DOCUMENT_POST", body)
        assert gateway.call("BAPI_TRANSACTION_COMMIT", {"WAIT": "X"}).json()["RETURN"]["TYPE"] == ""
    twice = documents(server, body["DOCUMENTHEADER"]["REF_DOC_NO"])
    assert len(twice) == 2 and twice[0]["BELNR"] != twice[1]["BELNR"]
    found = lookup(sim, payload)  # the connector tells rather than picks one
    assert found is not None and found.error is not None
    assert found.error.error_class is ErrorClass.PERMANENT and "2 documents" in found.error.reason


def test_a_voucher_is_posted_once_and_found_by_its_reference(sim: Sim) -> None:
    server, credentials = sim
    payload = sap_voucher(new_id(), fen=128050)
    result = deliver(sim, payload)
    assert result.ok, result.error
    reference = mapping.voucher_reference(payload["voucher_id"])
    (document,) = documents(server, reference)
    number = f"{credentials['company_code']}/{document['BELNR']}/{document['GJAHR']}"
    assert result.response["erp_voucher_no"] == number
    assert document["AWTYP"] == "BKPFF" and document["AWSYS"] == "FINOA"
    assert document["USNAM"] == credentials["username"] and document["BUDAT"] == "20261112"
    assert [a["AMT_DOCCUR"] for a in document["items"]["CURRENCYAMOUNT"]] == ["1280.50", "-1280.50"]
    assert document["items"]["ACCOUNTPAYABLE"][0]["VENDOR_NO"] == "E0021"
    found = lookup(sim, payload)
    assert found is not None and found.ok and found.response["erp_voucher_no"] == number


def test_a_commit_answer_lost_is_settled_by_the_posted_lookup(sim: Sim) -> None:
    server, _ = sim
    payload = sap_voucher(new_id())
    body = mapping.document(payload, codes(sim), f"finoa-voucher-{payload['voucher_id']}")
    gateway = Gateway(sim)
    gateway.call("BAPI_ACC_DOCUMENT_POST", body)
    httpx.post(f"{server.url}/_sim/faults", json={"drop_rate": 1.0, "count": 1}).raise_for_status()
    with pytest.raises(httpx.ReadTimeout):
        gateway.call("BAPI_TRANSACTION_COMMIT", {"WAIT": "X"}, timeout=1.0)
    found = lookup(sim, payload)
    assert found is not None and found.ok
    assert len(documents(server, body["DOCUMENTHEADER"]["REF_DOC_NO"])) == 1


def test_a_closed_posting_period_is_refused_naming_the_field(sim: Sim) -> None:
    server, credentials = sim
    period = {"company_code": credentials["company_code"], "period": "2026-10", "open": False}
    httpx.post(f"{server.url}/_sim/periods", json=period).raise_for_status()
    try:
        payload = sap_voucher(new_id(), date="2026-10-30")
        result = deliver(sim, payload)
        assert result.error is not None and result.error.error_class is ErrorClass.PERMANENT
        assert "F5 201 Posting period 010 2026 is not open" in result.error.reason
        assert "FIELD PSTNG_DATE" in result.error.reason
        assert documents(server, mapping.voucher_reference(payload["voucher_id"])) == []
    finally:
        httpx.post(f"{server.url}/_sim/periods", json={**period, "open": True})
    assert deliver(sim, payload).ok  # the period reopened: the same voucher posts


@pytest.mark.parametrize(
    ("overrides", "config", "named"),
    [
        # mapped (the instance's gl_accounts on top of the mapping) onto an account SAP lacks
        ({}, {"gl_accounts": {"6602.01": "669999"}}, "F5 702 Account 669999 does not exist"),
        ({"employee": "E0099"}, {}, "FIELD VENDOR_NO"),  # a former employee: no vendor
        ({"department": "D42"}, {}, "KI 248 Cost center D42 does not exist"),  # not mapped
        ({"department": "D03"}, {"cost_centers": {"D03": "D03"}}, "KI 248 Cost center D03"),
        ({"department": ""}, {}, "KI 235"),  # an expense account needs a cost center
    ],
)
def test_base_data_errors_are_permanent_and_post_nothing(
    sim: Sim, overrides: dict[str, Any], config: dict[str, Any], named: str
) -> None:
    server, _ = sim
    payload = sap_voucher(new_id(), **overrides)
    result = deliver(sim, payload, **config)
    assert result.error is not None and result.error.error_class is ErrorClass.PERMANENT
    assert named in result.error.reason and "RW 609" in result.error.reason
    assert documents(server, mapping.voucher_reference(payload["voucher_id"])) == []


def test_the_shipped_mapping_posts_in_saps_codes_and_refuses_an_unmapped_account(
    sim: Sim,
) -> None:
    server, _ = sim
    payload = sap_voucher(new_id(), department="D03")
    assert deliver(sim, payload).ok
    (posted,) = documents(server, mapping.voucher_reference(payload["voucher_id"]))
    (expense,) = posted["items"]["ACCOUNTGL"]
    assert (expense["GL_ACCOUNT"], expense["COSTCENTER"]) == ("660201", "CC03")
    before = httpx.get(f"{server.url}/_sim/stats").json()["requests"]
    unmapped = sap_voucher(new_id(), account="6699.99")
    result = deliver(sim, unmapped)
    assert result.error is not None and result.error.error_class is ErrorClass.PERMANENT
    assert result.error.reason == (
        "refused before posting to SAP company code 1000: entries[0].account_code: account "
        "6699.99 has no mapping in sap/voucher (default)"
    )
    assert httpx.get(f"{server.url}/_sim/stats").json()["requests"] == before  # nothing sent


def test_a_reversal_is_posted_with_rev_post_once(sim: Sim) -> None:
    server, _ = sim
    original = sap_voucher(new_id())
    assert deliver(sim, original).ok
    red = sap_voucher(new_id(), date="2026-12-01", reversal_of=original["voucher_id"])
    assert lookup(sim, red) is None
    first = deliver(sim, red)
    assert first.ok, first.error
    docs = documents(server, mapping.voucher_reference(original["voucher_id"]))
    posted, reversal = sorted(docs, key=lambda d: d["XREVERSAL"])
    assert (posted["XREVERSAL"], reversal["XREVERSAL"]) == ("1", "2")
    assert (posted["STBLG"], posted["STGRD"]) == (reversal["BELNR"], "01")
    assert reversal["BUDAT"] == "20261201"
    assert [a["AMT_DOCCUR"] for a in reversal["items"]["CURRENCYAMOUNT"]] == ["-350.00", "350.00"]
    again = deliver(sim, red)  # a replay finds the reversal instead of reversing again
    assert again.ok and again.response["erp_voucher_no"] == first.response["erp_voucher_no"]
    found = lookup(sim, red)
    assert (
        found is not None and found.response["erp_voucher_no"] == first.response["erp_voucher_no"]
    )
    assert len(documents(server, mapping.voucher_reference(original["voucher_id"]))) == 2
    missing = deliver(sim, sap_voucher(new_id(), reversal_of="never-posted"))
    assert missing.error is not None and missing.error.error_class is ErrorClass.PERMANENT


def test_an_idle_session_ends_and_rolls_its_luw_back(tmp_path: Path) -> None:
    with sap_simulator(tmp_path / "short", "--session-seconds", "1") as short:
        server, _ = short
        payload = sap_voucher(new_id())
        body = mapping.document(payload, codes(short), "k")
        gateway = Gateway(short)
        assert gateway.call("BAPI_ACC_DOCUMENT_POST", body).json()["OBJ_KEY"]
        assert httpx.get(f"{server.url}/_sim/stats").json()["pending"] == 1

        def rolled_back() -> bool:
            return bool(httpx.get(f"{server.url}/_sim/stats").json()["rolled_back"] == 1)

        wait_for(rolled_back, 15, "the idle session's rollback")
        assert gateway.call("BAPI_TRANSACTION_COMMIT", {"WAIT": "X"}).status_code == 403
        assert httpx.get(f"{server.url}/_sim/stats").json()["documents"] == 0


def test_the_simulator_command_refuses_a_bad_option_with_a_fix(tmp_path: Path) -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "finoa", "sim", "sap", "--data-dir", str(tmp_path),
         "--session-seconds", "0"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=60,
    )  # fmt: skip
    assert answer.returncode == 2
    lines = answer.stderr.strip().splitlines()
    assert lines[0] == "error: --session-seconds: at least 1 second"
    assert lines[1].startswith("fix: ")
    assert not (tmp_path / "sim-sap").exists()


def test_show_credentials_prints_what_the_gateway_accepts(tmp_path: Path) -> None:
    shown = [
        subprocess.run(
            [
                sys.executable,
                "-m",
                "finoa",
                "sim",
                "sap",
                "--data-dir",
                str(tmp_path),
                "--show-credentials",
            ],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            timeout=60,
            check=True,
        ).stdout  # fmt: skip
        for _ in range(2)
    ]
    credentials = json.loads(shown[0])
    assert shown[0] == shown[1]  # made once, then kept
    assert credentials["username"] == "FINOA_RFC" and len(credentials["password"]) >= 20
    assert (tmp_path / "sim-sap" / "credentials.json").stat().st_mode & 0o077 == 0
