"""Archive packages built by worker processes: many batches side by side, each voucher once
even beside another builder, and a worker that dies costs a round, never a package."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
from collections.abc import Callable

from sqlalchemy import func, select

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
