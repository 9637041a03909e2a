"""The Kingdee connector against the K/3 Cloud simulator in its own process, and parity with
Kingdee's own SDK (`kingdee-cdp-webapi-sdk`) in both directions: the SDK's calls work against
the simulator, and what one side writes the other reads."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import httpx
import pytest
from k3cloud_webapi_sdk.main import K3CloudApiSdk
from support.kingdee import KingdeeSim, kingdee_simulator

from finoa.connectors.base import DeliveryResult, OutboundMessage
from finoa.connectors.kingdee.client import KingdeeConnector
from finoa.connectors.kingdee.mapping import BaseData, voucher_model
from finoa.connectors.kingdee.protocol import SAVE, AppCredentials, service_url
from finoa.messaging.retry import ErrorClass

SAVE_PATH = f"/K3Cloud/{SAVE}.common.kdsvc"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KingdeeSim]:
    with kingdee_simulator(tmp_path_factory.mktemp("kingdee")) as running:
        yield running


@pytest.fixture(autouse=True)
def no_faults(sim: KingdeeSim) -> Iterator[None]:
    yield
    sim.clear_faults()


def voucher(
    key: str, *, account: str = "6602.04", department: str | None = "D02", **over: Any
) -> OutboundMessage:
    aux = {"department": department, "employee": over.pop("employee", "E0011"), "project": None}
    payload = {
        "voucher_id": key.rsplit("-", 1)[-1],
        "claim_id": "C-1",
        "hub_voucher_no": "记-2026-11-0001",
        "word": "记",
        "period": "2026-11",
        "date": "2026-11-10",
        "summary": "交通费报销",
        "currency": "CNY",
        "reversal_of": None,
        "entries": [
            {
                "line": 1,
                "account_code": account,
                "summary": "交通费",
                "debit_fen": 8800,
                "credit_fen": 0,
                "aux": aux,
            },
            {
                "line": 2,
                "account_code": "2241",
                "summary": "应付员工",
                "debit_fen": 0,
                "credit_fen": 8800,
                "aux": aux,
            },
        ],
        **over,
    }
    return OutboundMessage(1, "voucher.post", payload["voucher_id"], key, payload)


def run(
    config: dict[str, Any], method: str, *messages: OutboundMessage
) -> tuple[list[Any], KingdeeConnector]:
    async def go() -> tuple[list[Any], KingdeeConnector]:
        async with httpx.AsyncClient() as http:
            connector = KingdeeConnector(config, http)
            return list(await getattr(connector, method)(list(messages))), connector

    return asyncio.run(go())


def one(config: dict[str, Any], method: str, message: OutboundMessage) -> DeliveryResult | None:
    results, _ = run(config, method, message)
    return results[0]


def posted(config: dict[str, Any], message: OutboundMessage) -> bool:
    result = one(config, "deliver", message)
    return result is not None and result.ok


def model_of(key: str) -> dict[str, Any]:
    """The model the connector would save for a voucher under `key`."""
    return voucher_model(voucher(key).payload, key, BaseData())


def sdk_for(sim: KingdeeSim, **over: Any) -> K3CloudApiSdk:
    c = {**sim.credentials, **over}
    sdk = K3CloudApiSdk(c["server_url"])
    sdk.InitConfig(
        c["acct_id"], c["user_name"], c["app_id"], c["app_secret"], c["server_url"], c["lcid"]
    )
    return sdk


def in_sim(sim: KingdeeSim, key: str) -> list[dict[str, Any]]:
    return [v for v in sim.vouchers() if key in v["References"]]


def unique_key(name: str) -> str:
    return f"finoa-voucher-{name}{time.time_ns()}"


@pytest.mark.parametrize("auth", ["app_secret", "password"])
def test_a_voucher_is_saved_submitted_and_audited_once(sim: KingdeeSim, auth: str) -> None:
    key = unique_key("V")
    result = one(sim.config(auth), "deliver", voucher(key))
    assert result is not None and result.ok, result
    (stored,) = in_sim(sim, key)
    assert stored["DocumentStatus"] == "C"
    assert result.response == {"erp_voucher_no": stored["BillNo"], "erp_id": str(stored["Id"])}
    assert [e["Detail"] for e in stored["Entity"]] == [{"FFLEX5": "D02"}, {"FFLEX7": "E0011"}]
    found = one(sim.config(auth), "lookup", voucher(key))
    assert found is not None and found.response == result.response  # found, not saved again
    assert len(in_sim(sim, key)) == 1


def test_a_lost_session_signs_in_again(sim: KingdeeSim) -> None:
    config = sim.config("password")

    async def go() -> tuple[list[DeliveryResult], int]:
        async with httpx.AsyncClient() as http:
            connector = KingdeeConnector(config, http)
            first = await connector.deliver([voucher(unique_key("S"))])
            httpx.delete(f"{sim.url}/_sim/sessions").raise_for_status()  # K/3 Cloud timed out
            second = await connector.deliver([voucher(unique_key("S"))])
            return [*first, *second], connector.logins

    results, logins = asyncio.run(go())
    assert all(r.ok for r in results), results
    assert logins == 2


def test_wrong_credentials_are_auth_errors_naming_what_failed(sim: KingdeeSim) -> None:
    refused = one(sim.config("password", password="wrong"), "deliver", voucher(unique_key("A")))
    assert refused is not None and refused.error is not None
    assert refused.error.error_class is ErrorClass.AUTH
    assert "finoa-api" in refused.error.reason and "用户名或密码错误" in refused.error.reason
    forged = one(sim.config(app_secret="0" * 32), "deliver", voucher(unique_key("A")))
    assert forged is not None and forged.error is not None
    assert forged.error.error_class is ErrorClass.AUTH
    assert "X-Kd-Signature" in forged.error.reason


@pytest.mark.parametrize(
    ("message", "field", "code"),
    [
        (dict(account="6602.99"), "entries[0].account_code", "account 6602.99 has no mapping"),
        (dict(account="6602"), "entries[0].account_code", "account 6602 takes no postings"),
        (dict(department="D99"), "entries[0].aux.department", "department D99 does not exist"),
        (dict(employee="E0099"), "entries[1].aux.employee", "employee E0099 does not exist"),
    ],
)
def test_base_data_refusals_happen_in_finoa_naming_the_code_and_nothing_is_sent(
    sim: KingdeeSim, message: dict[str, Any], field: str, code: str
) -> None:
    """The account set's base data (BD_Account, the dimension forms, enabled codes only) is
    read by FNumber and every voucher is checked against it before any Save."""
    key = unique_key("B")
    saves = sim.stats()["saves"]
    result = one(sim.config(), "deliver", voucher(key, **message))
    assert result is not None and result.error is not None
    assert result.error.error_class is ErrorClass.PERMANENT
    reason = result.error.reason
    assert reason.startswith("refused before posting to K/3 Cloud account set")
    assert f"{field}: {code}" in reason and not result.error.outcome_unknown
    assert sim.stats()["saves"] == saves  # nothing was sent to K/3 Cloud
    assert in_sim(sim, key) == []


def test_a_required_dimension_missing_is_refused_by_k3_cloud_naming_the_field(
    sim: KingdeeSim,
) -> None:
    key = unique_key("R")
    result = one(sim.config(), "deliver", voucher(key, department=None))
    assert result is not None and result.error is not None
    assert result.error.error_class is ErrorClass.PERMANENT
    assert "为必录项" in result.error.reason and not result.error.outcome_unknown
    assert in_sim(sim, key) == []


def test_the_voucher_mapping_maps_accounts_and_dimension_codes(sim: KingdeeSim) -> None:
    """`mappings: {kingdee/voucher: …}` replaces the shipped code tables: the voucher is
    checked and posted in the account set's codes."""
    key = unique_key("M")
    override = {
        "mapping": "kingdee/voucher",
        "version": 2,
        "target": "voucher",
        "code_tables": {
            "accounts": {"values": {"6602.04": "6602.05", "2241": "2241"}},
            "departments": {"values": {"SALES": "D02"}},
        },
        "fields": {},
    }
    config = {**sim.config(), "mappings": {"kingdee/voucher": override}}
    result = one(config, "deliver", voucher(key, department="SALES"))
    assert result is not None and result.ok, result
    (stored,) = in_sim(sim, key)
    assert [e["Account"] for e in stored["Entity"]] == ["6602.05", "2241"]
    assert stored["Entity"][0]["Detail"] == {"FFLEX5": "D02"}
    saves = sim.stats()["saves"]
    refused = one(config, "deliver", voucher(unique_key("M"), account="6602.01"))
    assert refused is not None and refused.error is not None
    assert refused.error.error_class is ErrorClass.PERMANENT
    assert "entries[0].account_code: account 6602.01 has no mapping in kingdee/voucher" in (
        refused.error.reason
    )
    assert sim.stats()["saves"] == saves


