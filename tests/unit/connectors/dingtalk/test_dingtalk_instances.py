"""DingTalk instances in finoa.yaml: approval modes, secrets never shown, config errors
named, the `mappings:` overrides handed to the connector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finoa.config import load_settings
from finoa.connectors.dingtalk.crypto import new_encoding_aes_key
from finoa.connectors.instances import ConnectorConfigError, load_instances
from finoa.security.signatures import new_secret

AES_KEY = new_encoding_aes_key()


def dingtalk(**extra: Any) -> dict[str, Any]:
    config = {
        "app_key": "dingapp",
        "app_secret": "s3cret-app",
        "token": "t0ken-cb",
        "aes_key": AES_KEY,
        "process_code": "PROC-1",
    }
    return {"connector": "dingtalk", "config": config, **extra}


def generic_erp() -> dict[str, Any]:
    return {"connector": "generic-erp", "config": {"base_url": "http://erp:1", "api_key": "k"}}


def load(tmp_path: Path, connectors: Any, **settings: Any) -> Any:
    return load_instances(
        load_settings(data_dir=tmp_path / "data", connectors=connectors, **settings)
    )


def test_approval_modes_per_instance_and_document_type(tmp_path: Path) -> None:
    instances = load(
        tmp_path,
        {
            "hq": dingtalk(approvals={"expense_claim": "oa-led"}, default=True),
            "branch": dingtalk(),
            "erp-main": generic_erp(),
        },
    )
    assert instances.approval_mode("hq") == "oa-led"
    assert instances.approval_mode("branch") == "hub-led"
    assert instances.approval_mode("oa") == "oa-led"  # the default OA's alias
    assert instances.instances["hq"].describe()["approvals"] == {"expense_claim": "oa-led"}


def test_secrets_are_never_shown(tmp_path: Path) -> None:
    instance = load(tmp_path, {"hq": dingtalk(), "erp-main": generic_erp()}).instances["hq"]
    shown = repr(instance) + repr(instance.describe()) + repr(instance.inbound)
    for secret in ("s3cret-app", "t0ken-cb", AES_KEY):
        assert secret not in shown


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            dingtalk(approvals={"expense_claim": "sometimes"}),
            "connectors.hq.approvals.expense_claim: 'sometimes'",
        ),
        (
            dingtalk(approvals={"invoice": "oa-led"}),
            "connectors.hq.approvals.invoice: unknown document type",
        ),
        (
            {
                "connector": "generic-oa",
                "approvals": {"expense_claim": "oa-led"},
                "config": {
                    "base_url": "http://oa:1",
                    "api_key": "k",
                    "webhook_secret": new_secret(),
                },
            },
            "generic-oa cannot run approvals in the OA",
        ),
        (
            dingtalk() | {"config": {**dingtalk()["config"], "aes_key": "short"}},
            "connectors.hq.config.aes_key",
        ),
        (
            dingtalk() | {"config": {**dingtalk()["config"], "process_code": ""}},
            "connectors.hq.config.process_code",
        ),
    ],
)
def test_config_errors_name_the_instance_and_field(tmp_path: Path, spec: Any, message: str) -> None:
    with pytest.raises(ConnectorConfigError, match="connectors.hq") as caught:
        load(tmp_path, {"hq": spec, "erp-main": generic_erp()})
    assert message in str(caught.value)


def test_erp_instances_take_no_approval_modes(tmp_path: Path) -> None:
    with pytest.raises(ConnectorConfigError, match="only OA instances run approvals"):
        load(
            tmp_path,
            {
                "hq": dingtalk(),
                "erp-main": generic_erp() | {"approvals": {"expense_claim": "oa-led"}},
            },
        )


def test_the_connector_sees_the_mapping_overrides(tmp_path: Path) -> None:
    bad = {
        "dingtalk/expense_claim": {
            "format": 1,
            "mapping": "dingtalk/expense_claim",
            "version": 1,
            "fields": {"x": {"source": "a[?"}},
        }
    }
    with pytest.raises(ConnectorConfigError, match="connectors.hq.config.mappings"):
        load(tmp_path, {"hq": dingtalk(), "erp-main": generic_erp()}, mappings=bad)


def test_the_inbound_handlers_http_clients_are_closed_on_shutdown(tmp_path: Path) -> None:
    import asyncio
    from dataclasses import replace

    from finoa.connectors.instances import close_inbound_handlers

    instances = load(tmp_path, {"hq": dingtalk(default=True), "erp-main": generic_erp()})
    handler = instances.inbound("hq")
    client = handler.vendor_http(5)  # made when a callback first asks DingTalk
    assert handler.vendor_http(5) is client and not client.is_closed

    class Broken:
        async def aclose(self) -> None:
            raise RuntimeError("cannot close")

    # one handler failing to close does not keep the others open
    broken = replace(instances.instances["erp-main"], inbound=Broken())
    ordered = replace(instances, instances={"erp-main": broken, "hq": instances.instances["hq"]})
    asyncio.run(close_inbound_handlers(ordered))
    assert client.is_closed
    assert handler.vendor_http(5) is not client  # a later call would make a fresh one
    asyncio.run(handler.aclose())


@pytest.mark.parametrize("rate", [0, -1, "fast", True])
def test_a_rate_limit_is_a_positive_number(tmp_path: Path, rate: Any) -> None:
    spec = dingtalk()
    spec["config"]["rate_limit_per_second"] = rate
    with pytest.raises(ConnectorConfigError, match=r"hq\.config\.rate_limit_per_second"):
        load(tmp_path, {"hq": spec, "erp-main": generic_erp()})
