"""Sweeping an OA (`finoa sync oa`): nothing it decided stays unseen.

The OA connector lists the approvals changed in a window (`ApprovalChanges`), widened back by
an overlap so that a change recorded late at the OA is not missed between two sweeps. Each
change is applied as its callback would have been (`finoa.services.inbound`): a claim whose
callback was lost is recorded, a result never heard of decides its claim, and a change
already applied comes back as a duplicate and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from finoa.connectors.base import ApprovalChanges
from finoa.domain.errors import DomainError
from finoa.services.context import Hub
from finoa.services.inbound import command_write

DEFAULT_OVERLAP = timedelta(minutes=10)


@dataclass
class SyncReport:
    """What one sweep of an OA instance found and did."""

    since: str
    until: str
    seen: int = 0
    applied: int = 0
    duplicates: int = 0
    refused: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "seen": self.seen,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "refused": self.refused,
        }


async def sync_oa(
    hub: Hub,
    instance: str,
    source: ApprovalChanges,
    since: datetime,
    until: datetime,
    *,
    overlap: timedelta = DEFAULT_OVERLAP,
) -> SyncReport:
    """Apply what `instance` changed from `since - overlap` until `until`, under the
    instance's name as the inbox source (as its callbacks are)."""
    start = since - overlap
    report = SyncReport(start.isoformat(), until.isoformat())
    changes = await source.approval_changes(start, until)
    report.refused.extend(changes.problems)
    for command in changes.commands:
        report.seen += 1
        try:
            write, actor = command_write(hub, instance, command)
            result = await hub.db.run(hub.db.perform, write, actor=f"{actor} via sync")
        except DomainError as exc:
            report.refused.append(f"{command.message_id}: {exc.field}: {exc.message}")
            continue
        if result.get("duplicate"):
            report.duplicates += 1
        else:
            report.applied += 1
    return report
