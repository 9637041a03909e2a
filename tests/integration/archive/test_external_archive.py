"""The external archive as a connector instance (`generic-archive`, configured through
archive_external_url) against its simulator (a real process), on both databases: each built
package queues `archive.push` in the same transaction, the dispatcher delivers it and the
archive's answer is recorded; an incomplete package dead-letters naming the file, its refusal
logged (`push_refused`) and audited, and is sent again by a replay; a lost answer is looked
up by 档号 instead of being pushed twice; with the external archive as the record (mode
instead) its status is what `finoa archive check` and `search` count."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from support import invoices as build
from support.cli import finoa as run_finoa
from support.processes import Server, free_port, start

from finoa.archive.external import queue_pushes
from finoa.archive.service import Archive, PackageQuery, build_packages
from finoa.config import load_settings
from finoa.messaging.outbox import push_key
from finoa.runtime import build_dispatcher, new_http_client
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.services.operations import replay_dead_letters
from finoa.store.tables import archive_access_log, audit_events, outbox

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


def external_settings(db_url: str, data_dir: Path, sim: Server, mode: str = "beside") -> Any:
    return load_settings(
        data_dir=data_dir,
        database_url=db_url,
        company_tax_id=build.COMPANY_TAX_ID,
        archive_external_url=sim.url,
        archive_external_api_key=KEY,
        archive_external_mode=mode,
        connector_timeout_seconds=1,
        retry_base_seconds=0.05,
        retry_cap_seconds=0.2,
    )


@pytest.fixture
def hub(db_url: str, tmp_path: Path, archive_sim: Server) -> Iterator[Hub]:
    """The archive's hub (conftest's `posted` uses it), with the simulator as its external
    archive instance `generic-archive`."""
    hub = Hub.create(external_settings(db_url, tmp_path / "data", archive_sim))
    load_masterdata(hub.db)
    yield hub
    hub.close()


def deliver(hub: Hub, max_seconds: float = 20) -> dict[str, Any]:
    """Run the hub's dispatcher until the outbox is idle; its figures."""

    async def run() -> dict[str, Any]:
        http = new_http_client(hub.settings)
        try:
            dispatcher = build_dispatcher(hub, http)
            await dispatcher.run_until_idle(max_seconds)
            return dispatcher.figures()
        finally:
            await http.aclose()

    return asyncio.run(run())


def pushes(hub: Hub) -> list[Any]:
    with hub.db.engine.connect() as conn:
        return conn.execute(
            select(outbox).where(outbox.c.action == "archive.push").order_by(outbox.c.id)
        ).all()


def access(hub: Hub, action: str) -> list[Any]:
    with hub.db.engine.connect() as conn:
        return conn.execute(
            select(archive_access_log).where(archive_access_log.c.action == action)
        ).all()


def audited(hub: Hub, action: str) -> list[Any]:
    with hub.db.engine.connect() as conn:
        return conn.execute(select(audit_events).where(audit_events.c.action == action)).all()


def sim_stats(sim: Server) -> dict[str, Any]:
    return dict(httpx.get(f"{sim.url}/_sim/stats", timeout=5).json())


def test_each_built_package_is_pushed_through_the_outbox_and_its_answer_recorded(
    hub: Hub, archive: Archive, posted: Callable[..., str], archive_sim: Server, tmp_path: Path
) -> None:
    assert archive.push_to == "generic-archive" and not archive.external_record
    posted(f"EXT-{tmp_path.name[-8:]}")
    (archive_no,) = build_packages(hub.db, archive).built
    (row,) = pushes(hub)  # queued with the catalog rows
    assert row.status == "pending" and row.destination == "generic-archive"
    assert row.idempotency_key == push_key(row.aggregate_id)
    assert row.payload["archive_no"] == archive_no and row.payload["files"]
    assert all("content_base64" not in f and f["sha256"] for f in row.payload["files"])

    figures = deliver(hub)
    assert figures["delivered"] >= 1 and figures["dead_lettered"] == 0
    (row,) = pushes(hub)
    assert row.status == "done"
    (log,) = access(hub, "pushed")
    assert log.package_id == row.aggregate_id and log.detail["archive_no"] == archive_no
    assert log.detail["status"] == "archived" and log.detail["check_passed"] is True
    assert {i["item"] for i in log.detail["items"]} >= {"authenticity", "integrity"}
    assert len(audited(hub, "archive.package_pushed")) == 1
    assert sim_stats(archive_sim)["packages"] == 1

    # `finoa archive push` queues only packages never queued: nothing here.
    again = queue_pushes(hub.db, archive, PackageQuery(archive_no=archive_no))
    assert again.queued == [] and again.already == 1
    assert len(pushes(hub)) == 1


