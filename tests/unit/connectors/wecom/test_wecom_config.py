"""A `wecom` instance in finoa.yaml: its secrets from the environment or files and redacted,
both approval modes, and bad config refused naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finoa.config import load_settings
from finoa.connectors.instances import ConnectorConfigError, load_instances
from finoa.connectors.wecom.crypto import WeComCrypto
from finoa.connectors.wecom.mapping import WeComConfig

AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


def wecom(**config: Any) -> dict[str, Any]:
    return {
        "corp_id": "ww1234567890abcdef",
        "corp_secret_env": "FINOA_TEST_WECOM_SECRET",
        "token": "QDG6eK",
        "aes_key": AES_KEY,
        "template_id": "C4NyFinoaExpenseClaim",
        **config,
    }


def load(tmp_path: Path, spec: dict[str, Any]) -> Any:
    connectors = {
        "wecom": spec,
        "erp-main": {
            "connector": "generic-erp",
            "config": {"base_url": "http://e", "api_key": "k"},
        },
    }
    return load_instances(load_settings(data_dir=tmp_path / "data", connectors=connectors))


@pytest.mark.parametrize("mode", ["oa-led", "hub-led"])
def test_an_instance_in_either_mode_with_its_secrets_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("FINOA_TEST_WECOM_SECRET", "s3cret-value")
    secret_file = tmp_path / "aes"
    secret_file.write_text(AES_KEY, encoding="utf-8")
    spec = wecom(aes_key_file=str(secret_file))
    del spec["aes_key"]
    instances = load(
        tmp_path,
        {"connector": "wecom", "approvals": {"expense_claim": mode}, "config": spec},
    )
    instance = instances.instances["wecom"]
    assert instance.approval_mode("expense_claim") == mode and instance.inbound is not None
    described = instance.describe()["config"]
    assert described["corp_secret"] == described["token"] == described["aes_key"] == "***"
    assert described["corp_id"] == "ww1234567890abcdef"
    shown = repr(instance) + repr(instance.inbound) + repr(WeComConfig.parse(instance.config))
    assert "s3cret-value" not in shown and AES_KEY not in shown and "QDG6eK" not in shown
    assert AES_KEY not in repr(WeComCrypto("QDG6eK", AES_KEY, "ww1"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"aes_key": "short"}, "aes_key"),
        ({"template_id": ""}, "template_id"),
        ({"api_base_url": "ftp://x"}, "api_base_url"),
        ({"agent_id": "1000002"}, "agent_id"),
        ({"task_creator_userid": ""}, "task_creator_userid"),
        ({"process_code": "PROC-1"}, "process_code"),
    ],
)
def test_bad_config_is_refused_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], field: str
) -> None:
    monkeypatch.setenv("FINOA_TEST_WECOM_SECRET", "s3cret-value")
    with pytest.raises(ConnectorConfigError) as caught:
        load(tmp_path, {"connector": "wecom", "config": wecom(**change)})
    assert field in str(caught.value)
