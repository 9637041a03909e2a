"""A `feishu` instance from finoa.yaml: its secrets from the environment or files and never
shown, its config checked field by field, both approval modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finoa.config import load_settings
from finoa.connectors.feishu.client import FeishuConnector
from finoa.connectors.feishu.inbound import FeishuInbound
from finoa.connectors.instances import ConnectorConfigError, load_instances

ERP = {"connector": "generic-erp", "config": {"base_url": "http://erp.test", "api_key": "k"}}


def load(tmp_path: Path, feishu: dict[str, Any]) -> Any:
    connectors = {"feishu": {"connector": "feishu", **feishu}, "erp-main": ERP}
    return load_instances(load_settings(data_dir=tmp_path / "data", connectors=connectors))


def config(**extra: Any) -> dict[str, Any]:
    return {
        "app_id": "cli_a1b2c3d4e5f60708",
        "app_secret": "app-secret-4711",
        "verification_token": "verification-0815",
        "encrypt_key": "encrypt-key-1234",
        "approval_code": "7C468A54-8745-2245-9675-08B7C63E7A85",
        **extra,
    }


@pytest.mark.parametrize("mode", ["oa-led", "hub-led"])
def test_secrets_come_from_env_and_files_and_are_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("FINOA_FEISHU_SECRET", "env-secret-9999")
    key_file = tmp_path / "encrypt-key"
    key_file.write_text("file-key-5555\n")
    raw = config(app_secret_env="FINOA_FEISHU_SECRET", encrypt_key_file=str(key_file))
    del raw["app_secret"], raw["encrypt_key"]
    instances = load(tmp_path, {"approvals": {"expense_claim": mode}, "config": raw})
    feishu = instances.instances["feishu"]
    assert feishu.config["app_secret"] == "env-secret-9999"
    assert feishu.config["encrypt_key"] == "file-key-5555"
    assert feishu.approval_mode("expense_claim") == mode
    described = feishu.describe()["config"]
    assert {k: described[k] for k in ("app_secret", "verification_token", "encrypt_key")} == {
        "app_secret": "***",
        "verification_token": "***",
        "encrypt_key": "***",
    }
    shown = repr(instances) + repr(feishu.describe()) + repr(feishu.inbound)
    connector = FeishuConnector(dict(feishu.config), None)  # type: ignore[arg-type]
    shown += repr(connector.api.config) + repr(FeishuInbound(feishu.config))  # type: ignore[union-attr]
    for secret in ("env-secret-9999", "file-key-5555", "verification-0815"):
        assert secret not in shown


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"approval_code": ""}, "approval_code"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"rate_limit_per_second": 0}, "rate_limit_per_second"),
        ({"callback_tolerance_seconds": True}, "callback_tolerance_seconds"),
        ({"app_key": "x"}, "app_key"),
    ],
)
def test_a_bad_config_names_its_field(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    with pytest.raises(ConnectorConfigError, match=field):
        load(tmp_path, {"config": config(**change)})
