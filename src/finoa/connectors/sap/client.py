"""The hub's client to SAP FI through an HTTP gateway (see the package docstring).

Each voucher is one LUW: `BAPI_ACC_DOCUMENT_CHECK`, then `BAPI_ACC_DOCUMENT_POST`, then
`BAPI_TRANSACTION_COMMIT` with `WAIT = X`. A document posted but never committed is not in
SAP: it is rolled back (explicitly before the next LUW, or by SAP when the session ends), so
only a commit whose answer is lost leaves the outcome unknown, and the posted-lookup (BKPF by
`XBLNR`, read with `RFC_READ_TABLE`) settles it. SAP has no idempotency key: the reference is
the only guard against a second document.

Codes: the `sap/voucher` mapping (`mapping/defaults/sap/voucher.yaml`, overridable under
`mappings:`, with the config's `gl_accounts`, `cost_centers` and `vendors` on top) gives the
G/L account of each of finoa's accounts, the cost center of each department and the vendor
of each employee, applied as the document is built. A voucher whose account it does not list
is refused in finoa, naming the account and the mapping, and nothing is sent to SAP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, cast

import httpx
import orjson

from finoa.connectors.auth import delivery_error
from finoa.connectors.base import (
    ConnectorManifest,
    DeliveryResult,
    HealthReport,
    OutboundMessage,
    VoucherPayload,
)
from finoa.connectors.basedata import deliver_checked
from finoa.connectors.sap import mapping
from finoa.connectors.sap.manifest import CONFIG_SCHEMA, MANIFEST
from finoa.connectors.voucher_codes import VoucherCodes, connector_codes, without_mappings
from finoa.messaging.retry import DeliveryError, ErrorClass

ACTION = "voucher.post"
BKPF_FIELDS = ("BUKRS", "BELNR", "GJAHR", "XBLNR", "AWTYP", "AWKEY", "AWSYS", "STBLG", "STJAH",
               "XREVERSAL")  # fmt: skip
DELIMITER = "|"


@dataclass(frozen=True)
class SapConfig:
    base_url: str
    username: str
    password: str = field(repr=False)
    codes: mapping.SapCodes
    sap_client: str | None = None
    reversal_reason: str = "01"
    timeout_seconds: float = 5.0

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> SapConfig:
        """Check a config; raise ValueError naming the bad field."""
        properties = CONFIG_SCHEMA["properties"]
        unknown = sorted(set(config) - set(properties))
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        for name in CONFIG_SCHEMA["required"]:
            if not isinstance(config.get(name), str) or not config[name].strip():
                raise ValueError(f"{name}: required, a non-empty string")
        base_url = str(config["base_url"])
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url: must be an http(s) URL")
        if len(config["company_code"]) > 4:
            raise ValueError("company_code: at most 4 characters (BUKRS)")
        for name in ("sap_client", "logical_system", "document_type", "reversal_reason"):
            if name in config and (not isinstance(config[name], str) or not config[name]):
                raise ValueError(f"{name}: must be a non-empty string")
        tables: dict[str, dict[str, str]] = {}
        for name in ("gl_accounts", "vendors", "cost_centers"):
            table = config.get(name, {})
            if not isinstance(table, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in table.items()
            ):
                raise ValueError(f"{name}: must map codes to non-empty strings")
            tables[name] = dict(table)
        timeout = config.get("timeout_seconds", 5)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError("timeout_seconds: must be a positive number")
        codes = mapping.SapCodes(
            company_code=config["company_code"],
            username=config["username"],
            logical_system=config.get("logical_system", "FINOA"),
            document_type=config.get("document_type", "SA"),
            **tables,
        )
        return cls(
            base_url=base_url.rstrip("/"),
            username=config["username"],
            password=config["password"],
            codes=codes,
            sap_client=config.get("sap_client"),
            reversal_reason=config.get("reversal_reason", "01"),
            timeout_seconds=float(timeout),
        )

    def mapped(self, config: Mapping[str, Any]) -> tuple[SapConfig, VoucherCodes]:
        """This config with the `sap/voucher` mapping's tables under its own, and those
        tables; ValueError `mappings: …` for a mapping that cannot be loaded."""
        codes = (
            connector_codes("sap", config)
            .with_accounts(self.codes.gl_accounts)
            .with_dimensions(
                {"department": self.codes.cost_centers, "employee": self.codes.vendors}
            )
        )
        tables = mapping.SapCodes(
            company_code=self.codes.company_code,
            username=self.codes.username,
            logical_system=self.codes.logical_system,
            document_type=self.codes.document_type,
            gl_accounts=codes.accounts,
            vendors=codes.dimensions.get("employee", {}),
            cost_centers=codes.dimensions.get("department", {}),
        )
        return replace(self, codes=tables), codes


class CsrfRequired(Exception):
    """The gateway refused a POST for a missing or stale CSRF token."""


class SAPConnector:
    """Posts vouchers as FI documents, one LUW at a time over one gateway session."""

    manifest: ClassVar[ConnectorManifest] = MANIFEST
    uses_mappings: ClassVar[bool] = True  # it receives the `mappings:` overrides

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        self._http = http
        self._config: SapConfig | None = None
        self._config_error = ""
        self.codes: VoucherCodes | None = None
        try:
            self._config, self.codes = SapConfig.parse(without_mappings(config)).mapped(config)
        except ValueError as exc:
            self._config_error = f"sap config: {exc}"
        self._token: str | None = None
        self._cookie = ""
        # The session's LUW may hold a posted, uncommitted document: roll it back first.
        self._luw_open = False
        self._lock = asyncio.Lock()

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        SapConfig.parse(without_mappings(config)).mapped(config)

    # -- the gateway ------------------------------------------------------------------------

    def _checked(self) -> SapConfig:
        if self._config is None:
            raise DeliveryError(ErrorClass.CONFIG, self._config_error)
        return self._config

    def _params(self, config: SapConfig) -> dict[str, str]:
        return {"sap-client": config.sap_client} if config.sap_client else {}

    async def _fetch_token(self, config: SapConfig) -> None:
        """`X-CSRF-Token: Fetch`: a new gateway session and its token."""
        self._token, self._cookie, self._luw_open = None, "", False
        try:
            response = await self._http.get(
                f"{config.base_url}/",
                params=self._params(config),
                headers={"x-csrf-token": "Fetch", "accept": "application/json"},
                auth=(config.username, config.password),
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            raise delivery_error(exc) from exc
        if response.status_code == 401:
            raise DeliveryError(
                ErrorClass.CONFIG,
                f"the SAP gateway refused user {config.username!r} (HTTP 401): check the "
                "username and password of the RFC user",
            )
        if not response.is_success:
            raise DeliveryError.from_response(response)
        token = response.headers.get("x-csrf-token", "")
        if not token or token.lower() in ("fetch", "required"):
            raise DeliveryError(ErrorClass.PERMANENT, "the SAP gateway answered no CSRF token")
        self._token = token
        self._cookie = "; ".join(f"{k}={v}" for k, v in response.cookies.items())

    async def _rfc(self, function: str, body: dict[str, Any]) -> dict[str, Any]:
        """Call a function module; its export parameters and tables. A stale token is
        fetched again once (a new session: whatever its LUW held is gone)."""
        config = self._checked()
        for attempt in (1, 2):
            if self._token is None:
                await self._fetch_token(config)
            try:
                return await self._send(config, function, body)
            except CsrfRequired:
                self._token = None
                if attempt == 2:
                    raise DeliveryError(
                        ErrorClass.AUTH, f"{function}: the gateway refused a fresh CSRF token"
                    ) from None
        raise AssertionError("unreachable")

    async def _send(self, config: SapConfig, function: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._token is not None
        response = await self._http.post(
            f"{config.base_url}/rfc/{function}",
            params=self._params(config),
            content=orjson.dumps(body),
            headers={
                "content-type": "application/json",
                "accept": "application/json",
                "x-csrf-token": self._token,
                "cookie": self._cookie,
            },
            auth=(config.username, config.password),
            timeout=config.timeout_seconds,
        )
        if response.status_code == 403 and (
            response.headers.get("x-csrf-token", "").lower() == "required"
        ):
            raise CsrfRequired
        if not response.is_success:
            raise DeliveryError.from_response(response)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise DeliveryError(ErrorClass.PERMANENT, f"{function}: answer is not JSON") from exc
        if not isinstance(data, dict):
            raise DeliveryError(ErrorClass.PERMANENT, f"{function}: answer is not an object")
        return data

    async def _call(self, function: str, body: dict[str, Any]) -> dict[str, Any]:
        """`_rfc` with transport failures as DeliveryErrors."""
        try:
            return await self._rfc(function, body)
        except DeliveryError:
            raise
        except Exception as exc:
            raise delivery_error(exc) from exc

    @staticmethod
    def _returns(function: str, answer: dict[str, Any]) -> list[dict[str, Any]]:
        rows = answer.get("RETURN", [])
        if isinstance(rows, dict):  # a RETURN structure rather than a table
            rows = [rows] if any(rows.values()) else []
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DeliveryError(ErrorClass.PERMANENT, f"{function}: RETURN is not a table")
        return cast(list[dict[str, Any]], rows)

    async def _bapi(self, function: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self._call(function, body)
        error = mapping.return_error(function, self._returns(function, answer))
        if error is not None:
            raise error
        return answer

    # -- delivery ---------------------------------------------------------------------------

    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """Refuse each voucher with an account the mapping does not list (naming it), post
        the others (or their reversals) each in its own LUW; one result per message."""
        erp = (
            f"SAP company code {self._config.codes.company_code}"
            if self._config is not None
            else "SAP"
        )
        return await deliver_checked(messages, None, erp, self._deliver, self.codes,
                                     map_codes=False)  # fmt: skip

    async def _deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        results = []
        for message in messages:
            try:
                if message.action != ACTION:
                    reason = f"sap has no action {message.action!r}; it knows {ACTION!r}"
                    raise DeliveryError(ErrorClass.CONFIG, reason)
                config = self._checked()
                payload = cast(VoucherPayload, message.payload)
                async with self._lock:
                    if payload.get("reversal_of"):
                        results.append(await self._reverse(config, message, payload))
                    else:
                        results.append(await self._post(config, message, payload))
            except DeliveryError as error:
                results.append(DeliveryResult(error=error))
        return results

    async def _new_luw(self) -> None:
        """Roll back what a broken earlier LUW may have left in the session."""
        if self._luw_open:
            await self._bapi("BAPI_TRANSACTION_ROLLBACK", {})
            self._luw_open = False

    async def _commit(self, function: str, reference: str) -> None:
        """`BAPI_TRANSACTION_COMMIT` with WAIT: any failure leaves the outcome unknown."""
        try:
            await self._bapi("BAPI_TRANSACTION_COMMIT", {"WAIT": "X"})
        except DeliveryError as error:
            raise DeliveryError(
                error.error_class
                if error.error_class is not ErrorClass.PERMANENT
                else ErrorClass.TRANSIENT,
                f"{function} for {reference} answered, then the commit failed: {error.reason}",
                retry_after=error.retry_after,
                outcome_unknown=True,
            ) from error
        self._luw_open = False

    async def _post(
        self, config: SapConfig, message: OutboundMessage, payload: VoucherPayload
    ) -> DeliveryResult:
        body = mapping.document(payload, config.codes, message.idempotency_key)
        reference = body["DOCUMENTHEADER"]["REF_DOC_NO"]
        await self._new_luw()
        await self._bapi("BAPI_ACC_DOCUMENT_CHECK", body)
        return await self._luw("BAPI_ACC_DOCUMENT_POST", body, reference)

    async def _luw(self, function: str, body: dict[str, Any], reference: str) -> DeliveryResult:
        """Post (`function`) then commit, in a LUW the session has open for nothing else."""
        await self._new_luw()
        self._luw_open = True
        try:
            answer = await self._bapi(function, body)
        except DeliveryError as error:
            # Not committed, so not in SAP, whatever the answer was: the next LUW starts
            # with a rollback. A lost answer is therefore a plain transient failure.
            raise DeliveryError(
                error.error_class, error.reason, retry_after=error.retry_after
            ) from error
        await self._commit(function, reference)
        return DeliveryResult(response=_document_result(answer, reference))

    async def _reverse(
        self, config: SapConfig, message: OutboundMessage, payload: VoucherPayload
    ) -> DeliveryResult:
        original_ref = mapping.voucher_reference(str(payload["reversal_of"]))
        original = await self._original(config, original_ref)
        if original is None:
            reason = (
                f"the voucher to reverse ({payload['reversal_of']}, REF_DOC_NO "
                f"{original_ref}) is not in company code {config.codes.company_code}"
            )
            raise DeliveryError(ErrorClass.PERMANENT, reason)
        if original.get("STBLG"):
            found = await self._reversal_of(config, original)
            if found is not None:
                return found
        body = mapping.reversal(payload, config.codes, original["AWKEY"], config.reversal_reason)
        return await self._luw("BAPI_ACC_DOCUMENT_REV_POST", body, original_ref)

    # -- the posted-lookup ------------------------------------------------------------------

    async def _bkpf(self, config: SapConfig, **where: str) -> list[dict[str, str]]:
        """BKPF rows of the company code matching `where`, read with RFC_READ_TABLE."""
        options = [f"BUKRS = '{config.codes.company_code}'"]
        options += [f"{name} = '{value}'" for name, value in where.items()]
        text = " AND ".join(options)
        answer = await self._call(
            "RFC_READ_TABLE",
            {
                "QUERY_TABLE": "BKPF",
                "DELIMITER": DELIMITER,
                "OPTIONS": [{"TEXT": text[i : i + 72]} for i in range(0, len(text), 72)],
                "FIELDS": [{"FIELDNAME": name} for name in BKPF_FIELDS],
            },
        )
        data = answer.get("DATA")
        fields = answer.get("FIELDS")
        if not isinstance(data, list) or not isinstance(fields, list):
            raise DeliveryError(ErrorClass.PERMANENT, "RFC_READ_TABLE: no DATA/FIELDS tables")
        names = [str(f.get("FIELDNAME")) for f in fields if isinstance(f, dict)]
        rows = []
        for line in data:
            values = str(line.get("WA", "") if isinstance(line, dict) else "").split(DELIMITER)
            rows.append({n: v.strip() for n, v in zip(names, values, strict=False)})
        return rows

    async def _original(self, config: SapConfig, reference: str) -> dict[str, str] | None:
        """The one document posted under a reference (reversal documents, which copy the
        reference, are left out); None when there is none."""
        rows = [r for r in await self._bkpf(config, XBLNR=reference) if r.get("XREVERSAL") != "2"]
        if len(rows) > 1:
            numbers = ", ".join(f"{r['BELNR']}/{r['GJAHR']}" for r in rows)
            reason = f"REF_DOC_NO {reference} is on {len(rows)} documents ({numbers})"
            raise DeliveryError(ErrorClass.PERMANENT, reason)
        return rows[0] if rows else None

    async def _reversal_of(
        self, config: SapConfig, original: dict[str, str]
    ) -> DeliveryResult | None:
        rows = await self._bkpf(config, BELNR=original["STBLG"], GJAHR=original["STJAH"])
        if not rows:
            return None
        return DeliveryResult(response=_row_result(rows[0]))

    async def lookup(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult | None]:
        """Each voucher's document found by its REF_DOC_NO (BKPF-XBLNR); for a reversal, the
        reversal document of the original. None when SAP has none."""
        async with self._lock:  # never between a posting and its commit
            return [await self._find(message) for message in messages]

    async def _find(self, message: OutboundMessage) -> DeliveryResult | None:
        try:
            config = self._checked()
            payload = cast(VoucherPayload, message.payload)
            if payload.get("reversal_of"):
                ref = mapping.voucher_reference(str(payload["reversal_of"]))
                original = await self._original(config, ref)
                if original is None or not original.get("STBLG"):
                    return None
                return await self._reversal_of(config, original)
            row = await self._original(config, mapping.reference(message.idempotency_key))
            return None if row is None else DeliveryResult(response=_row_result(row))
        except DeliveryError as error:
            return DeliveryResult(error=error)

    async def health(self) -> HealthReport:
        """Fetch a CSRF token with the RFC user's credentials."""
        if self._config is None:
            return HealthReport(False, self._config_error)
        started = time.perf_counter()
        try:
            async with self._lock:
                await self._fetch_token(self._config)
        except DeliveryError as error:
            return HealthReport(False, f"{self._config.base_url}: {error.reason}")
        latency = round((time.perf_counter() - started) * 1000, 1)
        return HealthReport(True, f"{self._config.base_url} answered in {latency} ms", latency)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""


