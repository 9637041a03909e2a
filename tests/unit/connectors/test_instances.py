"""Named connector instances: the embedded defaults, secrets from the environment and files
(never shown), one-line config errors naming the instance and field, and voucher routing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finoa.config import load_settings
from finoa.connectors.base import ConnectorKind
from finoa.connectors.instances import ConnectorConfigError, load_instances
from finoa.connectors.registry import destinations
from finoa.domain.errors import Conflict
from finoa.security.signatures import new_secret

PARENTS = {"D00": None, "D01": "D00", "D02": "D00", "D03": "D00", "X10": None, "X11": "X10"}


def load(tmp_path: Path, connectors: Any) -> Any:
    return load_instances(load_settings(data_dir=tmp_path / "data", connectors=connectors))


def test_without_a_connectors_section_the_defaults_come_from_the_settings(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", oa_base_url="http://oa.test:1")
    instances = load_instances(settings)
    assert list(instances.instances) == ["generic-oa", "generic-erp"]
    oa = instances.instances["generic-oa"]
    assert oa.kind is ConnectorKind.OA and oa.config["base_url"] == "http://oa.test:1"
    assert oa.config["webhook_secret"] == settings.oa_webhook_secret
    assert oa.inbound is not None and instances.inbound("generic-erp") is None
    assert (instances.default_oa, instances.default_erp) == ("generic-oa", "generic-erp")
    assert destinations(instances) == {
        "generic-oa": "generic-oa",
        "generic-erp": "generic-erp",
        "oa": "generic-oa",  # rows queued before named instances
        "erp": "generic-erp",
    }
    assert settings.oa_api_key not in repr(oa) and settings.oa_webhook_secret not in repr(oa)


def test_secrets_come_from_the_environment_and_files_and_are_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOA_HQ_OA_KEY", "hq-key-4711")
    secret_file = tmp_path / "branch-webhook"
    webhook_secret = new_secret()
    secret_file.write_text(webhook_secret + "\n")
    instances = load(
        tmp_path,
        {
            "hq-oa": {
                "connector": "generic-oa",
                "default": True,
                "config": {
                    "base_url": "http://hq.test",
                    "api_key_env": "FINOA_HQ_OA_KEY",
                    "webhook_secret": new_secret(),
                },
            },
            "branch-oa": {
                "connector": "generic-oa",
                "config": {
                    "base_url": "http://branch.test",
                    "api_key": "branch-key-0815",
                    "webhook_secret_file": str(secret_file),
                },
            },
            "erp-main": {
                "connector": "generic-erp",
                "config": {"base_url": "http://erp.test", "api_key": "erp-key-1234"},
            },
        },
    )
    hq, branch = instances.instances["hq-oa"], instances.instances["branch-oa"]
    assert hq.config["api_key"] == "hq-key-4711" and "api_key_env" not in hq.config
    assert branch.config["webhook_secret"] == webhook_secret  # the file's trailing newline cut
    shown = repr(instances) + repr(hq.describe()) + repr(branch.describe())
    for secret in ("hq-key-4711", "branch-key-0815", webhook_secret, "erp-key-1234"):
        assert secret not in shown
    assert hq.describe()["config"] == {
        "base_url": "http://hq.test",
        "api_key": "***",
        "webhook_secret": "***",
    }
    assert instances.default_oa == "hq-oa" and instances.oa_for_rest() == "hq-oa"
    assert instances.default_erp == "erp-main"


OA_OK = {"base_url": "http://oa.test", "api_key": "k", "webhook_secret": "whsec_AAAA"}
ERP_OK = {"base_url": "http://erp.test", "api_key": "k"}


@pytest.mark.parametrize(
    ("connectors", "message"),
    [
        (
            {"hq-oa": {"connector": "generic-oa", "config": {**OA_OK, "api_key_env": "NOPE"}}},
            "connectors.hq-oa.config.api_key_env: give api_key, api_key_env or api_key_file",
        ),
        (
            {
                "hq-oa": {
                    "connector": "generic-oa",
                    "config": {"base_url": "http://oa.test", "api_key_env": "FINOA_UNSET_KEY"},
                }
            },
            "connectors.hq-oa.config.api_key_env: the environment variable FINOA_UNSET_KEY",
        ),
        (
            {"hq-oa": {"connector": "generic-oa", "config": {**OA_OK, "base_url": "ftp://x"}}},
            "connectors.hq-oa.config.base_url: required, an http(s) URL",
        ),
        (
            {"hq-oa": {"connector": "generic-oa", "config": {**OA_OK, "webhook_secret": ""}}},
            "connectors.hq-oa.config.webhook_secret: required",
        ),
        ({"hq-oa": {"connector": "dingtalk-x", "config": {}}}, "connectors.hq-oa.connector: "),
        (
            {"hq-oa": {"connector": "generic-oa", "config": OA_OK, "tenant": 1}},
            "connectors.hq-oa.tenant: is not a known field",
        ),
        (
            {
                "a-oa": {"connector": "generic-oa", "config": OA_OK},
                "b-oa": {"connector": "generic-oa", "config": OA_OK},
            },
            "connectors.a-oa.default: several OA instances (a-oa, b-oa)",
        ),
        (
            {
                "erp-a": {"connector": "generic-erp", "config": ERP_OK, "org_units": ["D01"]},
                "erp-b": {"connector": "generic-erp", "config": ERP_OK, "companies": ["D01"]},
            },
            "connectors.erp-b.companies: D01 is mapped to erp-a already",
        ),
        ({"oa": {"connector": "generic-oa", "config": OA_OK}}, "connectors.oa: the names oa"),
        (
            {"hq oa": {"connector": "generic-oa", "config": OA_OK}},
            "connectors.hq oa: an instance name",
        ),
    ],
)
def test_a_config_error_is_one_line_naming_the_instance_and_field(
    tmp_path: Path, connectors: Any, message: str
) -> None:
    with pytest.raises(ConnectorConfigError) as refused:
        load(tmp_path, connectors)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def erps(tmp_path: Path, **extra: Any) -> Any:
    config = {"base_url": "http://erp.test", "api_key": "k"}
    return load(
        tmp_path,
        {
            "erp-sales": {"connector": "generic-erp", "config": config, "org_units": ["D02"]},
            "erp-group": {"connector": "generic-erp", "config": config, "companies": ["D00"]},
            "erp-other": {"connector": "generic-erp", "config": config, **extra},
        },
    )


def test_vouchers_go_to_the_erp_their_org_unit_or_company_is_mapped_to(tmp_path: Path) -> None:
    instances = erps(tmp_path)
    assert instances.erp_for("D02", PARENTS) == "erp-sales"  # its own unit
    assert instances.erp_for("D03", PARENTS) == "erp-group"  # through its company D00
    assert instances.erp_for("D00", PARENTS) == "erp-group"
    with pytest.raises(Conflict) as unmapped:
        instances.erp_for("X11", PARENTS)
    assert unmapped.value.field == "department_id"
    assert "X11" in str(unmapped.value) and "erp-sales, erp-group, erp-other" in str(unmapped.value)
    assert "erp" not in instances.legacy_destinations()  # no default ERP: nothing to stand for


def test_an_unmapped_org_unit_goes_to_the_default_erp(tmp_path: Path) -> None:
    instances = erps(tmp_path, default=True)
    assert instances.erp_for("X11", PARENTS) == "erp-other"
    assert instances.erp_for("D02", PARENTS) == "erp-sales"  # a mapping still wins
    assert instances.legacy_destinations()["erp"] == "erp-other"


def routed(tmp_path: Path, routing: Any, **lists: Any) -> Any:
    config = {"base_url": "http://erp.test", "api_key": "k"}
    return load_instances(
        load_settings(
            data_dir=tmp_path / "data",
            connectors={
                "erp-a": {"connector": "generic-erp", "config": config, **lists},
                "erp-b": {"connector": "generic-erp", "config": config},
            },
            routing=routing,
        )
    )


def test_a_routing_table_sends_vouchers_by_org_unit_with_a_default(tmp_path: Path) -> None:
    instances = routed(
        tmp_path, {"erp": {"by": "org_unit", "table": {"D02": "erp-b"}, "default": "erp-a"}}
    )
    assert instances.erp_for("D02", PARENTS) == "erp-b"  # its own unit
    assert instances.erp_for("D03", PARENTS) == "erp-a"  # nothing listed: the default
    assert instances.erp_for("X11", PARENTS) == "erp-a"
    assert instances.legacy_destinations()["erp"] == "erp-a"
    through_company = routed(tmp_path, {"erp": {"table": {"X10": "erp-b", "D00": "erp-a"}}})
    assert through_company.erp_for("X11", PARENTS) == "erp-b"  # the enclosing unit decides
    assert through_company.erp_for("D02", PARENTS) == "erp-a"


def test_routing_by_company_looks_up_only_the_company(tmp_path: Path) -> None:
    table = {"D02": "erp-b", "D00": "erp-a", "X10": "erp-b"}
    instances = routed(tmp_path, {"erp": {"by": "company", "table": table}})
    assert instances.erp_for("D02", PARENTS) == "erp-a"  # D02's own entry does not count
    assert instances.erp_for("X11", PARENTS) == "erp-b"
    by_unit = routed(tmp_path, {"erp": {"by": "org_unit", "table": table}})
    assert by_unit.erp_for("D02", PARENTS) == "erp-b"


@pytest.mark.parametrize(
    ("routing", "lists", "message"),
    [
        ({"erp": {"table": {"D02": "erp-x"}}}, {}, "routing.erp.table.D02: no ERP instance named"),
        ({"erp": {"table": {"D02": "hq-oa"}}}, {}, "routing.erp.table.D02: no ERP instance named"),
        ({"erp": {"default": "nope"}}, {}, "routing.erp.default: no ERP instance named 'nope'"),
        ({"erp": {"by": "city"}}, {}, "routing.erp.by: 'city' is not one of org_unit, company"),
        ({"erp": {"tabel": {}}}, {}, "routing.erp.tabel: is not a known field"),
        ({"oa": {}}, {}, "routing.oa: only erp is routed"),
        (
            {"erp": {"table": {"D02": "erp-b"}}},
            {"org_units": ["D02"]},
            "routing.erp.table.D02: says erp-b, but connectors.erp-a lists D02",
        ),
        (
            {"erp": {"default": "erp-b"}},
            {"default": True},
            "routing.erp.default: says erp-b, but connectors.erp-a is marked default: true",
        ),
    ],
)
def test_a_bad_routing_table_is_one_line_naming_the_field(
    tmp_path: Path, routing: Any, lists: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConnectorConfigError) as error:
        routed(tmp_path, routing, **lists)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_an_external_archive_is_one_instance_of_kind_archive_beside_or_instead(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        archive_external_url="http://archive.test:1",
        archive_external_api_key="arch-key-4711",
        archive_external_webhook_secret=new_secret(),
    )
    instances = load_instances(settings)
    assert list(instances.instances) == ["generic-archive", "generic-oa", "generic-erp"]
    archive = instances.archive
    assert archive is not None and archive.kind is ConnectorKind.ARCHIVE
    assert archive.mode == "beside" and archive.inbound is not None
    assert "arch-key-4711" not in repr(archive) and archive.describe()["mode"] == "beside"
    assert load_instances(load_settings(data_dir=tmp_path / "data")).archive is None

    spec = {"connector": "generic-archive", "config": {"base_url": "http://a.test", "api_key": "k"}}
    named = load(tmp_path, {"records": {**spec, "mode": "instead"}})
    assert named.archive is not None and named.archive.name == "records"
    assert named.archive.mode == "instead" and named.archive.inbound is None  # no secret
    bad = {
        "records": {**spec, "mode": "elsewhere"},
    }
    with pytest.raises(ConnectorConfigError, match=r"^connectors\.records\.mode: 'elsewhere'"):
        load(tmp_path, bad)
    with pytest.raises(ConnectorConfigError, match=r"^connectors\.second: records is the external"):
        load(tmp_path, {"records": spec, "second": spec})
    oa = {"connector": "generic-erp", "config": {"base_url": "http://e.test", "api_key": "k"}}
    with pytest.raises(ConnectorConfigError, match=r"^connectors\.erp1\.mode: only archive"):
        load(tmp_path, {"erp1": {**oa, "mode": "instead"}})
    secretless = {**spec, "config": {**spec["config"], "webhook_secret": "plain"}}
    with pytest.raises(ConnectorConfigError, match=r"connectors\.records\.config\.webhook_secret"):
        load(tmp_path, {"records": secretless})
    with pytest.raises(ValueError, match="archive_external_mode: 'nowhere'"):
        load_settings(data_dir=tmp_path / "data", archive_external_mode="nowhere")
