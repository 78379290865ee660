"""Cache invalidation across processes: LISTEN/NOTIFY on the primary of a real cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.invalidation import Invalidations, announce
from tests.replication.conftest import REPLICATION_CEILING, Replicated

# The product promises a change is seen by every process within a second: these tests
# prove the mechanism (the announcement arrives, a lost listener is distrusted and
# makes its caches forget) and print how long it took; REPLICATION_CEILING only
# bounds a failure.


class Seen:
    """What one process's cache was told."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.resets = 0
        self.arrived = asyncio.Event()
        self.arrived_at = 0.0

    def changed(self, key: str) -> None:
        self.keys.append(key)
        self.arrived_at = asyncio.get_running_loop().time()
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


async def test_an_announcement_reaches_every_process_when_it_commits(
    two_processes: list[tuple[Invalidations, Seen]], replicated: Replicated
) -> None:
    assert all(listener.trustworthy for listener, _ in two_processes)
    conn = await asyncpg.connect(replicated.primary_url)
    try:
        async with conn.transaction():
            await announce(conn, "api_key", "k-123")
            await asyncio.sleep(0.1)  # a chance to arrive early, which it must not take
            assert not any(seen.keys for _, seen in two_processes), "nothing is announced before the commit"
            committing_at = asyncio.get_running_loop().time()  # COMMIT is sent as the block ends
        try:
            await asyncio.wait_for(
                asyncio.gather(*(seen.arrived.wait() for _, seen in two_processes)), REPLICATION_CEILING
            )
        except TimeoutError:
            raise AssertionError(
                f"the announcement reached {sum(seen.arrived.is_set() for _, seen in two_processes)} of 2 "
                f"processes within {REPLICATION_CEILING} s of its commit"
            ) from None
    finally:
        await conn.close()
    assert [seen.keys for _, seen in two_processes] == [["k-123"], ["k-123"]]
    took = [seen.arrived_at - committing_at for _, seen in two_processes]
    print(f"announcement arrived {took[0] * 1000:.1f} ms and {took[1] * 1000:.1f} ms after its COMMIT was sent")


async def test_a_lost_listener_is_not_trusted_and_makes_caches_forget_when_back(
    two_processes: list[tuple[Invalidations, Seen]], replicated: Replicated
) -> None:
    listener, seen = two_processes[0]
    resets_before = seen.resets
    loop = asyncio.get_running_loop()
    conn = await asyncpg.connect(replicated.primary_url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'parley-invalidations' AND datname = current_database()"
        )
        assert killed == 2
        killed_at = loop.time()
        deadline = killed_at + REPLICATION_CEILING
        while listener.trustworthy:
            assert loop.time() < deadline, f"a dead listener was still trusted {REPLICATION_CEILING} s on"
            await asyncio.sleep(0.01)
        distrusted_at = loop.time()
        while not listener.trustworthy:
            assert loop.time() < deadline, f"the listener did not come back within {REPLICATION_CEILING} s"
            await asyncio.sleep(0.01)
        back_at = loop.time()
    finally:
        await conn.close()
    assert seen.resets > resets_before, "what was announced while it was away is unknown: everything is forgotten"
    print(f"listener killed: distrusted after {(distrusted_at - killed_at) * 1000:.0f} ms, "
          f"listening again (caches told to forget) after {(back_at - killed_at) * 1000:.0f} ms")


async def test_a_standby_cannot_be_listened_on(replicated: Replicated) -> None:
    listener = Invalidations(replicated.standby_url)
    await listener.start(ready_within=2)
    try:
        assert not listener.trustworthy, "LISTEN on a hot standby must not pass for listening"
    finally:
        await listener.close()