def _document_number(obj_key: str) -> tuple[str, str, str]:
    """OBJ_KEY of an FI document: BELNR (10) + BUKRS (4) + GJAHR (4)."""
    return obj_key[:10], obj_key[10:14].strip(), obj_key[14:18]


def _result(belnr: str, bukrs: str, gjahr: str, obj_key: str, **extra: str) -> dict[str, Any]:
    return {
        "erp_voucher_no": f"{bukrs}/{belnr}/{gjahr}",
        "document_no": belnr,
        "company_code": bukrs,
        "fiscal_year": gjahr,
        "obj_key": obj_key,
        **extra,
    }


def _document_result(answer: dict[str, Any], reference: str) -> dict[str, Any]:
    obj_key = str(answer.get("OBJ_KEY") or "")
    belnr, bukrs, gjahr = _document_number(obj_key)
    if len(obj_key) != 18 or not belnr.strip():
        raise DeliveryError(
            ErrorClass.PERMANENT, f"SAP answered {reference} without a document key: {obj_key!r}"
        )
    return _result(belnr, bukrs, gjahr, obj_key, reference=reference)


def _row_result(row: dict[str, str]) -> dict[str, Any]:
    return _result(row["BELNR"], row["BUKRS"], row["GJAHR"], row.get("AWKEY", ""),
                   reference=row.get("XBLNR", ""))  # fmt: skip
