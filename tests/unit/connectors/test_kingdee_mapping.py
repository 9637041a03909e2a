"""Canonical vouchers -> K/3 Cloud GL_VOUCHER models (golden files), the MsgCode table, and
the answers the connector reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finoa.config import load_settings
from finoa.connectors.instances import ConnectorConfigError, load_instances
from finoa.connectors.kingdee.manifest import KingdeeConfig
from finoa.connectors.kingdee.mapping import (
    BaseData,
    MappingError,
    explanation,
    reference_in,
    save_data,
    voucher_model,
    yuan,
)
from finoa.connectors.kingdee.protocol import client_secret, response_status, status_answer
from finoa.messaging.retry import ErrorClass

GOLDEN = Path(__file__).parents[2] / "fixtures" / "kingdee"
KEY = "finoa-voucher-V20261100001"


def travel_voucher(**overrides: Any) -> dict[str, Any]:
    aux = {"department": "D02", "employee": "E0011", "project": "P001"}
    return {
        "voucher_id": "V20261100001",
        "claim_id": "C-0001",
        "hub_voucher_no": "记-2026-11-0001",
        "word": "记",
        "period": "2026-11",
        "date": "2026-11-10",
        "summary": "周杰 差旅报销",
        "currency": "CNY",
        "reversal_of": None,
        "entries": [
            {
                "line": 1,
                "account_code": "6602.01",
                "summary": "差旅费",
                "debit_fen": 112810,
                "credit_fen": 0,
                "aux": aux,
            },
            {
                "line": 2,
                "account_code": "2221.01.01",
                "summary": "进项税额",
                "debit_fen": 990,
                "credit_fen": 0,
                "aux": aux,
            },
            {
                "line": 3,
                "account_code": "2241",
                "summary": "应付周杰",
                "debit_fen": 0,
                "credit_fen": 113800,
                "aux": aux,
            },
        ],
        **overrides,
    }


def golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text("utf-8"))


def test_a_voucher_maps_onto_the_golden_model() -> None:
    model = voucher_model(travel_voucher(), KEY, BaseData())
    assert model == golden("voucher_model.json")
    assert "FVOUCHERID" not in model  # never an internal id on create
    assert save_data(model)["IsVerifyBaseDataField"] == "true"
    assert save_data(model)["ValidateFlag"] == "true"


def test_a_red_ink_reversal_maps_onto_the_golden_model() -> None:
    """As the hub queues it: negated amounts on the usual side, "冲销 <no>" summaries."""
    original = travel_voucher()
    for entry in original["entries"]:
        entry["debit_fen"], entry["credit_fen"] = -entry["debit_fen"], -entry["credit_fen"]
        entry["summary"] = "冲销 记-2026-11-0001 周杰 差旅报销"
    reversal = {
        **original,
        "voucher_id": "R20261100001",
        "reversal_of": "V20261100001",
        "date": "2026-12-01",
        "period": "2026-12",
    }
    model = voucher_model(reversal, "finoa-voucher-R20261100001", BaseData())
    assert model == golden("reversal_model.json")


def test_the_reference_can_go_into_a_header_field_and_codes_are_mapped() -> None:
    base = BaseData(
        reference_field="F_FINOA_Ref",
        accounts={"6602.01": "6602.01.001"},
        dimension_codes={"department": {"D02": "BM02"}},
        account_book="100",
    )
    model = voucher_model(travel_voucher(), KEY, base)
    assert model["F_FINOA_Ref"] == KEY
    assert model["FAccountBookID"] == {"FNumber": "100"}
    first = model["FEntity"][0]
    assert first["FEXPLANATION"] == "差旅费"  # the reference is not in the explanation
    assert first["FACCOUNTID"] == {"FNumber": "6602.01.001"}
    assert first["FDetailID"]["FDETAILID__FFLEX5"] == {"FNumber": "BM02"}


@pytest.mark.parametrize(
    ("overrides", "named"), [({"word": "现"}, "voucher_words"), ({"currency": "USD"}, "currencies")]
)
def test_an_unmapped_word_or_currency_is_a_mapping_error_naming_the_table(
    overrides: dict[str, str], named: str
) -> None:
    with pytest.raises(MappingError, match=named):
        voucher_model(travel_voucher(**overrides), KEY, BaseData())


def test_amounts_are_decimal_yuan_and_explanations_keep_the_reference_whole() -> None:
    assert (yuan(112810), yuan(-990), yuan(0), yuan(5)) == ("1128.10", "-9.90", "0.00", "0.05")
    long = explanation("费" * 400, KEY)
    assert len(long) == 255 and reference_in(long) == KEY
    assert reference_in("no reference here") is None


def test_the_config_names_the_bad_field() -> None:
    good = {"server_url": "http://k3/K3Cloud/", "acct_id": "a", "user_name": "u"}
    with pytest.raises(ValueError, match="app_id and app_secret are required"):
        KingdeeConfig.parse(good)
    with pytest.raises(ValueError, match="^server_url:"):
        KingdeeConfig.parse({**good, "server_url": "k3", "password": "p", "auth": "password"})
    with pytest.raises(ValueError, match="^base_data.dimension_fields:"):
        KingdeeConfig.parse(
            {
                **good,
                "password": "p",
                "auth": "password",
                "base_data": {"dimension_fields": {"x": "F"}},
            }
        )


@pytest.mark.parametrize(
    ("msg_code", "error_class"),
    [
        (1, ErrorClass.AUTH),
        (2, ErrorClass.CONFIG),
        (4, ErrorClass.TRANSIENT),
        (9, ErrorClass.PERMANENT),
        (11, ErrorClass.PERMANENT),
        (13, ErrorClass.TRANSIENT),
        (14, ErrorClass.RATE_LIMITED),
    ],
)
def test_msg_codes_map_into_the_retry_table(msg_code: int, error_class: ErrorClass) -> None:
    answer = status_answer(
        errors=[{"FieldName": "FACCOUNTID", "Message": "科目不存在", "DIndex": 0}],
        msg_code=msg_code,
    )
    status = response_status(answer)
    assert status is not None and not status.is_success
    error = status.error("the Save of V1")
    assert error.error_class is error_class
    assert "FACCOUNTID: 科目不存在" in error.reason and f"MsgCode {msg_code}" in error.reason


def test_answers_are_read_in_every_shape_kingdee_sends() -> None:
    lost = {
        "Result": {
            "ResponseStatus": {
                "ErrorCode": 500,
                "IsSuccess": "False",
                "Errors": [{"FieldName": None, "Message": "会话信息已丢失，请重新登录"}],
            }
        }
    }
    status = response_status([[lost]])  # the error row of an ExecuteBillQuery
    assert status is not None and status.session_lost and not status.is_success
    ok = response_status({"Result": {"ResponseStatus": {"IsSuccess": "True"}}})
    assert ok is not None and ok.is_success
    assert response_status([[100001, "记-1", "C"]]) is None  # query rows hold no status


def test_the_client_secret_is_derived_from_the_app_id() -> None:
    assert client_secret("204399_short") == ""
    assert client_secret("no-underscore") == ""
    assert len(client_secret("204399_" + "A" * 32)) == 32


def test_kingdee_secrets_are_resolved_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOA_TEST_K3_SECRET", "k3-secret-0042")
    base = {"server_url": "http://k3.test/K3Cloud/", "acct_id": "a", "user_name": "u"}
    connectors = {
        "hq-oa": {
            "connector": "generic-oa",
            "config": {"base_url": "http://oa.test", "api_key": "k", "webhook_secret": "whsec_A"},
        },
        "k3": {
            "connector": "kingdee",
            "config": {**base, "app_id": "1_x", "app_secret_env": "FINOA_TEST_K3_SECRET"},
        },
        "k3-pw": {
            "connector": "kingdee",
            "config": {**base, "auth": "password", "password": "pw-0815"},
        },
    }
    settings = load_settings(data_dir=tmp_path / "data", connectors=connectors)
    instances = load_instances(settings)
    k3, pw = instances.instances["k3"], instances.instances["k3-pw"]
    assert k3.config["app_secret"] == "k3-secret-0042"
    shown = repr(instances) + repr(k3.describe()) + repr(pw.describe())
    assert "k3-secret-0042" not in shown and "pw-0815" not in shown
    assert k3.describe()["config"]["app_secret"] == pw.describe()["config"]["password"] == "***"


def test_a_bad_kingdee_config_is_refused_at_start_naming_the_field(tmp_path: Path) -> None:
    connectors = {
        "k3": {
            "connector": "kingdee",
            "config": {
                "server_url": "http://k3.test/",
                "acct_id": "a",
                "user_name": "u",
                "auth": "password",
                "password": "p",
                "lcid": 0,
            },
        }
    }
    settings = load_settings(data_dir=tmp_path / "data", connectors=connectors)
    with pytest.raises(ConnectorConfigError, match="lcid"):
        load_instances(settings)
