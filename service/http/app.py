"""The composition root: every part of the service is built and wired here, once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from service.config import Settings
from service.dashboard import dashboard_route_handlers
from service.db import create_pool
from service.auth import Role, ensure_key
from service.http.audit import AuditController
from service.http.auth import authentication_middleware
from service.http.docs import DOCS_ROUTES
from service.http.events import EventsController
from service.http.health import HealthController
from service.http.ledger import LedgerController
from service.http.metrics import Metrics, get_metrics, metrics_middleware
from service.http.negotiations import IssueController, NegotiationController
from service.http.openapi import FinishedJsonRenderPlugin
from service.http.problems import MAX_BODY_BYTES, handle_exception
from service.write.idempotency import purge_periodically
from service.audit.ledger import Sealer, ledger_key
from service.migrate import migrate
from service.projection.runner import ProjectionWatch, Projector
from service.bootstrap import Runtime
from service.store.event_store import EventStore

API_VERSION = "0.1.0"


def create_app(settings: Settings) -> Litestar:
    """The app for a database URL already known (settings.database_url must be set)."""
    if not settings.database_url:
        raise ValueError("create_app needs settings.database_url; `parley serve` starts the embedded server")

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url or "")
        async with pool.acquire() as conn:
            await migrate(conn)
            if settings.admin_key:
                await ensure_key(conn, settings.admin_key, "admin", Role.ADMIN)
        runtime = Runtime(settings=settings, pool=pool, store=EventStore(pool))
        # The projection runner runs in every API process; where several run, one
        # holds each projection and the others stand by (service.projection.runner).
        runtime.projector = Projector(settings.database_url or "")
        runtime.projection_watch = ProjectionWatch(pool, settings.database_url or "")
        runtime.background.append(runtime.projector.start())
        runtime.background.append(asyncio.create_task(purge_periodically(pool)))
        # Every process runs a sealer; a round's advisory lock lets one seal at a time.
        runtime.background.append(asyncio.create_task(Sealer(pool, ledger_key(settings)).run()))
        app.state.runtime = runtime
        app.state.metrics = Metrics()
        try:
            yield
        finally:
            await runtime.projector.stop()
            await runtime.projection_watch.close()
            for task in runtime.background:
                task.cancel()
            await pool.close()

    def provide_runtime(state: State) -> Runtime:
        return state.runtime

    return Litestar(
        route_handlers=[
            HealthController,
            NegotiationController,
            IssueController,
            EventsController,
            AuditController,
            LedgerController,
            get_metrics,
            *DOCS_ROUTES,
            *dashboard_route_handlers(),
        ],
        lifespan=[lifespan],
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        middleware=[metrics_middleware, authentication_middleware()],
        exception_handlers={Exception: handle_exception},
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="Parley",
            path="/schema",
            render_plugins=[FinishedJsonRenderPlugin()],
            version=API_VERSION,
            description="Event-sourced record of diplomatic negotiations.",
            security=[{"apiKey": []}],
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key: `Authorization: Bearer pk_...`",
                    )
                }
            ),
        ),
    )


def create_app_from_env() -> Litestar:
    """Factory for uvicorn workers: configuration comes from the environment."""
    return create_app(Settings.from_env())