def test_a_voucher_word_the_account_set_lacks_is_refused_before_the_save(
    sim: KingdeeSim,
) -> None:
    saves = sim.stats()["saves"]
    config = sim.config(base_data={"voucher_words": {"记": "PRE009"}})
    result = one(config, "deliver", voucher(unique_key("W")))
    assert result is not None and result.error is not None
    assert result.error.error_class is ErrorClass.PERMANENT
    assert "voucher word PRE009 (记) does not exist" in result.error.reason
    assert sim.stats()["saves"] == saves


def test_an_unmapped_voucher_word_is_a_config_error(sim: KingdeeSim) -> None:
    result = one(sim.config(), "deliver", voucher(unique_key("W"), word="现"))
    assert result is not None and result.error is not None
    assert result.error.error_class is ErrorClass.CONFIG and "voucher_words" in result.error.reason


def test_a_save_whose_answer_was_lost_is_found_by_the_lookup(sim: KingdeeSim) -> None:
    key = unique_key("L")

    async def go() -> DeliveryResult:
        async with httpx.AsyncClient() as http:
            connector = KingdeeConnector(sim.config(timeout_seconds=0.5), http)
            await connector.base_data()  # read first: the fault hits the Save
            sim.faults(drop_rate=1.0, count=1)
            return (await connector.deliver([voucher(key)]))[0]

    lost = asyncio.run(go())
    assert lost is not None and lost.error is not None and lost.error.outcome_unknown
    (stored,) = in_sim(sim, key)
    assert stored["DocumentStatus"] == "A"  # saved, never submitted
    found = one(sim.config(), "lookup", voucher(key))
    assert found is not None and found.ok  # taken on from where it stopped
    (stored,) = in_sim(sim, key)
    assert stored["DocumentStatus"] == "C" and stored["Saves"] == 1
    assert one(sim.config(), "lookup", voucher(unique_key("none"))) is None


