"""Generic REST connectors (`generic-oa`, `generic-erp`) and their simulators.

This module holds what both connector clients share: the config schema and its parsing, the
auth provider (a static bearer key) and the authorized request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx

from finoa.connectors.auth import StaticBearer, send_authorized
from finoa.connectors.base import AuthProvider, ConnectorManifest, HealthReport

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
# Every secret field may instead be given as `<field>_env` (the name of an environment
# variable) or `<field>_file` (a file holding it); the hub resolves them before the connector
# sees its config, and never shows them (see `finoa.connectors.instances`).


@dataclass(frozen=True)
class RestConfig:
    """Validated connector config."""

    base_url: str
    api_key: str = field(repr=False)
    timeout_seconds: float = 5.0

    @classmethod
    def parse(
        cls, config: Mapping[str, Any], schema: Mapping[str, Any] = CONFIG_SCHEMA
    ) -> RestConfig:
        """Check a config dict against `schema` (CONFIG_SCHEMA or one extending it); raise
        ValueError naming the bad field. Fields beyond CONFIG_SCHEMA's are the caller's."""
        unknown = sorted(set(config) - set(schema["properties"]))
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
        """JSON content headers for every request (credentials come from the auth provider)."""
        return {"content-type": "application/json", "accept": "application/json"}


class RestConnector:
    """What both generic REST clients share: the parsed config and the caller's HTTP client.
    A bad config is kept as `_config_error`, and `deliver` answers it as a CONFIG error."""

    manifest: ClassVar[ConnectorManifest]

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        self._http = http
        self._config: RestConfig | None = None
        self._config_error = ""
        self.auth: AuthProvider = StaticBearer("")
        try:
            self._config = RestConfig.parse(config, self.manifest.config_schema)
        except ValueError as exc:
            self._config_error = f"{self.manifest.name} config: {exc}"
        else:
            self.auth = StaticBearer(self._config.api_key)

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        """Raise ValueError (`field: reason`) for a config this connector cannot work with."""
        RestConfig.parse(config, cls.manifest.config_schema)

    async def _request(self, method: str, url: str, **options: Any) -> httpx.Response:
        """An HTTP request with the auth provider's credentials beside `headers`; a 401 is
        answered by fresh credentials and one more try (see `send_authorized`)."""
        extra = options.pop("headers", {})

        async def send(auth_headers: dict[str, str]) -> httpx.Response:
            return await self._http.request(
                method, url, headers={**extra, **auth_headers}, **options
            )

        return await send_authorized(self.auth, send)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""


async def rest_health(connector: RestConnector, path: str) -> HealthReport:
    """GET `path` with the connector's credentials: reachable and authorised, or why not."""
    if connector._config is None:
        return HealthReport(False, connector._config_error)
    config = connector._config
    started = time.perf_counter()
    try:
        response = await connector._request(
            "GET", config.base_url + path, headers=config.headers(), timeout=config.timeout_seconds
        )
    except Exception as exc:
        return HealthReport(False, f"{config.base_url} unreachable: {type(exc).__name__}: {exc}")
    latency = round((time.perf_counter() - started) * 1000, 1)
    server_time = http_date(response)
    if not response.is_success:
        detail = f"{config.base_url}{path} answered HTTP {response.status_code}"
        return HealthReport(False, detail, latency, server_time)
    return HealthReport(True, f"{config.base_url} answered in {latency} ms", latency, server_time)


def http_date(response: httpx.Response) -> datetime | None:
    """The peer's clock from the response's `Date` header (RFC 9110), None when absent or
    unreadable."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
