"""The archive's background round in the hub (`archive_every_seconds`): what happens after a
voucher is posted or an approval ends, without anyone running a command.

Each round builds the packages of newly posted vouchers (in worker processes of lower
priority, `archive/builders.py`, so that rendering PDFs never holds up the hub's requests;
idempotent, and safe beside another hub doing the same), carries out destruction runs whose
last approval arrived (through the OA webhook as well as the API), and ends borrowings past
their expiry.
A failing round is logged and the next one tries again: nothing it does is lost, since the
queue, the approved runs and the granted borrowings stay in the database until done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from finoa.archive.borrowing import expire_borrowings
from finoa.archive.builders import HUB_NICENESS, PackageBuilders
from finoa.archive.destruction import carry_out
from finoa.archive.service import Archive, Write, build_packages
from finoa.services.context import Hub
from finoa.store.tables import archive_destructions
from finoa.store.uow import UnitOfWork

log = logging.getLogger("finoa.archive")


@dataclass
class KeeperRound:
    """What one round did."""

    built: list[str] = field(default_factory=list)  # 档号 of the packages built
    checks_failed: int = 0
    destroyed: list[str] = field(default_factory=list)  # destruction runs carried out
    expired: list[str] = field(default_factory=list)  # borrowings ended


def keep_archive(
    hub: Hub,
    archive: Archive,
    builders: PackageBuilders | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> KeeperRound:
    """One round (in a thread): build (in `builders`' processes, recorded through the hub's
    group commit on `loop`; or all here), destroy what was approved, expire borrowings."""
    done = KeeperRound()
    if builders is not None and loop is not None:
        summary = builders.build(hub.db, write=group_commit_writer(hub, loop))
    else:
        summary = build_packages(hub.db, archive)
    done.built, done.checks_failed = summary.built, summary.checks_failed
    with hub.db.engine.connect() as conn:
        query = select(archive_destructions.c.id).where(archive_destructions.c.status == "approved")
        runs: list[str] = [str(row[0]) for row in conn.execute(query)]
    for destruction_id in runs:
        carry_out(hub, archive, destruction_id)
        done.destroyed.append(destruction_id)
    done.expired = expire_borrowings(hub.db)
    return done


def group_commit_writer(hub: Hub, loop: asyncio.AbstractEventLoop) -> Write:
    """Writes from a thread, through the hub's group commit on `loop`."""

    def write(command: Callable[[UnitOfWork], None]) -> None:
        asyncio.run_coroutine_threadsafe(hub.commands.run(command, actor="archive"), loop).result()

    return write


async def run_keeper(hub: Hub, *, every: float, stop: asyncio.Event) -> None:
    """A round now and every `every` seconds until `stop` is set."""
    archive = Archive.from_settings(hub.settings)
    builders = PackageBuilders(
        hub.settings, workers=hub.settings.archive_builders, niceness=HUB_NICENESS
    )
    try:
        await _rounds(hub, archive, builders, every, stop)
    finally:
        await asyncio.to_thread(builders.close)


async def _rounds(
    hub: Hub, archive: Archive, builders: PackageBuilders, every: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            loop = asyncio.get_running_loop()
            done = await asyncio.to_thread(keep_archive, hub, archive, builders, loop)
            if done.built or done.destroyed or done.expired:
                log.info(
                    "archive: %d package(s) built (%d failed 四性检测), %d destruction(s), "
                    "%d borrowing(s) expired",
                    len(done.built), done.checks_failed, len(done.destroyed), len(done.expired),
                )  # fmt: skip
        except Exception:  # a database outage or a missing font must not end the loop
            log.exception("archive: round failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