def test_a_reference_in_the_erp_twice_is_a_permanent_error(sim: KingdeeSim) -> None:
    key = unique_key("D")
    for _ in range(2):  # K/3 Cloud keeps no idempotency: the same Save twice is two vouchers
        assert posted(sim.config(), voucher(key))
    found = one(sim.config(), "lookup", voucher(key))
    assert found is not None and found.error is not None
    assert found.error.error_class is ErrorClass.PERMANENT and "2 times" in found.error.reason


def test_a_reference_in_a_header_field(sim: KingdeeSim) -> None:
    key = unique_key("H")
    config = sim.config(base_data={"reference_field": "F_FINOA_Ref"})
    assert posted(config, voucher(key))
    (stored,) = in_sim(sim, key)
    assert stored["Header"] == {"F_FINOA_Ref": key}
    found = one(config, "lookup", voucher(key))
    assert found is not None and found.ok
    assert len(in_sim(sim, key)) == 1


def test_health(sim: KingdeeSim) -> None:
    async def go(config: dict[str, Any]) -> Any:
        async with httpx.AsyncClient() as http:
            return await KingdeeConnector(config, http).health()

    assert asyncio.run(go(sim.config())).ok
    missing = asyncio.run(go(sim.config(base_data={"account_book": "999"})))
    assert not missing.ok and "999" in missing.detail


def test_the_simulator_overwrites_on_an_internal_id_and_records_it(sim: KingdeeSim) -> None:
    """K/3 Cloud's real behaviour, which finoa must never trigger: a Save carrying FVOUCHERID
    replaces the voucher it names (one not yet submitted), and the voucher it held is lost."""
    audited = unique_key("O")
    assert posted(sim.config(), voucher(audited))
    (kept,) = in_sim(sim, audited)
    victim, other = unique_key("O"), unique_key("O")
    sdk = sdk_for(sim)
    created = json.loads(sdk.Save("GL_VOUCHER", {"Model": model_of(victim)}))
    victim_id = created["Result"]["Id"]
    before = len(httpx.get(f"{sim.url}/_sim/overwrites").json())
    answer = json.loads(
        sdk.Save("GL_VOUCHER", {"Model": {**model_of(other), "FVOUCHERID": victim_id}})
    )
    assert answer["Result"]["ResponseStatus"]["IsSuccess"] is True
    assert in_sim(sim, victim) == []  # the voucher it named is gone
    assert [v["Id"] for v in in_sim(sim, other)] == [victim_id]
    refused = json.loads(
        sdk.Save("GL_VOUCHER", {"Model": {**model_of(other), "FVOUCHERID": kept["Id"]}})
    )
    assert refused["Result"]["ResponseStatus"]["MsgCode"] == 12  # an audited voucher stays
    overwrites = httpx.get(f"{sim.url}/_sim/overwrites").json()
    assert [o["voucher_id"] for o in overwrites[before:]] == [str(victim_id), str(kept["Id"])]
    assert [o["applied"] for o in overwrites[before:]] == [True, False]


