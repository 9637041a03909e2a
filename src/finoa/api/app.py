"""The FastAPI application: routes under /api/v1, problem+json errors, the dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import FastAPI

from finoa import __version__
from finoa.api import problems
from finoa.api.deps import TOKEN_URL
from finoa.api.limits import BodySizeLimit, FailedAttempts, NoStore
from finoa.api.routes import (
    approval_patterns,
    auth,
    budgets,
    claims,
    operations,
    periods,
    policy,
    processes,
    soap_claims,
    tasks,
    webhooks,
)
from finoa.archive import api as archive_api
from finoa.archive import api_use as archive_use_api
from finoa.config import Settings
from finoa.connectors.instances import close_inbound_handlers, load_instances
from finoa.invoices import api as invoices_api
from finoa.runtime import delivery_duties, ensure_chart, new_http_client, prepare_database
from finoa.services.context import Hub


def create_app(
    settings: Settings,
    *,
    dispatch: bool = True,
    migrate: bool = True,
    failed_attempts: FailedAttempts | None = None,
) -> FastAPI:
    """The hub's HTTP application. `dispatch` runs the outbox dispatcher in-process;
    `failed_attempts` counts failed sign-ins at the token endpoint (a fresh one by default).
    The connector instances are read first: a config error names the instance and field."""
    instances = load_instances(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await asyncio.to_thread(prepare_database, settings)
        if settings.is_sqlite:
            # One writer at a time anyway: a few threads keep the queue short and spare the
            # GIL from dozens of threads waiting on the same lock.
            anyio.to_thread.current_default_thread_limiter().total_tokens = 8
        hub = Hub.create(settings, pool_size=20, instances=instances)
        await asyncio.to_thread(ensure_chart, hub)
        app.state.hub = hub
        http = new_http_client(settings)
        async with contextlib.AsyncExitStack() as duties:
            app.state.dispatcher = None
            if dispatch:
                # the outbox, the sweeper, timers and the archive keeper; stopped first
                app.state.dispatcher = await duties.enter_async_context(delivery_duties(hub, http))
            yield
        await http.aclose()
        await close_inbound_handlers(instances)
        await hub.commands.close()
        hub.close()

    app = FastAPI(
        title="finoa",
        version=__version__,
        description="The open finance ⇄ OA integration hub (财务-OA 一体化集成中台).",
        lifespan=lifespan,
    )
    request_models = {
        model
        for instance in instances.instances.values()
        if instance.inbound is not None
        and (model := type(instance.inbound).request_model) is not None
    }
    problems.install(app, models=tuple(sorted(request_models, key=lambda m: m.__name__)))
    app.state.failed_attempts = failed_attempts or FailedAttempts()
    api = "/api/v1"
    app.include_router(auth.router, prefix=api)
    app.include_router(claims.router, prefix=api)
    app.include_router(tasks.router, prefix=api)
    app.include_router(webhooks.router_for(instances), prefix=api)
    app.include_router(operations.router, prefix=api)
    app.include_router(operations.health_router)
    app.include_router(periods.router, prefix=api)
    app.include_router(soap_claims.router)
    app.include_router(budgets.router, prefix=api)
    app.include_router(policy.router, prefix=api)
    app.include_router(invoices_api.router, prefix=api)
    app.include_router(processes.router, prefix=api)
    app.include_router(archive_api.router, prefix=api)
    app.include_router(approval_patterns.router, prefix=api)
    app.include_router(archive_use_api.router, prefix=api)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        uploads=invoices_api.UPLOAD_PATH,
        upload_max_bytes=settings.invoice_max_bytes + invoices_api.MULTIPART_OVERHEAD,
    )
    app.add_middleware(NoStore, path=TOKEN_URL)
    return app
