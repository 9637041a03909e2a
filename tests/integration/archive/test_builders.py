"""Archive packages built by worker processes: many batches side by side, each voucher once
even beside another builder, and a worker that dies costs a round, never a package; while a
batch renders, the builder holds no SQLite snapshot (the WAL checkpoints fully)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from finoa.archive import package as package_module
from finoa.archive.builders import PackageBuilders, build_archive
from finoa.archive.keeper import KeeperRound, keep_archive
from finoa.archive.service import BATCH, Archive, BuildSummary, build_packages
from finoa.services.context import Hub
from finoa.store.tables import archive_packages, archive_queue

VOUCHERS = 2 * BATCH + 7  # three batches


def count(hub: Hub, table: object) -> int:
    with hub.db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def post_many(posted: Callable[..., str], prefix: str, n: int) -> list[str]:
    return [posted(f"{prefix}-{i}", amount=f"{100 + i}.00") for i in range(n)]


def test_batches_are_built_side_by_side_each_voucher_once(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    vouchers = post_many(posted, "OA-POOL", VOUCHERS)
    settings = dataclasses.replace(hub.settings, archive_workers=2)
    seen: list[tuple[int, int]] = []
    summary = build_archive(settings, hub.db, archive, progress=lambda d, t: seen.append((d, t)))
    assert (len(summary.built), summary.checks_passed, summary.checks_failed) == (
        VOUCHERS,
        VOUCHERS,
        0,
    )
    assert len(set(summary.built)) == VOUCHERS
    assert seen[-1] == (VOUCHERS, VOUCHERS) and len(seen) == 3  # one step per batch
    with hub.db.engine.connect() as conn:
        archived = set(conn.execute(select(archive_packages.c.voucher_id)).scalars())
    assert archived == set(vouchers) and count(hub, archive_queue) == 0
    assert build_archive(settings, hub.db, archive).built == []  # nothing left to build


def test_two_builders_at_once_archive_each_voucher_once(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    post_many(posted, "OA-RACE", VOUCHERS)
    builders = PackageBuilders(hub.settings, workers=2)
    here: list[BuildSummary] = []
    other = threading.Thread(target=lambda: here.append(build_packages(hub.db, archive)))
    try:
        other.start()
        pooled = builders.build(hub.db)
        other.join()
    finally:
        builders.close()
    (inline,) = here
    built = pooled.built + inline.built
    assert len(built) == len(set(built)) == VOUCHERS  # every package built once, by one of them
    assert count(hub, archive_packages) == VOUCHERS and count(hub, archive_queue) == 0


def test_a_worker_that_dies_costs_a_round_and_the_next_round_builds(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    post_many(posted, "OA-KILL", 3)
    builders = PackageBuilders(hub.settings, workers=1)
    try:
        assert len(builders.build(hub.db).built) == 3
        pool = builders._pool
        assert pool is not None
        for pid in list(pool._processes):  # the worker is killed between rounds
            os.kill(pid, signal.SIGKILL)
        post_many(posted, "OA-KILL-2", 2)
        failed = None
        try:
            builders.build(hub.db)
        except Exception as exc:  # the round that meets the dead worker reports it
            failed = exc
        assert type(failed).__name__ == "BrokenProcessPool"
        assert count(hub, archive_queue) == 2  # nothing lost: both still queued
        assert len(builders.build(hub.db).built) == 2  # a fresh pool builds them
    finally:
        builders.close()
    assert count(hub, archive_packages) == 5 and count(hub, archive_queue) == 0


def test_the_keeper_records_its_workers_batches_through_the_hubs_group_commit(
    hub: Hub, archive: Archive, posted: Callable[..., str]
) -> None:
    post_many(posted, "OA-KEEP", 3)
    builders = PackageBuilders(hub.settings, workers=1)

    async def one_round() -> KeeperRound:
        loop = asyncio.get_running_loop()
        return await asyncio.to_thread(keep_archive, hub, archive, builders, loop)

    try:
        before = hub.commands.figures()["commands"]
        done = asyncio.run(one_round())
    finally:
        builders.close()
    assert len(done.built) == 3 and done.checks_failed == 0
    assert hub.commands.figures()["commands"] == before + 1  # one batch, one group-commit command
    assert count(hub, archive_packages) == 3 and count(hub, archive_queue) == 0


def test_the_hubs_builders_run_at_the_lowest_priority(hub: Hub) -> None:
    from finoa.archive.builders import HUB_NICENESS

    builders = PackageBuilders(hub.settings, workers=2, niceness=HUB_NICENESS)
    try:
        workers = builders.warm()
        assert len(workers) == 2 and os.getpid() not in workers  # processes of their own
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in workers} == {
            min(ours + HUB_NICENESS, 19)
        }
    finally:
        builders.close()


def wal_probe(path: str) -> tuple[tuple[int, int, int], tuple[int, int, int], int]:
    """From a connection of its own that never waits: a write (frames in the WAL), then
    PRAGMA wal_checkpoint PASSIVE (busy, log frames, frames checkpointed) and TRUNCATE, and
    the WAL file's size after."""
    probe = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        probe.execute("CREATE TABLE IF NOT EXISTS wal_probe (n INTEGER)")
        probe.execute("INSERT INTO wal_probe VALUES (1)")
        passive = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        truncate = probe.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        probe.close()
    return tuple(passive), tuple(truncate), os.path.getsize(f"{path}-wal")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rendering_a_batch_holds_no_snapshot_so_the_wal_checkpoints_fully(
    hub: Hub, archive: Archive, posted: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the builder renders the second voucher of a batch, another connection's
    checkpoint moves every WAL frame and truncates the file: the builder holds no read
    transaction then. The control: the same probe while a reader holds one fails."""
    post_many(posted, "WAL", 2)
    path = hub.db.engine.url.database
    assert path is not None
    rendering, go_on = threading.Event(), threading.Event()
    renders: list[int] = []
    real = package_module.voucher_pdf

    def render(*args: object, **kwargs: object) -> bytes:
        renders.append(1)
        if len(renders) == 2:  # between the vouchers: the first is built, the second read
            rendering.set()
            assert go_on.wait(60), "the test never let the render go on"
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(package_module, "voucher_pdf", render)
    with ThreadPoolExecutor(1) as pool:
        built = pool.submit(build_packages, hub.db, archive)
        try:
            assert rendering.wait(60), "the builder never reached the second voucher"
            during = wal_probe(path)
        finally:
            go_on.set()
        summary = built.result(timeout=120)
    assert len(summary.built) == 2 and len(renders) == 2
    (busy, frames, moved), truncated, wal_size = during
    assert busy == 0 and frames > 0 and moved == frames  # every frame checkpointed
    assert truncated[0] == 0 and wal_size == 0

    # The control: a reader holding a snapshot from before the write keeps the checkpoint
    # from moving the new frames, and TRUNCATE is busy.
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM archive_packages").fetchone()
        (busy, frames, moved), truncated, _ = wal_probe(path)
    finally:
        reader.close()
    assert busy == 0 and moved < frames and truncated[0] == 1