# -- parity with Kingdee's SDK ---------------------------------------------------------------------


def test_the_sdk_saves_submits_audits_and_queries_against_the_simulator(sim: KingdeeSim) -> None:
    key = unique_key("K")
    sdk = sdk_for(sim)
    saved = json.loads(sdk.Save("GL_VOUCHER", {"Model": model_of(key)}))
    status = saved["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is True
    (entity,) = status["SuccessEntitys"]
    for step in (sdk.Submit, sdk.Audit):
        done = json.loads(step("GL_VOUCHER", {"Ids": str(entity["Id"])}))
        assert done["Result"]["ResponseStatus"]["IsSuccess"] is True
    rows = json.loads(
        sdk.ExecuteBillQuery(
            {
                "FormId": "GL_VOUCHER",
                "FieldKeys": "FVOUCHERID,FBillNo,FDocumentStatus",
                "FilterString": f"FEXPLANATION like '%#{key}'",
            }
        )
    )
    assert rows == [[entity["Id"], entity["Number"], "C"]] * 2  # one row per entry
    again = json.loads(sdk.Audit("GL_VOUCHER", {"Ids": str(entity["Id"])}))
    assert again["Result"]["ResponseStatus"]["IsSuccess"] is False  # audited once only
    forged = json.loads(
        sdk_for(sim, app_secret="f" * 32).ExecuteBillQuery(
            {"FormId": "BD_AccountBook", "FieldKeys": "FNumber"}
        )
    )
    assert forged[0][0]["Result"]["ResponseStatus"]["MsgCode"] == 1


def test_what_the_sdk_saved_the_connector_finds_and_finishes(sim: KingdeeSim) -> None:
    key = unique_key("P")
    sdk = sdk_for(sim)
    saved = json.loads(sdk.Save("GL_VOUCHER", {"Model": model_of(key)}))
    voucher_id = saved["Result"]["Id"]
    json.loads(sdk.Submit("GL_VOUCHER", {"Ids": str(voucher_id)}))
    found = one(sim.config(), "lookup", voucher(key))
    assert found is not None and found.ok and found.response["erp_id"] == str(voucher_id)
    (stored,) = in_sim(sim, key)
    assert stored["DocumentStatus"] == "C"  # audited by the connector, not saved again


def test_what_the_connector_posted_the_sdk_reads(sim: KingdeeSim) -> None:
    key = unique_key("Q")
    result = one(sim.config(), "deliver", voucher(key))
    assert result is not None and result.ok
    rows = json.loads(
        sdk_for(sim).ExecuteBillQuery(
            {
                "FormId": "GL_VOUCHER",
                "FieldKeys": "FBillNo,FDocumentStatus,FACCOUNTID.FNumber,FDEBIT,FCREDIT",
                "FilterString": f"FEXPLANATION like '%#{key}'",
            }
        )
    )
    number = result.response["erp_voucher_no"]
    assert rows == [[number, "C", "6602.04", 88.0, 0.0], [number, "C", "2241", 0.0, 88.0]]


def test_the_connector_signs_exactly_as_the_sdk_does(sim: KingdeeSim) -> None:
    c = sim.credentials
    url = service_url(c["server_url"], SAVE)
    sdk = sdk_for(sim)
    with mock.patch("time.time", return_value=1_780_000_000.7):
        theirs = sdk.BuildHeader(url)
    ours = AppCredentials(
        c["acct_id"], c["user_name"], c["app_id"], c["app_secret"], c["lcid"]
    ).headers(httpx.URL(url).path, 1_780_000_000.7)
    assert ours == {name: theirs[name] for name in ours}
    checker = AppCredentials(c["acct_id"], c["user_name"], c["app_id"], c["app_secret"])
    lower = {k.lower(): v for k, v in theirs.items()}
    assert checker.refusal(lower, SAVE_PATH, 1_780_000_000) is None  # the SDK's, accepted
    assert checker.refusal(lower, SAVE_PATH, 1_780_000_000 + 3600) == "x-api-timestamp"
    assert checker.refusal({**lower, "x-api-signature": "AAAA"}, SAVE_PATH, 1_780_000_000) == (
        "X-Api-Signature"
    )
