"""The doctor's judgements that need no running system: disk space, callback URLs, clocks,
and the exit code a script sees."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from finoa.cli_errors import ExitCode
from finoa.connectors.base import ConnectorKind, Direction
from finoa.connectors.generic_oa.manifest import MANIFEST as OA_MANIFEST
from finoa.connectors.instances import ConnectorInstance
from finoa.doctor import (
    Status,
    callback_finding,
    clock_finding,
    disk_finding,
    exit_code,
    fail,
    ok,
    warn,
)


def test_disk_space_below_the_thresholds_warns_then_fails(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    assert disk_finding(tmp_path, warn_below=free // 2, fail_below=free // 4).status is Status.OK
    warned = disk_finding(tmp_path, warn_below=free * 2, fail_below=free // 4)
    assert warned.status is Status.WARN and "free" in warned.detail
    failed = disk_finding(tmp_path / "not" / "yet", warn_below=free * 4, fail_below=free * 2)
    assert failed.status is Status.FAIL and "at least" in failed.hint


def instance(config: dict[str, Any], name: str = "dd-oa") -> ConnectorInstance:
    return ConnectorInstance(name, "vendor-oa", ConnectorKind.OA, Direction.BOTH, config)


def manifest_with_callback(required: bool) -> Any:
    schema = dict(OA_MANIFEST.config_schema)
    schema["properties"] = {**schema["properties"], "callback_url": {"type": "string"}}
    schema["required"] = [*schema["required"], *(["callback_url"] if required else [])]
    return replace(OA_MANIFEST, config_schema=schema)


@pytest.mark.parametrize(
    "url, status, phrase",
    [
        ("https://hub.example.com/api/v1/webhooks/dd-oa", Status.OK, "callback URL https://"),
        ("http://127.0.0.1:8700/api/v1/webhooks/dd-oa", Status.OK, "callback URL http://"),
        ("https://hub.example.com/api/v1/webhooks/other", Status.WARN, "does not end in"),
        ("http://hub.example.com/api/v1/webhooks/dd-oa", Status.WARN, "is not https"),
        ("hub.example.com/api/v1/webhooks/dd-oa", Status.FAIL, "not an http(s) URL"),
    ],
)
def test_a_callback_url_must_reach_the_instances_webhook(
    url: str, status: Status, phrase: str
) -> None:
    found = callback_finding("c", instance({"callback_url": url}), manifest_with_callback(True))
    assert found is not None and found.status is status and phrase in found.detail


def test_a_missing_callback_url_fails_when_required_and_warns_otherwise() -> None:
    required = callback_finding("c", instance({}), manifest_with_callback(True))
    optional = callback_finding("c", instance({}), manifest_with_callback(False))
    assert required is not None and required.status is Status.FAIL
    assert "connectors.dd-oa.config.callback_url" in required.hint
    assert "/api/v1/webhooks/dd-oa" in required.hint
    assert optional is not None and optional.status is Status.WARN
    assert callback_finding("c", instance({}), OA_MANIFEST) is None  # no such field: no row


@pytest.mark.parametrize(
    "seconds, status",
    [
        (0, Status.OK),
        (3, Status.OK),
        (-8, Status.WARN),
        (59, Status.WARN),
        (61, Status.FAIL),
        (-3600, Status.FAIL),
    ],
)
def test_clock_skew_thresholds(seconds: float, status: Status) -> None:
    asked = datetime(2026, 12, 1, 8, 0, 0, 250_000, tzinfo=UTC)
    told = (asked + timedelta(seconds=seconds)).replace(microsecond=0)  # Date: whole seconds
    assert clock_finding("c", told, asked).status is status


def test_exit_codes_tell_ok_warnings_and_failures_apart() -> None:
    assert exit_code([ok("a", "")]) == 0
    assert exit_code([ok("a", ""), warn("b", "", "")]) == ExitCode.WARNINGS == 9
    assert exit_code([warn("b", "", ""), fail("c", "", "")]) == ExitCode.CHECK_FAILED == 1
