"""`finoa sync oa INSTANCE --since …`: sweep one OA instance for approvals whose callbacks
never arrived (the scheduler comes later; run it from cron meanwhile)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from finoa.cli_errors import CliError, ExitCode
from finoa.config import Settings
from finoa.connectors.base import ApprovalChanges, ConnectorKind
from finoa.connectors.registry import build_connectors
from finoa.runtime import new_http_client
from finoa.services.context import Hub
from finoa.services.sync import DEFAULT_OVERLAP, SyncReport, sync_oa


def parse_moment(text: str, option: str, zone: object) -> datetime:
    """An ISO date or date-time (company time when it has no offset), or `<n>h` / `<n>d`
    back from now."""
    now = datetime.now(UTC)
    if text[:-1].isdigit() and text[-1:] in ("h", "d"):
        amount = int(text[:-1])
        return now - (timedelta(hours=amount) if text.endswith("h") else timedelta(days=amount))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            ExitCode.BAD_INPUT,
            f"{option}: {text!r} is not a date, a date-time or a span such as 24h or 7d",
            f"give e.g. {option} 2026-11-20 or {option} 24h",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)  # type: ignore[arg-type]


def sync_instance(
    settings: Settings, instance: str, since: datetime, until: datetime, overlap_minutes: float
) -> SyncReport:
    """Sweep `instance` once and return what it found and did."""
    hub = Hub.create(settings)
    try:
        known = hub.instances.instances.get(instance)
        if known is None or known.kind is not ConnectorKind.OA:
            oas = ", ".join(hub.instances.of_kind(ConnectorKind.OA)) or "none"
            raise CliError(
                ExitCode.UNKNOWN_CONNECTOR,
                f"instance: no OA connector instance named {instance!r} (OA instances: {oas})",
                "name an OA instance of the connectors: section of finoa.yaml",
            )
        return asyncio.run(_sweep(hub, instance, since, until, overlap_minutes))
    finally:
        hub.close()


async def _sweep(
    hub: Hub, instance: str, since: datetime, until: datetime, overlap_minutes: float
) -> SyncReport:
    async with new_http_client(hub.settings) as http:
        connector = build_connectors(hub.instances, http)[instance]
        if not isinstance(connector, ApprovalChanges):
            raise CliError(
                ExitCode.UNKNOWN_CONNECTOR,
                f"instance: {instance} ({hub.instances.instances[instance].connector}) cannot "
                "list its changed approvals",
                "sweep an instance whose connector supports it, e.g. dingtalk",
            )
        overlap = timedelta(minutes=overlap_minutes) if overlap_minutes else DEFAULT_OVERLAP
        return await sync_oa(hub, instance, connector, since, until, overlap=overlap)
