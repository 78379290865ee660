"""Connecting to PostgreSQL: the configured server, or the embedded default."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from service.config import Settings
from service import embedded

# What a server that went away (stopped, restarting, unreachable) makes a query raise;
# a hot standby also cancels a query that conflicts with replay with a serialization
# failure. A read that meets one may be answered by another server.
CONNECTION_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.OperatorInterventionError,
    asyncpg.SerializationError,
)


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool of the service's connections (built by service.bootstrap only)."""
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        # Statements are short; a stuck one should fail rather than hold a worker.
        command_timeout=60,
        server_settings={"application_name": "parley"},
    )


async def connect(url: str, application_name: str = "parley") -> asyncpg.Connection:
    """One connection of its own: migrations, and the sessions that must not share a
    pool's (a projection holder's advisory lock, a LISTEN that wakes waiters)."""
    return await asyncpg.connect(url, server_settings={"application_name": application_name})


async def close_connection(conn: asyncpg.Connection, timeout: float = 2.0) -> None:
    """Close a connection of its own, terminating it if the server does not answer."""
    try:
        await asyncio.wait_for(conn.close(), timeout=timeout)
    except BaseException:
        conn.terminate()
        raise


@contextlib.contextmanager
def database_settings(settings: Settings) -> Iterator[Settings]:
    """The settings with the database to use: PARLEY_DATABASE_URL as given, or an
    embedded server started (and, on exit, left) under PARLEY_DATA_DIR, whose
    service URL is the application role's, whose sealer URL is the sealer role's
    and whose owner URL is the superuser's."""
    if settings.database_url:
        yield settings
        return
    server = embedded.start(settings.data_dir)
    try:
        yield settings.with_overrides(
            database_url=server.app_url,
            owner_database_url=server.url,
            app_role=embedded.APP_ROLE,
            sealer_database_url=server.sealer_url,
            sealer_role=embedded.SEALER_ROLE,
        )
    finally:
        server.stop()
