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

# How long the router fixture's token reads wait for the standby.
TOKEN_WAIT = 1.0


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
        Queries(primary, watch), [(replicated.standby_url, Queries(EventStore(standby), watch))],
        token_wait=TOKEN_WAIT,
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


async def test_with_replay_paused_token_reads_wait_for_the_standby_within_their_bound_then_fall_back(
    router: ReadRouter, primary: EventStore, replicated: Replicated
) -> None:
    """What the router did is read from who answered and where the standby's replay
    stood, not from a stopwatch around the call: a token read the standby cannot
    cover goes to the primary once its bound is spent; within its bound it waits, and
    the standby answers it once replay resumes. Untokened reads meanwhile are served
    stale, with their lag."""
    standby = await asyncpg.connect(replicated.standby_url)
    waiting: asyncio.Task[ReadTarget] | None = None

    async def standby_behind(token: ConsistencyToken) -> bool:
        return await standby.fetchval("SELECT pg_last_wal_replay_lsn() < $1::pg_lsn", token.lsn)

    try:
        await standby.execute("SELECT pg_wal_replay_pause()")
        token = await write(primary)
        target = await asyncio.wait_for(router.choose(token, log_read=True), REPLICATION_CEILING)
        assert target.source == PRIMARY
        assert await standby_behind(token), "the primary took over from a standby that could not answer"

        await until(lambda: router.lag(router.standbys[0]) > 0.2, "the paused standby's lag grows")
        stale = await router.choose()
        assert stale.source == STANDBY and stale.lag > 0.2
        assert not await stale.store.has_event_at(token.checkpoint), "served stale, and the lag says so"

        # The bound made an hour: the read can only be answered by waiting for the standby.
        router.token_wait = 3600
        waiting = asyncio.create_task(router.choose(token, log_read=True))
        await until(lambda: waiting.done() or router.standbys[0].waiters == 1, "the token read waits on the standby")
        assert not waiting.done(), f"answered at once by the {waiting.result().source}, without waiting"
        # Still waiting once the standby is three fixture bounds behind (the router's
        # own measure of its lag): the read keeps to the bound it was given.
        await until(lambda: waiting.done() or router.lag(router.standbys[0]) > 3 * TOKEN_WAIT, "the lag grows")
        assert not waiting.done(), f"gave up before its bound: answered by the {waiting.result().source}"
        assert await standby_behind(token), "the standby has not replayed the write it waits for"
        await standby.execute("SELECT pg_wal_replay_resume()")
        target = await asyncio.wait_for(waiting, REPLICATION_CEILING)
        assert target.source == STANDBY, "the standby it waited for answers it once replayed"
        assert not await standby_behind(token)
        assert await target.store.has_event_at(token.checkpoint)
        assert router.standbys[0].waiters == 0
    finally:
        if waiting is not None and not waiting.done():
            waiting.cancel()
        await standby.execute("SELECT pg_wal_replay_resume()")
        await standby.close()
    await caught_up(replicated.cluster)


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
