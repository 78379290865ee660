"""The HTTP app: routes, middleware, problems and OpenAPI over the service's parts.

The parts themselves are built by the composition root (service.bootstrap) in the
app's lifespan and handed to the controllers by Litestar's dependency injection:
`runtime`, `commands`, `queries` (on the primary), `reads` (the router that picks
the server for a client's read), `store` and `ledger`.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from projections import PROJECTION_NAMES
from service import bootstrap
from service.audit.ledger import Ledger
from service.bootstrap import Runtime
from service.config import Settings
from service.dashboard import dashboard_route_handlers
from service.http.allow import allow_every_method
from service.http.agreements import AgreementController
from service.http.audit import AuditController
from service.http.auth import authentication_middleware
from service.http.docs import DOCS_ROUTES
from service.http.events import EventsController
from service.http.health import HealthController
from service.http.ledger import LedgerController
from service.http.receipts import ReceiptController
from service.http.tiles import PublicLedgerController
from service.http.metrics import PROMETHEUS, MetricsController, worker_metrics, worker_stopped
from service.http.issues import IssueController
from service.http.negotiations import NegotiationController
from service.http.openapi import FinishedJsonRenderPlugin
from service.http.problems import MAX_BODY_BYTES, ProblemError, handle_exception
from service.http.request_id import RESPONSE_HEADER, request_id_middleware
from service.http.streams import StreamRegistry
from service.http.tracing import plugins as tracing_plugins
from service.read.queries import Queries
from service.read.replicas import ReadRouter
from service.store.event_store import EventStore
from service.write.commands import CommandService

API_VERSION = "0.1.0"


def _runtime(state: State) -> Runtime:
    return state.runtime


def _commands(state: State) -> CommandService:
    return state.runtime.commands


def _queries(state: State) -> Queries:
    return state.runtime.queries


def _reads(state: State) -> ReadRouter:
    return state.runtime.reads


def _store(state: State) -> EventStore:
    return state.runtime.store


def _ledger(state: State) -> Ledger:
    return state.runtime.ledger


DEPENDENCIES = {
    name: Provide(provider, sync_to_thread=False)
    for name, provider in {
        "runtime": _runtime,
        "commands": _commands,
        "queries": _queries,
        "reads": _reads,
        "store": _store,
        "ledger": _ledger,
    }.items()
}


async def refuse_unnamed_parameters(request: Request) -> None:
    """A query parameter without a name (`?=x`) names nothing a route reads: it is a
    client mistake, refused rather than silently ignored (schemathesis found it)."""
    if "" in request.query_params:
        raise ProblemError(400, "invalid-parameter", "A parameter is not valid",
                           "a query parameter has no name (`=value` without a name before it)")


def create_app(settings: Settings) -> Litestar:
    """The app for a database URL already known (settings.database_url must be set)."""
    if not settings.database_url:
        raise ValueError("create_app needs settings.database_url; `parley serve` starts the embedded server")

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # An API process runs the projection runner (where several run, one holds
        # each projection and the others stand by) and a sealer (a round's advisory
        # lock lets one seal at a time) unless they run in processes of their own
        # (PARLEY_BACKGROUND=elsewhere: `parley serve --workers N`); every API
        # process runs the idempotency purge.
        here = settings.background_here
        async with bootstrap.running(
            settings, ensure_admin_key=True, projections=PROJECTION_NAMES if here else (), seal=here, purge=True,
            receipts=True,
        ) as runtime:
            app.state.runtime = runtime
            worker_metrics(runtime)
            # Open event streams, capped over every process on the database.
            app.state.streams = StreamRegistry(runtime.pool, settings.database_url)
            try:
                yield
            finally:
                await app.state.streams.close()
                worker_stopped()

    return Litestar(
        route_handlers=[
            HealthController,
            NegotiationController,
            IssueController,
            AgreementController,
            EventsController,
            AuditController,
            LedgerController,
            ReceiptController,
            PublicLedgerController,
            MetricsController,
            *DOCS_ROUTES,
            *dashboard_route_handlers(),
        ],
        lifespan=[lifespan],
        dependencies=DEPENDENCIES,
        # The metrics middleware answers the refusals of authentication (its next
        # layer) itself: the request id's middleware need not wrap it again.
        middleware=[
            DefineMiddleware(request_id_middleware, refusals_answered_inside=True),
            PROMETHEUS.middleware,
            authentication_middleware(settings.auth_failure_limit),
        ],
        response_headers=[RESPONSE_HEADER],
        exception_handlers={Exception: handle_exception},
        before_send=[allow_every_method],
        before_request=refuse_unnamed_parameters,
        request_max_body_size=MAX_BODY_BYTES,
        # Logging is the process's (service.logs, PARLEY_LOG_FORMAT), not Litestar's own.
        logging_config=None,
        # Litestar's OpenTelemetry plugin when tracing is on (service.tracing), else none.
        plugins=tracing_plugins(),
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


def _freeze_what_started() -> None:
    """Once a served process has started (its modules, app, routes, schema, pools and
    caches built), everything alive moves to the permanent generation: none of it is
    garbage, and every full collection would otherwise scan it all again (56-118 ms
    pauses under bench.lag's load, 2026-12-06, each collecting nothing: the lag's p99).
    Only in served processes (`parley serve`, uvicorn's factory): what is frozen is
    never collected as a cycle, which a test run creating many apps must not pay."""
    gc.collect()
    gc.freeze()
    # And a full collection at most a tenth as often (gen 0 and 1 as Python's
    # defaults): what reaches the oldest generation is mostly caches that live on.
    gc.set_threshold(700, 10, 100)


def create_app_from_env() -> Litestar:
    """Factory for uvicorn workers: configuration comes from the environment (each
    worker is a fresh process: its logging is set up here too)."""
    from service import logs, tracing

    logs.configure()
    tracing.configure()
    app = create_app(Settings.from_env())
    app.on_startup.append(_freeze_what_started)
    return app
