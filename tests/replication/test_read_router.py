"""Choosing the server for a read, on a real primary and a real streaming standby."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.db import create_pool
from service.projection.watch import ProjectionWatch
from service.read.queries import Queries, UnknownWrite
from service.read.replicas import PRIMARY, STANDBY, ReadRouter, ReadTarget
from service.store.consistency import ConsistencyToken, committed_lsn
from service.store.event_store import Checkpoint, EventStore
from tests.pending_events import pending
from tests.replication.conftest import REPLICATION_CEILING, Replicated, caught_up


@pytest.fixture
async def primary(replicated: Replicated) -> AsyncIterator[EventStore]:
    pool = await create_pool(replicated.primary_url, min_size=1, max_size=8)
    try:
        yield EventStore(pool)
    finally:
        await pool.close()


@pytest.fixture
async def router(replicated: Replicated, primary: EventStore) -> AsyncIterator[ReadRouter]:
    """No projection runner here: the tests read the log (log_read=True)."""
    standby = await create_pool(replicated.standby_url, min_size=0, max_size=4)
    watch = ProjectionWatch(primary.pool, replicated.primary_url)
    made = ReadRouter(
        Queries(primary, watch), [(replicated.standby_url, Queries(EventStore(standby), watch))], token_wait=1.0
    )
    await made.start()
    try:
        await until(lambda: made.standbys[0].state.usable, "the standby is watched")
        yield made
    finally:
        await made.close()
        await watch.close()
        await standby.close()


async def until(condition, what: str, ceiling: float = REPLICATION_CEILING) -> None:
    deadline = asyncio.get_running_loop().time() + ceiling
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {ceiling} s: {what}")
        await asyncio.sleep(0.01)


async def write(store: EventStore) -> ConsistencyToken:
    result = await store.append([pending(uuid.uuid4())])
    return ConsistencyToken(result.checkpoint, await committed_lsn(store.pool))


async def test_untokened_reads_go_to_the_standby_and_say_it(router: ReadRouter) -> None:
    target = await router.choose()
    assert (target.source, target.name) == (STANDBY, "standby-1")
    assert target.lag == 0.0
    assert await target.pool.fetchval("SELECT pg_is_in_recovery()")


async def test_a_token_read_of_the_log_is_served_by_the_standby_once_replayed(
    router: ReadRouter, primary: EventStore
) -> None:
    for _ in range(20):
        token = await write(primary)
        target = await router.choose(token, log_read=True)
        assert target.source == STANDBY
        found = await target.store.read_log(Checkpoint(0, 0), 10_000)
        assert token.checkpoint in [e.checkpoint for e in found], "the standby holds the write it was chosen for"


async def test_with_replay_paused_token_reads_fall_back_and_untokened_reads_are_stale_with_their_lag(
    router: ReadRouter, primary: EventStore, replicated: Replicated
) -> None:
    standby = await asyncpg.connect(replicated.standby_url)
    try:
        await standby.execute("SELECT pg_wal_replay_pause()")
        token = await write(primary)
        started = asyncio.get_running_loop().time()
        target = await router.choose(token, log_read=True)
        waited = asyncio.get_running_loop().time() - started
        assert target.source == PRIMARY
        assert waited >= router.token_wait, "the standby was given its bound before the primary took over"

        await until(lambda: router.lag(router.standbys[0]) > 0.2, "the paused standby's lag grows")
        stale = await router.choose()
        assert stale.source == STANDBY and stale.lag > 0.2
        assert not await stale.store.has_event_at(token.checkpoint), "served stale, and the lag says so"
    finally:
        await standby.execute("SELECT pg_wal_replay_resume()")
        await standby.close()
    await caught_up(replicated.cluster)
    target = await router.choose(token, log_read=True)
    assert target.source == STANDBY


async def test_a_forged_token_is_refused_by_the_primary(router: ReadRouter) -> None:
    with pytest.raises(UnknownWrite):
        await router.choose(ConsistencyToken(Checkpoint(2**63, 1)))
    with pytest.raises(UnknownWrite):
        await router.choose(ConsistencyToken(Checkpoint(123456, 654321), 2**40))


async def test_a_stopped_standby_hands_its_reads_to_the_primary(
    router: ReadRouter, primary: EventStore, replicated: Replicated
) -> None:
    server = replicated.cluster.standbys[0]

    async def count(target: ReadTarget) -> int:
        return await target.pool.fetchval("SELECT count(*) FROM events")

    await write(primary)
    await caught_up(replicated.cluster)
    before, target = await router.run(count)
    assert target.source == STANDBY
    server.stop()
    try:
        # The first read after the stop may find the standby's pooled connection dead:
        # it is answered by the primary all the same, and so is every read after it.
        for _ in range(10):
            answered, target = await router.run(count)
            assert target.source == PRIMARY and answered == before
        assert not router.standbys[0].state.usable
    finally:
        server.start()
    await until(lambda: router.standbys[0].state.usable, "the restarted standby is used again")
    assert (await router.run(count))[1].source == STANDBY
