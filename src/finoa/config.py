"""Settings: embedded defaults, overridden by `finoa.yaml` and `FINOA_*` environment variables.

Secrets (token signing key, webhook secret, API keys, client secrets) come from the
environment or from `<data_dir>/secrets.json`, which is created with random values on first
use so the embedded default needs no file at all. Secrets are never logged.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from finoa.domain.errors import DomainError
from finoa.domain.periods import ClosedPeriodPolicy
from finoa.domain.working_hours import WorkingCalendar, parse_days, parse_holidays, parse_window
from finoa.invoices.validation import is_credit_code
from finoa.security.signatures import new_secret

DEFAULT_DATA_DIR = Path("finoa-data")


@dataclass(frozen=True)
class ApiClient:
    """A system allowed to call the API with OAuth 2.0 client credentials."""

    client_id: str
    secret: str
    scopes: tuple[str, ...]


ALL_SCOPES = (
    "claims:read",
    "claims:write",
    "tasks:decide",
    "ops:replay",
    "ops:read",
    "periods:manage",
    "budgets:read",
    "budgets:manage",
    "budgets:approve",
    "processes:read",
    "processes:manage",
    "archive:read",
    "archive:use",
)
BUDGET_MODES = ("block", "warn", "none")
ESCALATION_TARGETS = ("manager", "finance_director", "cfo")
CLOSED_PERIOD_POLICIES = tuple(policy.value for policy in ClosedPeriodPolicy)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8700
    token_secret: str = ""
    token_ttl_seconds: int = 900
    oa_webhook_secret: str = ""
    oa_base_url: str = "http://127.0.0.1:8701"
    oa_api_key: str = ""
    erp_base_url: str = "http://127.0.0.1:8702"
    erp_api_key: str = ""
    max_body_bytes: int = 1_048_576
    webhook_tolerance_seconds: int = 300
    clients: tuple[ApiClient, ...] = ()
    connector_timeout_seconds: float = 5.0
    dispatcher_batch: int = 500
    dispatcher_concurrency: int = 16
    dispatcher_pipeline: int = 2  # claimed batches being delivered at once
    max_attempts: int = 0  # 0: no cap on attempts; retryable failures retry for retry_for_seconds
    retry_for_seconds: float = 86_400.0  # how long a retryable failure keeps retrying
    lease_seconds: float = 15.0  # a crashed worker's deliveries come back after this long
    worker_id: str = ""  # stable per worker process; default: host name and role
    stuck_task_minutes: float = 30.0  # approval tasks older than this are checked with the OA
    sweep_every_seconds: float = 60.0  # how often the hub looks for such tasks
    retry_base_seconds: float = 0.2
    retry_cap_seconds: float = 60.0
    sqlite_synchronous: str = "full"  # "normal" trades durability on power loss for speed
    group_commit_writers: int = 0  # concurrent group-commit writers; 0: 1 on SQLite, 4 otherwise
    company_timezone: str = "Asia/Shanghai"  # voucher dates and periods follow company time
    closed_period_policy: str = "next_open"  # or "refuse"; see domain/periods.py
    budget_mode: str = "block"  # mode of an imported budget that names none: block/warn/none
    budget_cache_seconds: float = 5.0  # budgets made by another process apply within this
    company_tax_id: str = ""  # the buyer every invoice must name (统一社会信用代码)
    invoice_max_bytes: int = 5_242_880  # an uploaded invoice file at most (5 MiB)
    invoice_dir: str = ""  # where invoice files are kept; default <data_dir>/invoices
    tax_platform_url: str = ""  # the invoice verification service; empty: not verified
    tax_platform_api_key: str = ""
    policy_file: str = ""  # expense policy YAML; empty: the default shipped with finoa
    fallback_approver: str = ""  # employee who gets a step whose role nobody holds; "": refuse
    archive_dir: str = ""  # where archive package files are kept; default <data_dir>/archive
    archive_fonds: str = "F001"  # 全宗号 of the company's accounting archive
    # 档号 of a voucher's package; fields: fonds, year, period (MM), retention, voucher_no
    archive_no_template: str = "{fonds}-{year}-KJ·{period}-{retention}-{voucher_no}"
    archive_font: str = ""  # a TrueType CJK font for archive PDFs; empty: found on the system
    allow_repeat_approver: bool = False  # may one person approve two steps of one claim
    remind_after_working_hours: float = 8.0  # 催办 an open task after this long (0: never)
    escalate_after_working_hours: float = 16.0  # then hand it on (0: never)
    escalate_to: str = "manager"  # the assignee's manager, or a role: finance_director / cfo
    working_hours: str = "09:00-18:00"  # company time
    working_days: str = "1-5"  # ISO weekdays, Monday = 1
    holidays: tuple[str, ...] = ()  # ISO dates without working hours
    timer_every_seconds: float = 30.0  # how often a hub looks for due timers
    archive_every_seconds: float = 15.0  # how often a hub archives posted vouchers (0: never)
    archive_workers: int = 0  # processes building archive packages; 0: one per core
    clock_offset_file: str = ""  # test processes: seconds to add to the clock, read from here
    # an external archive system (connector generic-archive) packages are pushed to; "": none
    archive_external_url: str = ""
    archive_external_api_key: str = ""
    archive_external_webhook_secret: str = ""  # its status callbacks are signed with this
    archive_external_mode: str = "beside"  # or instead: the external archive is the record
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.company_zone  # noqa: B018 - an unknown zone is a configuration error, now
        if self.closed_period_policy not in CLOSED_PERIOD_POLICIES:
            raise ValueError(
                f"closed_period_policy: {self.closed_period_policy!r} is not one of "
                + ", ".join(CLOSED_PERIOD_POLICIES)
            )
        if self.budget_mode not in BUDGET_MODES:
            raise ValueError(f"budget_mode: {self.budget_mode!r} is not one of block, warn, none")
        if self.company_tax_id and not is_credit_code(self.company_tax_id):
            raise ValueError(
                f"company_tax_id: {self.company_tax_id!r} is not a valid 统一社会信用代码 "
                "(18 characters with its GB 32100 check character)"
            )
        if self.invoice_max_bytes < 1:
            raise ValueError("invoice_max_bytes: must be a positive number of bytes")
        if self.archive_workers < 0:
            raise ValueError("archive_workers: a number of processes (0: one per core)")
        if self.archive_external_mode not in ("beside", "instead"):
            raise ValueError(
                f"archive_external_mode: {self.archive_external_mode!r} is not one of "
                "beside, instead"
            )
        if isinstance(self.holidays, str) or not isinstance(self.holidays, (list, tuple)):
            raise ValueError("holidays: a list of dates (YYYY-MM-DD)")
        object.__setattr__(self, "holidays", tuple(str(day) for day in self.holidays))
        if self.escalate_to not in ESCALATION_TARGETS:
            raise ValueError(
                f"escalate_to: {self.escalate_to!r} is not one of " + ", ".join(ESCALATION_TARGETS)
            )
        try:
            self.working_calendar  # noqa: B018 - a bad calendar is a configuration error, now
        except DomainError as exc:
            raise ValueError(str(exc)) from None

    @property
    def working_calendar(self) -> WorkingCalendar:
        """Working days and hours in company time, for reminders and escalations."""
        start, end = parse_window(self.working_hours)
        return WorkingCalendar(
            self.company_zone,
            start,
            end,
            parse_days(self.working_days),
            parse_holidays(self.holidays),
        )

    @property
    def company_zone(self) -> ZoneInfo:
        """The company's time zone (zoneinfo caches it)."""
        try:
            return ZoneInfo(self.company_timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(
                f"company_timezone: unknown time zone {self.company_timezone!r} "
                "(an IANA name such as Asia/Shanghai)"
            ) from None

    @property
    def archive_builders(self) -> int:
        """How many processes build archive packages."""
        return self.archive_workers or max(1, os.cpu_count() or 1)

    @property
    def invoice_path(self) -> Path:
        """The directory of invoice files (write-once, named by SHA-256)."""
        return Path(self.invoice_dir) if self.invoice_dir else self.data_dir / "invoices"

    @property
    def archive_path(self) -> Path:
        """The directory of archive package files (write-once, named by SHA-256)."""
        return Path(self.archive_dir) if self.archive_dir else self.data_dir / "archive"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'finoa.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def client(self, client_id: str) -> ApiClient | None:
        return next((c for c in self.clients if c.client_id == client_id), None)


def _load_or_create_secrets(data_dir: Path) -> dict[str, str]:
    path = data_dir / "secrets.json"
    wanted = {
        "token_secret": lambda: secrets.token_urlsafe(48),
        "oa_webhook_secret": new_secret,
        "oa_api_key": lambda: secrets.token_urlsafe(24),
        "erp_api_key": lambda: secrets.token_urlsafe(24),
        "admin_client_secret": lambda: secrets.token_urlsafe(24),
    }
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    missing = {k: make() for k, make in wanted.items() if k not in stored}
    if missing:
        stored.update(missing)
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    return stored


def _parse_clients(raw: str) -> tuple[ApiClient, ...]:
    """`id:secret:scope1,scope2;id2:secret2:*` -> clients."""
    clients = []
    for item in filter(None, (part.strip() for part in raw.split(";"))):
        client_id, secret, scopes = (item.split(":", 2) + ["*"])[:3]
        scope_tuple = ALL_SCOPES if scopes in ("", "*") else tuple(scopes.split(","))
        clients.append(ApiClient(client_id, secret, scope_tuple))
    return tuple(clients)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings: defaults < finoa.yaml < FINOA_* environment < explicit overrides."""
    env = os.environ
    values: dict[str, Any] = {}
    path = config_file or (Path(env["FINOA_CONFIG"]) if env.get("FINOA_CONFIG") else None)
    if path is None and Path("finoa.yaml").exists():
        path = Path("finoa.yaml")
    if path is not None:
        values.update(yaml.safe_load(path.read_text()) or {})
    simple = {
        "data_dir": Path,
        "database_url": str,
        "host": str,
        "port": int,
        "token_secret": str,
        "oa_webhook_secret": str,
        "oa_base_url": str,
        "oa_api_key": str,
        "erp_base_url": str,
        "erp_api_key": str,
        "max_body_bytes": int,
        "connector_timeout_seconds": float,
        "max_attempts": int,
        "retry_for_seconds": float,
        "lease_seconds": float,
        "worker_id": str,
        "stuck_task_minutes": float,
        "sweep_every_seconds": float,
        "sqlite_synchronous": str,
        "group_commit_writers": int,
        "company_timezone": str,
        "closed_period_policy": str,
        "budget_mode": str,
        "budget_cache_seconds": float,
        "company_tax_id": str,
        "invoice_max_bytes": int,
        "invoice_dir": str,
        "tax_platform_url": str,
        "tax_platform_api_key": str,
        "policy_file": str,
        "fallback_approver": str,
        "archive_dir": str,
        "archive_fonds": str,
        "archive_no_template": str,
        "archive_font": str,
        "remind_after_working_hours": float,
        "escalate_after_working_hours": float,
        "escalate_to": str,
        "working_hours": str,
        "working_days": str,
        "timer_every_seconds": float,
        "archive_every_seconds": float,
        "archive_workers": int,
        "clock_offset_file": str,
        "archive_external_url": str,
        "archive_external_api_key": str,
        "archive_external_webhook_secret": str,
        "archive_external_mode": str,
    }
    for name, cast in simple.items():
        env_value = env.get(f"FINOA_{name.upper()}")
        if env_value:
            values[name] = cast(env_value)
    holidays = env.get("FINOA_HOLIDAYS", "").strip()
    if holidays:
        values["holidays"] = tuple(h.strip() for h in holidays.split(",") if h.strip())
    repeat = env.get("FINOA_ALLOW_REPEAT_APPROVER", "").strip().lower()
    if repeat:
        values["allow_repeat_approver"] = repeat in ("1", "true", "yes", "on")
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "data_dir" in values:
        values["data_dir"] = Path(values["data_dir"])
    data_dir = values.get("data_dir", DEFAULT_DATA_DIR)
    stored = _load_or_create_secrets(data_dir)
    for key in ("token_secret", "oa_webhook_secret", "oa_api_key", "erp_api_key"):
        if not values.get(key):
            values[key] = stored[key]
    clients = list(_parse_clients(env.get("FINOA_CLIENTS", "")))
    for spec in values.pop("clients", []) or []:
        if isinstance(spec, ApiClient):
            clients.append(spec)
        else:
            clients.append(
                ApiClient(spec["client_id"], spec["secret"], tuple(spec.get("scopes", ALL_SCOPES)))
            )
    if not any(c.client_id == "finoa-admin" for c in clients):
        clients.append(ApiClient("finoa-admin", stored["admin_client_secret"], ALL_SCOPES))
    known = set(Settings.__dataclass_fields__)
    extra = {k: v for k, v in values.items() if k not in known}
    settings_values = {k: v for k, v in values.items() if k in known}
    return Settings(clients=tuple(clients), extra=extra, **settings_values)
