"""The composition root: the one place where the service's parts are built and wired.

Everything that talks to PostgreSQL is built here, once per process, from the
settings: the pools (the primary's, and one per hot standby of
PARLEY_READ_DATABASE_URL), the event store, the aggregate cache, the command
service, the queries and the read router that picks a server for each read, the
ledger, the read-your-writes watch and, when this process runs
them, the projection runner, the sealer and the idempotency purge. The HTTP app
(`service.http.app`) hands these parts to its controllers through Litestar's
dependency injection; every `parley` command (`serve`, `demo`, `import`, `keys`,
`project`, `projections rebuild`, `audit export`) starts from `running()` or
`prepare_database()`. Nothing else creates a pool or a CommandService.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from service.audit.cosigning import Cosigner, parse_witnesses
from service.audit.ledger import Ledger, Sealer, ledger_key
from service.auth import KeyCache, Role, any_key, create_key, ensure_key, unused_name
from service.config import Settings
from service.db import connect, create_pool
from service.invalidation import Invalidations
from service.migrate import ensure_migrated, migrate
from service.operations import Components, ObservedCosigner, ObservedSealer
from service.projection.runner import Projector
from service.projection.watch import ProjectionWatch, projection_lag
from service.roles import grant_app_role, grant_sealer_role, may_seal
from service.read.queries import Queries
from service.read.replicas import ReadRouter
from service.read.served_views import ServedViews
from service.store.event_store import EventStore
from service.write.aggregate_cache import AggregateCache
from service.write.commands import CommandService
from service.write.idempotency import purge_periodically

log = logging.getLogger("parley.bootstrap")


@dataclass
class Runtime:
    """The running service's parts (built by `wire`, started by `running`)."""

    settings: Settings
    pool: asyncpg.Pool
    store: EventStore
    # Folded aggregates for the command path (a cache of the committed streams,
    # correct with any number of processes: see service.write.aggregate_cache).
    aggregates: AggregateCache
    commands: CommandService
    # Reads on the primary (the command path resolves refs here: never behind)...
    queries: Queries
    # ...and the router that answers client reads from a standby when it may.
    reads: ReadRouter
    ledger: Ledger
    projection_watch: ProjectionWatch
    # API keys answered from memory, a change seen within a second (service.auth).
    keys: KeyCache
    # What tells this process's caches that the primary changed something they hold
    # (started by `running`; without it the caches rely on their time limits).
    invalidations: Invalidations | None = None
    # The projection runner and the sealer when this process runs them.
    projector: Projector | None = None
    sealer: Sealer | None = None
    # Asks the configured witnesses to cosign the checkpoints (with the sealer).
    cosigner: Cosigner | None = None
    # Long-running background tasks started with the service (runner, sealer, purge).
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    # Last success and last error of the database probe, the sealer and each witness
    # (/health/ready, /metrics).
    components: Components = field(default_factory=Components.new)

    async def projection_lag(self) -> list[dict[str, Any]]:
        """Per projection: {name, events_behind, seconds_behind, updated_at} the
        visible head of the log (for /health/ready and metrics)."""
        return await projection_lag(self.pool)


def wire(settings: Settings, pool: asyncpg.Pool, standby_pools: Sequence[asyncpg.Pool] = ()) -> Runtime:
    """The parts over open pools, nothing started (no I/O here). `standby_pools`
    are the hot standbys of settings.read_database_urls, in the same order."""
    store = EventStore(pool)
    aggregates = AggregateCache()
    watch = ProjectionWatch(pool, settings.database_url or "")
    queries = Queries(store, watch, ServedViews(check_every=settings.view_cache_check))
    reads = ReadRouter(
        queries,
        [(url, Queries(EventStore(standby), watch)) for url, standby in zip(settings.read_database_urls, standby_pools)],
        token_wait=settings.read_token_wait,
        max_lag=settings.read_max_lag,
    )
    return Runtime(
        settings=settings,
        pool=pool,
        store=store,
        aggregates=aggregates,
        commands=CommandService(store, aggregates),
        queries=queries,
        reads=reads,
        ledger=Ledger(pool),
        projection_watch=watch,
        keys=KeyCache(pool, ttl=settings.key_cache_ttl),
    )


async def prepare(settings: Settings, *, first_admin_key: bool = False, admin_key: bool = True) -> str | None:
    """prepare_database for these settings: as the owner (and granting the
    application role) when the owner's URL is known."""
    url = settings.migration_url
    if not url:
        raise ValueError("the service needs settings.database_url")
    return await prepare_database(
        url,
        settings.admin_key if admin_key else None,
        first_admin_key=first_admin_key,
        app_role=settings.app_role if settings.owner_database_url else None,
        sealer_role=settings.sealer_role if settings.owner_database_url else None,
    )


