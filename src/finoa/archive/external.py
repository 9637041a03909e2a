"""Pushing packages to an external archive system (connector `generic-archive`), beside the
built-in archive: each package with its metadata and files; the archive's answer (status,
四性检测 result) is recorded in `archive_access_log` (action `pushed`) and the audit trail.
A refusal (a file missing or with a wrong hash, named) is recorded too, as `push_refused`."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from finoa.archive.borrowing import log_access
from finoa.archive.service import Archive, PackageQuery, find_packages, record_view
from finoa.connectors.generic_archive.client import ArchiveRefused, GenericArchiveClient
from finoa.store.tables import archive_access_log
from finoa.store.uow import Database, UnitOfWork


@dataclass
class PushSummary:
    pushed: list[str] = field(default_factory=list)
    already: int = 0
    refused: list[str] = field(default_factory=list)


def pushed_ids(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return {
            r[0]
            for r in conn.execute(
                select(archive_access_log.c.package_id).where(
                    archive_access_log.c.action == "pushed"
                )
            )
        }


def push_packages(
    db: Database, archive: Archive, client: GenericArchiveClient, query: PackageQuery
) -> PushSummary:
    summary = PushSummary()
    done = pushed_ids(db)
    with db.engine.connect() as conn:
        records = find_packages(conn, query)
    for record in records:
        if record.package_id in done:
            summary.already += 1
            continue
        files = [(f.as_dict(), archive.store.read(f.sha256)) for f in record.files]
        try:
            answer = client.push(record.package_id, record.archive_no, record_view(record), files)
        except ArchiveRefused as exc:
            summary.refused.append(f"{record.archive_no}: {exc.detail}")
            _note(db, record.package_id, "push_refused",
                  {"status": exc.status, "detail": exc.detail, "file": exc.file})  # fmt: skip
            continue
        _note(db, record.package_id, "pushed",
              {"status": answer.status, "check_passed": answer.check_passed,
               "items": answer.items})  # fmt: skip
        summary.pushed.append(record.archive_no)
    return summary


def _note(db: Database, package_id: str, action: str, detail: dict[str, object]) -> None:
    def record(uow: UnitOfWork) -> None:
        log_access(uow, package_id, "archive:external", action, detail)
        uow.audit(f"archive.package_{action}", "archive_package", package_id, detail)

    db.perform(record, actor="archive")


def client_from(base_url: str, api_key: str, http: httpx.Client) -> GenericArchiveClient:
    return GenericArchiveClient(base_url, api_key, http)
