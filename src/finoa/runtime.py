"""Composition root: builds the hub, its connectors and its dispatcher for a process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx

from finoa.archive.external import record_package_pushed, record_push_refused
from finoa.archive.storage import FilesystemArchiveStore
from finoa.config import Settings
from finoa.connectors.base import KEEPALIVE_EXPIRY_SECONDS, ConnectorKind
from finoa.connectors.registry import build_connectors, destinations
from finoa.messaging.dispatcher import DeadHandler, Dispatcher, SuccessHandler
from finoa.messaging.outbox import ARCHIVE_PUSH
from finoa.messaging.retry import RetryPolicy
from finoa.services.context import Hub
from finoa.services.masterdata import chart_of_accounts, count_accounts, load_masterdata
from finoa.services.oa_approvals import CREATE_ACTION, record_approval_created
from finoa.services.sweeps import approval_sources, run_sweeper
from finoa.services.vouchers import record_voucher_posted
from finoa.store.db import upgrade


def prepare_database(settings: Settings) -> None:
    """Embedded default: migrate automatically and make sure the chart of accounts exists."""
    upgrade(settings.effective_database_url)


def ensure_chart(hub: Hub) -> None:
    if count_accounts(hub.db) < len(chart_of_accounts()):
        load_masterdata(hub.db, {})


def new_http_client(settings: Settings) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=64, max_keepalive_connections=64, keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS
    )
    return httpx.AsyncClient(timeout=settings.connector_timeout_seconds, limits=limits)


def default_worker_id(role: str) -> str:
    """This host and the process's role: stable across restarts, so that a restarted process
    recognises its own rows still in flight (set FINOA_WORKER_ID for several workers per host)."""
    return f"{socket.gethostname()}:{role}"


def build_dispatcher(hub: Hub, http: httpx.AsyncClient, *, role: str = "hub") -> Dispatcher:
    """The outbox dispatcher with a connector per instance: a voucher posted through any ERP
    instance (or the legacy `erp` destination) runs `record_voucher_posted`, a package pushed
    to an archive instance `record_package_pushed` (refused for good: `record_push_refused`)."""
    settings = hub.settings
    instances = hub.instances.instances
    posted: dict[tuple[str, str], SuccessHandler] = {
        (destination, "voucher.post"): record_voucher_posted
        for destination, name in destinations(hub.instances).items()
        if instances[name].kind is ConnectorKind.ERP
    }
    # OA-led approvals: the OA's instance id is kept against the claim.
    posted.update(
        {
            (destination, CREATE_ACTION): record_approval_created
            for destination, name in destinations(hub.instances).items()
            if instances[name].kind is ConnectorKind.OA
        }
    )
    # An external archive's answer (status, 四性检测 result) is kept against the package.
    posted.update(
        {
            (destination, ARCHIVE_PUSH): record_package_pushed
            for destination, name in destinations(hub.instances).items()
            if instances[name].kind is ConnectorKind.ARCHIVE
        }
    )
    # A push the archive refused for good is logged against the package too.
    refused: dict[tuple[str, str], DeadHandler] = {
        key: record_push_refused
        for key, handler in posted.items()
        if handler is record_package_pushed
    }
    # What connectors may ask for beside their config: an archive connector reads the files
    # of the packages it pushes from the archive store.
    resources = {"archive_store": FilesystemArchiveStore(settings.archive_path)}
    return Dispatcher(
        hub.db,
        build_connectors(hub.instances, http, resources),
        policy=RetryPolicy(
            base_seconds=settings.retry_base_seconds,
            cap_seconds=settings.retry_cap_seconds,
            max_attempts=settings.max_attempts or None,
            retry_for_seconds=settings.retry_for_seconds,
        ),
        handlers=posted,
        dead_handlers=refused,
        batch_size=settings.dispatcher_batch,
        concurrency=settings.dispatcher_concurrency,
        pipeline=settings.dispatcher_pipeline,
        lease_seconds=settings.lease_seconds,
        worker_id=settings.worker_id or default_worker_id(role),
    )


def start_sweeper(
    hub: Hub, dispatcher: Dispatcher, stop: asyncio.Event
) -> asyncio.Task[None] | None:
    """Look for approval tasks whose decision never arrived, now and then periodically."""
    sources = approval_sources(hub, dispatcher.connectors)
    if not sources:
        return None
    settings = hub.settings
    return asyncio.create_task(
        run_sweeper(
            hub,
            sources,
            older_than=timedelta(minutes=settings.stuck_task_minutes),
            every=settings.sweep_every_seconds,
            stop=stop,
        )
    )


def start_timers(hub: Hub, stop: asyncio.Event) -> asyncio.Task[None]:
    """Fire due approval reminders and escalations (every hub may: each timer fires once)."""
    from finoa.services.timers import run_timers, timer_owner

    owner = timer_owner(hub.settings.worker_id or default_worker_id("hub"))
    return asyncio.create_task(
        run_timers(hub, owner, every=hub.settings.timer_every_seconds, stop=stop)
    )


def start_archive_keeper(hub: Hub, stop: asyncio.Event) -> asyncio.Task[None] | None:
    """Archive posted vouchers, carry out approved destructions and end expired borrowings in
    the background (`archive_every_seconds`; 0: only through `finoa archive build`)."""
    if hub.settings.archive_every_seconds <= 0:
        return None
    from finoa.archive.keeper import run_keeper

    return asyncio.create_task(run_keeper(hub, every=hub.settings.archive_every_seconds, stop=stop))


@contextlib.asynccontextmanager
async def delivery_duties(
    hub: Hub, http: httpx.AsyncClient, *, role: str = "hub"
) -> AsyncIterator[Dispatcher]:
    """Everything that runs where the outbox is delivered: the dispatcher, the sweeper of lost
    decisions, reminders and escalations, and the archive keeper. `finoa serve` runs them
    beside the API; `finoa serve --no-dispatch` leaves them to `finoa worker`. All are stopped
    (each given 10 s to finish what it holds) when the block ends."""
    dispatcher = build_dispatcher(hub, http, role=role)
    runner = asyncio.create_task(dispatcher.run())
    stop = asyncio.Event()
    sweeper = start_sweeper(hub, dispatcher, stop)
    timers = start_timers(hub, stop)
    keeper = start_archive_keeper(hub, stop)
    try:
        yield dispatcher
    finally:
        stop.set()
        dispatcher.stop()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(runner, 10)
        for task in (sweeper, timers, keeper):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(task, 10)
