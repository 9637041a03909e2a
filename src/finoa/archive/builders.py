"""Archive packages built in processes of their own (`archive_workers`).

Rendering a voucher's PDF and hashing its files is CPU work in Python; done in the hub's own
process it holds the interpreter lock and the hub answers requests late while a round runs.
So the packages are built by a pool of worker processes, started once (`spawn`: no copy of
the hub's threads, event loop or open connections) and kept for the next round. Each worker
opens the database (to read) and the archive store itself and builds a batch of vouchers at
a time (`service.make_batch`: the files built, stored and checked); the batch comes back as
its catalog rows and 四性 reports, which the caller records in one transaction
(`service.record_batch`) — in the hub through its group commit, so a worker never holds the
database's write lock (a low-priority process holding it would stall the hub's writes).
Batches run side by side; the builder stays safe beside another process building the same
vouchers, since a package already recorded is left alone.

Workers started by the hub run at a lower priority (`HUB_NICENESS`): when the machine is
busy, requests come first and the archive catches up after. A worker that dies breaks the
pool; the round that saw it reports the error, and the next round starts a fresh pool, so
a voucher is built by a later round (its queue row stays until its package is recorded).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from finoa.archive.service import (
    Archive,
    BuildSummary,
    BuiltBatch,
    Write,
    batches,
    build_packages,
    make_batch,
    pending_vouchers,
    record_batch,
    writer,
)
from finoa.config import Settings
from finoa.store.uow import Database

HUB_NICENESS = 19  # the hub's archive workers run at the lowest priority: requests come first
Progress = Callable[[int, int], None]  # (vouchers done, vouchers in all)

_worker: tuple[Database, Archive] | None = None  # in a worker process: its database and archive


def _start_worker(settings: Settings, niceness: int) -> None:
    global _worker
    from finoa.archive.pdf import FontMissing, pdf_font
    from finoa.services.context import open_database

    if niceness:
        os.nice(niceness)
    _worker = (open_database(settings, pool_size=1), Archive.from_settings(settings))
    with contextlib.suppress(FontMissing):  # else the first package reports it
        pdf_font(settings.archive_font)  # loaded once per worker, before the first voucher


def _build_in_worker(voucher_ids: list[str]) -> BuiltBatch:
    assert _worker is not None, "the worker was not started"
    db, archive = _worker
    return make_batch(db, archive, voucher_ids)


def _ready(_: int) -> int:
    return os.getpid()


class PackageBuilders:
    """A pool of `workers` processes building archive packages; close it when done."""

    def __init__(self, settings: Settings, *, workers: int, niceness: int = 0) -> None:
        if workers < 1:
            raise ValueError("archive_workers: at least 1 for a pool of builders")
        self.settings = settings
        self.workers = workers
        self.niceness = niceness
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.settings, self.niceness),
            )
        return self._pool

    def warm(self) -> set[int]:
        """Start every worker now (rather than at the first build); their process ids."""
        pool = self._executor()
        list(pool.map(_ready, range(self.workers * 4)))
        return set(pool._processes)  # the pool starts one per task until all are up

    def build(
        self,
        db: Database,
        period: str | None = None,
        *,
        pending: list[str] | None = None,
        progress: Progress | None = None,
        write: Write | None = None,
    ) -> BuildSummary:
        """Build every missing package (of `period`, or of `pending`, the vouchers already
        found), batches side by side in the workers; each batch recorded here as it comes
        back, through `write` (the hub's group commit; by default a transaction of its own
        on `db`)."""
        write = write or writer(db)
        if pending is None:
            with db.engine.connect() as conn:
                pending = pending_vouchers(conn, period)
        summary = BuildSummary()
        if not pending:
            return summary
        parts = batches(pending)
        done = 0
        try:
            for part, batch in zip(
                parts, self._executor().map(_build_in_worker, parts), strict=True
            ):
                record_batch(batch, write, summary)
                done += len(part)
                if progress is not None:
                    progress(done, len(pending))
        except BrokenProcessPool:
            self.close()  # a worker died: the next round starts a fresh pool
            raise
        return summary

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def build_archive(
    settings: Settings,
    db: Database,
    archive: Archive,
    period: str | None = None,
    *,
    progress: Progress | None = None,
) -> BuildSummary:
    """Build every missing package once, from a command (`finoa archive build`, the demo):
    a few batches are built right here, more by `archive_builders` processes side by side."""
    with db.engine.connect() as conn:
        pending = pending_vouchers(conn, period)
    workers = min(settings.archive_builders, len(batches(pending)))
    if workers <= 1:
        return build_packages(db, archive, pending=pending, progress=progress)
    builders = PackageBuilders(settings, workers=workers)
    try:
        return builders.build(db, pending=pending, progress=progress)
    finally:
        builders.close()
