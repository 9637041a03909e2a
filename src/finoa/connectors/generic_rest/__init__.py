"""Generic REST connectors (`generic-oa`, `generic-erp`) and their simulators.

This module holds what both connector clients share: the config schema and its parsing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from finoa.connectors.base import ConnectorManifest, HealthReport

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "base_url": {
            "type": "string",
            "format": "uri",
            "pattern": "^https?://",
            "description": "Root URL of the peer, e.g. https://oa.example.com",
        },
        "api_key": {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "Sent as `Authorization: Bearer <api_key>`",
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 5,
            "description": "Per-request timeout",
        },
    },
    "required": ["base_url", "api_key"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class RestConfig:
    """Validated connector config."""

    base_url: str
    api_key: str
    timeout_seconds: float = 5.0

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> RestConfig:
        """Check a config dict against CONFIG_SCHEMA; raise ValueError naming the bad field."""
        unknown = sorted(set(config) - set(CONFIG_SCHEMA["properties"]))
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        base_url = config.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url: required, an http(s) URL")
        api_key = config.get("api_key")
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key: required, a non-empty string")
        timeout = config.get("timeout_seconds", 5)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError("timeout_seconds: must be a positive number")
        return cls(base_url.rstrip("/"), api_key, float(timeout))

    def headers(self) -> dict[str, str]:
        """Bearer auth and JSON content headers for every request."""
        return {
            "authorization": f"Bearer {self.api_key}",
            "content-type": "application/json",
            "accept": "application/json",
        }


class RestConnector:
    """What both generic REST clients share: the parsed config and the caller's HTTP client.
    A bad config is kept as `_config_error`, and `deliver` answers it as a CONFIG error."""

    manifest: ClassVar[ConnectorManifest]

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        self._http = http
        self._config: RestConfig | None = None
        self._config_error = ""
        try:
            self._config = RestConfig.parse(config)
        except ValueError as exc:
            self._config_error = f"{self.manifest.name} config: {exc}"

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""


async def rest_health(connector: RestConnector, path: str) -> HealthReport:
    """GET `path` with the connector's credentials: reachable and authorised, or why not."""
    if connector._config is None:
        return HealthReport(False, connector._config_error)
    config = connector._config
    started = time.perf_counter()
    try:
        response = await connector._http.get(
            config.base_url + path, headers=config.headers(), timeout=config.timeout_seconds
        )
    except Exception as exc:
        return HealthReport(False, f"{config.base_url} unreachable: {type(exc).__name__}: {exc}")
    latency = round((time.perf_counter() - started) * 1000, 1)
    if not response.is_success:
        detail = f"{config.base_url}{path} answered HTTP {response.status_code}"
        return HealthReport(False, detail, latency)
    return HealthReport(True, f"{config.base_url} answered in {latency} ms", latency)