async def prepare_database(
    url: str,
    admin_key: str | None,
    *,
    first_admin_key: bool = False,
    app_role: str | None = None,
    sealer_role: str | None = None,
) -> str | None:
    """Migrate and ensure PARLEY_ADMIN_KEY. With `first_admin_key`, a database with
    no key at all gets an admin key, returned to be shown once (`parley serve`).
    With `app_role` (`url` is then the owner's), migrations run and the role gets
    the application grants (service.roles), and `sealer_role` the sealer's;
    without, a current schema is only checked, so a role that may create nothing
    starts."""
    conn = await connect(url)
    try:
        if app_role or sealer_role:
            await migrate(conn)
            if app_role:
                await grant_app_role(conn, app_role)
            if sealer_role:
                await grant_sealer_role(conn, sealer_role)
        else:
            await ensure_migrated(conn)
        if admin_key:
            await ensure_key(conn, admin_key, "admin", Role.ADMIN)
            return None
        if first_admin_key and not await any_key(conn):
            # Every key revoked: a new admin key, under a name not used before.
            return await create_key(conn, await unused_name(conn, "admin"), Role.ADMIN)
        return None
    finally:
        await conn.close()


async def _start_sealing(settings: Settings, pool: asyncpg.Pool, runtime: Runtime) -> asyncpg.Pool | None:
    """The sealer and, with witnesses configured, the cosigner, as background tasks;
    the sealer's own pool (to close) when it has one.

    Every process may run a sealer; a round's advisory lock lets one seal at a
    time. Both write the ledger, which the application role may not: their own
    pool as the sealer role (service.roles), or the service's pool when that role
    may (the owner's, or a deployment with one role)."""
    witnesses = parse_witnesses(settings.witnesses)  # a wrong entry stops start-up with its sentence
    sealer_pool = None
    if settings.sealer_database_url:
        sealer_pool = await create_pool(settings.sealer_database_url, min_size=0, max_size=3)
    try:
        sealing = await may_seal(sealer_pool or pool)
    except (OSError, asyncpg.PostgresError) as error:  # a wrong sealer URL or password
        log.warning("this process does not seal: the sealer's database connection failed: %s", error)
        return sealer_pool
    if not sealing:
        log.warning(
            "this process does not seal: its database role may not write the ledger; "
            "set PARLEY_SEALER_DATABASE_URL to the sealer role's URL (docs/operations.md)"
        )
        return sealer_pool
    runtime.sealer = ObservedSealer(sealer_pool or pool, ledger_key(settings), state=runtime.components.sealer)
    runtime.background.append(asyncio.create_task(runtime.sealer.run(), name="parley-sealer"))
    if witnesses:
        runtime.cosigner = ObservedCosigner(sealer_pool or pool, witnesses, states=runtime.components.witnesses)
        runtime.background.append(asyncio.create_task(runtime.cosigner.run(), name="parley-cosigner"))
    return sealer_pool


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    *,
    pool_size: int = 10,
    migrate: bool = True,
    ensure_admin_key: bool = False,
    projections: Sequence[str] = (),
    seal: bool = False,
    purge: bool = False,
    receipts: bool = False,
) -> AsyncIterator[Runtime]:
    """The service over `settings.database_url` (which must be set): migrated
    first (unless `migrate=False`: a reading client such as `audit export`), with
    PARLEY_ADMIN_KEY ensured if asked (the API), and the projection runner for
    `projections`, the sealer and the idempotency purge running in this process
    as asked, and receipts signed for every recorded event if asked (the API).
    Everything is stopped and closed on exit."""
    url = settings.database_url
    if not url:
        raise ValueError("the service needs settings.database_url; `parley serve` starts the embedded server")
    if migrate:
        await prepare(settings, admin_key=ensure_admin_key)
    pool = await create_pool(url, min_size=1, max_size=pool_size)
    # min_size 0: a standby that is down when this process starts must not stop it;
    # reads go to the primary until it answers (service.read.replicas).
    standby_pools = [await create_pool(u, min_size=0, max_size=pool_size) for u in settings.read_database_urls]
    runtime = wire(settings, pool, standby_pools)
    if receipts:
        # Command responses carry each event's receipt, signed with the ledger key.
        runtime.commands.receipts = ledger_key(settings)
    runner_pool = sealer_pool = None
    runtime.invalidations = Invalidations(url)
    runtime.keys.attach(runtime.invalidations)
    if runtime.queries.views is not None:
        runtime.queries.views.attach(runtime.invalidations)
    try:
        await runtime.invalidations.start()
        if runtime.queries.views is not None:
            # The backstop for a commit whose notification was lost (service.read.served_views).
            checking = runtime.queries.views.check_checkpoint(pool)
            runtime.background.append(asyncio.create_task(checking, name="parley-served-views"))
        await runtime.reads.start()
        if projections:
            # Its own pool, so the runner never competes with requests for
            # connections; min_size 0: a database that is down at start is retried
            # by the runner's workers, not fatal. Each held projection also has its
            # dedicated connection (service.projection.runner).
            runner_pool = await create_pool(url, min_size=0, max_size=2 * len(projections) + 1)
            runtime.projector = Projector(url, projections, pool=runner_pool)
            runtime.background.append(runtime.projector.start())
        if seal:
            sealer_pool = await _start_sealing(settings, pool, runtime)
        if purge:
            runtime.background.append(asyncio.create_task(purge_periodically(pool), name="parley-idempotency-purge"))
        yield runtime
    finally:
        if runtime.projector is not None:
            await runtime.projector.stop()
        await runtime.projection_watch.close()
        for task in runtime.background:
            task.cancel()
        for task in runtime.background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await runtime.reads.close()
        await runtime.invalidations.close()
        if runner_pool is not None:
            await runner_pool.close()
        if sealer_pool is not None:
            await sealer_pool.close()
        for standby in standby_pools:
            await standby.close()
        await pool.close()
