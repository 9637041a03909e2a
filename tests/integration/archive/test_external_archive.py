"""The generic archive connector against its simulator (a real process), on both databases:
a package pushed with its files, the archive's status recorded; an incomplete package or a
file with a wrong hash refused, naming the file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from support.processes import Server, free_port, start

from finoa.archive.external import client_from, push_packages
from finoa.archive.service import Archive, PackageQuery, build_packages, record_view
from finoa.connectors.generic_archive.client import ArchiveRefused
from finoa.services.context import Hub
from finoa.store.tables import archive_access_log, audit_events

KEY = "archive-test-key"


@pytest.fixture
def archive_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A fresh archive per test: the same 档号 under another package id is refused there."""
    directory = tmp_path_factory.mktemp("archive-sim")
    port = free_port()
    server = start(
        "archive",
        ["sim", "archive", "--port", str(port), "--api-key", KEY, "--data-dir", str(directory)],
        {},
        "/_sim/stats",
        port,
        directory,
    )
    yield server
    server.stop()


def test_a_package_is_pushed_and_its_status_recorded_and_a_bad_one_refused(
    hub: Hub, archive: Archive, posted: Callable[..., str], archive_sim: Server, tmp_path: Path
) -> None:
    posted(f"EXT-{tmp_path.name[-8:]}")
    (archive_no,) = build_packages(hub.db, archive).built
    with httpx.Client(timeout=30) as http:
        client = client_from(archive_sim.url, KEY, http)
        summary = push_packages(hub.db, archive, client, PackageQuery(archive_no=archive_no))
        assert summary.pushed == [archive_no] and summary.refused == []
        again = push_packages(hub.db, archive, client, PackageQuery(archive_no=archive_no))
        assert again.pushed == [] and again.already == 1
        assert client.status(archive_no).status == "archived"

        with hub.db.engine.connect() as conn:
            (log,) = conn.execute(
                select(archive_access_log).where(archive_access_log.c.action == "pushed")
            ).all()
            audited = conn.execute(
                select(audit_events.c.action).where(
                    audit_events.c.action == "archive.package_pushed"
                )
            ).all()
        assert log.detail["status"] == "archived" and log.detail["check_passed"] is True
        assert len(audited) == 1

        record = _record(hub, archive_no)
        files = [(f.as_dict(), archive.store.read(f.sha256)) for f in record.files]
        first = files[0][0]["name"]
        wrong = [(files[0][0], files[0][1] + b"x"), *files[1:]]
        with pytest.raises(ArchiveRefused, match=f"{first}: content does not match") as bad:
            client.push("other-1", "X-1", record_view(record), wrong)
        assert bad.value.status == 422 and bad.value.file == first
        missing = [({**files[-1][0]}, b""), *files[:-1]]
        last = files[-1][0]["name"]
        with pytest.raises(ArchiveRefused, match=f"{last}: the file's content is missing") as gone:
            client.push("other-2", "X-2", record_view(record), missing)
        assert gone.value.file == last
        with pytest.raises(httpx.HTTPStatusError):
            client.status("X-1")  # nothing of a refused package was kept
        unauthorised = client_from(archive_sim.url, "wrong-key", http)
        with pytest.raises(ArchiveRefused) as denied:
            unauthorised.push("other-3", "X-3", record_view(record), files)
        assert denied.value.status == 401


def _record(hub: Hub, archive_no: str):  # type: ignore[no-untyped-def]
    from finoa.archive.service import find_packages

    with hub.db.engine.connect() as conn:
        (record,) = find_packages(conn, PackageQuery(archive_no=archive_no))
    return record