def test_an_incomplete_package_dead_letters_naming_the_file_and_a_replay_sends_it(
    hub: Hub, archive: Archive, posted: Callable[..., str], archive_sim: Server, tmp_path: Path
) -> None:
    posted(f"EXT-{tmp_path.name[-8:]}")
    (archive_no,) = build_packages(hub.db, archive).built
    (row,) = pushes(hub)
    lost = row.payload["files"][-1]
    content = archive.store.read(lost["sha256"])
    assert archive.store.remove(lost["sha256"])  # type: ignore[attr-defined]

    figures = deliver(hub)
    assert figures["dead_lettered"] == 1
    (row,) = pushes(hub)
    assert row.status == "dead" and row.error_class == "permanent"
    assert f"{lost['name']}: the file's content is missing" in row.last_error
    assert f"(file {lost['name']})" in row.last_error and archive_no in row.last_error
    (letter,) = audited(hub, "outbox.dead_lettered")
    assert letter.data["action"] == "archive.push" and lost["name"] in letter.data["reason"]
    assert access(hub, "pushed") == [] and sim_stats(archive_sim)["packages"] == 0
    (refusal,) = access(hub, "push_refused")  # the refusal is logged against the package
    assert refusal.package_id == row.aggregate_id and refusal.actor == "archive:external"
    assert refusal.detail["file"] == lost["name"] and refusal.detail["error_class"] == "permanent"
    assert f"{lost['name']}: the file's content is missing" in refusal.detail["reason"]
    (noted,) = audited(hub, "archive.package_push_refused")
    assert noted.object_id == row.aggregate_id and noted.data["file"] == lost["name"]

    archive.store.put_many([content])  # the file restored, the dead letter sent again
    assert replay_dead_letters(hub.db, [row.id], actor="t") == [row.id]
    deliver(hub)
    (row,) = pushes(hub)
    assert row.status == "done"
    (log,) = access(hub, "pushed")
    assert log.detail["status"] == "archived"
    assert sim_stats(archive_sim)["packages"] == 1


def test_a_lost_answer_is_looked_up_by_archive_no_and_the_package_is_pushed_once(
    hub: Hub, archive: Archive, posted: Callable[..., str], archive_sim: Server, tmp_path: Path
) -> None:
    posted(f"EXT-{tmp_path.name[-8:]}")
    build_packages(hub.db, archive)
    # The first request is handled (the package kept) but its answer never arrives.
    httpx.post(f"{archive_sim.url}/_sim/faults", json={"drop_rate": 1.0, "count": 1}, timeout=5)

    figures = deliver(hub)
    assert figures["found_by_lookup"] == 1 and figures["dead_lettered"] == 0
    (row,) = pushes(hub)
    assert row.status == "done" and row.attempts == 2
    stats = sim_stats(archive_sim)
    assert stats["packages"] == 1 and stats["pushes"] == 1  # the retry was a lookup, no push
    (found,) = audited(hub, "outbox.found_by_lookup")
    assert found.data["action"] == "archive.push"
    (log,) = access(hub, "pushed")
    assert log.detail["status"] == "archived" and log.detail["check_passed"] is True


def test_with_the_external_archive_as_the_record_its_status_is_what_check_counts(
    db_url: str, tmp_path: Path, archive_sim: Server, posted: Callable[..., str], hub: Hub
) -> None:
    """Packages built before the instance existed are queued by `finoa archive push`; until
    the external archive answers, `finoa archive check` fails naming their status."""
    plain = Hub.create(replace(hub.settings, archive_external_url=""))
    try:
        posted(f"EXT-{tmp_path.name[-8:]}")
        (archive_no,) = build_packages(plain.db, Archive.from_settings(plain.settings)).built
    finally:
        plain.close()
    assert pushes(hub) == []
    config = tmp_path / "finoa.yaml"  # the command line reads the database from it
    config.write_text(f"database_url: {db_url}\n")
    env = {
        "FINOA_COMPANY_TAX_ID": build.COMPANY_TAX_ID,
        "FINOA_ARCHIVE_EXTERNAL_URL": archive_sim.url,
        "FINOA_ARCHIVE_EXTERNAL_API_KEY": KEY,
        "FINOA_ARCHIVE_EXTERNAL_MODE": "instead",
    }
    data_dir = tmp_path / "data"

    def finoa(*args: str) -> Any:
        return run_finoa(*args, "--config", str(config), data_dir=data_dir, env=env)

    queued = finoa("archive", "push")
    assert queued.returncode == 0, queued.stderr
    assert "queued 1 package(s) for generic-archive; 0 pushed or queued before" in queued.stdout
    check = finoa("archive", "check", "--json")
    assert check.returncode == 1, check.stderr
    report = json.loads(check.stdout)
    assert report["record"] == "generic-archive" and report["passed"] is False
    (package,) = report["packages"]
    assert package["passed"] is True and package["external"]["status"] == "queued"

    record_hub = Hub.create(replace(hub.settings, archive_external_mode="instead"))
    try:
        deliver(record_hub)
    finally:
        record_hub.close()
    check = finoa("archive", "check", "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    (package,) = json.loads(check.stdout)["packages"]
    assert package["external"]["status"] == "archived" and package["external"]["check_passed"]
    search = finoa("archive", "search", "--archive-no", archive_no, "--json")
    assert search.returncode == 0, search.stderr
    (found,) = json.loads(search.stdout)
    assert found["archive_no"] == archive_no and found["external"]["status"] == "archived"
    again = finoa("archive", "push")
    assert "queued 0 package(s) for generic-archive; 1 pushed or queued before" in again.stdout
