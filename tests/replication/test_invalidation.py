"""Cache invalidation across processes: LISTEN/NOTIFY on the primary of a real cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.invalidation import Invalidations, announce
from tests.replication.conftest import Replicated

# The product's promise: a change is seen by every process within a second.
PROMISE = 1.0


class Seen:
    """What one process's cache was told."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.resets = 0
        self.arrived = asyncio.Event()

    def changed(self, key: str) -> None:
        self.keys.append(key)
        self.arrived.set()

    def forget_all(self) -> None:
        self.resets += 1


@pytest.fixture
async def two_processes(replicated: Replicated) -> AsyncIterator[list[tuple[Invalidations, Seen]]]:
    made = []
    for _ in range(2):
        listener, seen = Invalidations(replicated.primary_url), Seen()
        listener.subscribe("api_key", seen.changed, seen.forget_all)
        await listener.start()
        made.append((listener, seen))
    try:
        yield made
    finally:
        for listener, _ in made:
            await listener.close()


async def test_an_announcement_reaches_every_process_within_a_second(
    two_processes: list[tuple[Invalidations, Seen]], replicated: Replicated
) -> None:
    assert all(listener.trustworthy for listener, _ in two_processes)
    conn = await asyncpg.connect(replicated.primary_url)
    try:
        async with conn.transaction():
            await announce(conn, "api_key", "k-123")
            await asyncio.sleep(0.1)
            assert not any(seen.keys for _, seen in two_processes), "nothing is announced before the commit"
        await asyncio.wait_for(
            asyncio.gather(*(seen.arrived.wait() for _, seen in two_processes)), PROMISE
        )
    finally:
        await conn.close()
    assert [seen.keys for _, seen in two_processes] == [["k-123"], ["k-123"]]


async def test_a_lost_listener_is_not_trusted_and_makes_caches_forget_when_back(
    two_processes: list[tuple[Invalidations, Seen]], replicated: Replicated
) -> None:
    listener, seen = two_processes[0]
    resets_before = seen.resets
    conn = await asyncpg.connect(replicated.primary_url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'parley-invalidations' AND datname = current_database()"
        )
        assert killed == 2
        deadline = asyncio.get_running_loop().time() + PROMISE
        while listener.trustworthy:
            assert asyncio.get_running_loop().time() < deadline, "a dead listener was still trusted after 1 s"
            await asyncio.sleep(0.01)
        deadline = asyncio.get_running_loop().time() + 10
        while not listener.trustworthy:
            assert asyncio.get_running_loop().time() < deadline, "the listener did not come back"
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    assert seen.resets > resets_before, "what was announced while it was away is unknown: everything is forgotten"


async def test_a_standby_cannot_be_listened_on(replicated: Replicated) -> None:
    listener = Invalidations(replicated.standby_url)
    await listener.start(ready_within=2)
    try:
        assert not listener.trustworthy, "LISTEN on a hot standby must not pass for listening"
    finally:
        await listener.close()
