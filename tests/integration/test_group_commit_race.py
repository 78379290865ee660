"""A group commit (service.write.group_commit) that loses the race for its stream's
head to another process decides its whole batch again on fresh state: every
request is answered with its own event, at the version after the other
process's, none written twice, and the cache holds the fold of the committed
stream."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec

from service.write.requests import RecordRequest
from tests.integration.test_aggregate_turns import (
    command,
    committed_fold,
    long_stream_and_another_process,
    position,
    record,
)


async def test_a_batch_that_loses_a_race_is_decided_again_whole(pool: asyncpg.Pool) -> None:
    store, cache, service, other, negotiation_id, stream_id = await long_stream_and_another_process(pool)
    original = store.append
    raced: list[int] = []

    async def overtaken(events, expected=None, **kwargs):
        if not raced:
            raced.append(await record(other, negotiation_id, 99))
        return await original(events, expected, **kwargs)

    store.append = overtaken  # type: ignore[method-assign]
    turn = cache.turns()
    assert await turn.enter(stream_id)  # the three queue while the turn is held
    try:
        tasks = [asyncio.create_task(service.record(RecordRequest(negotiation_id, [command(position(n))], "test")))
                 for n in (1, 2, 3)]
        for _ in range(200):
            if service.groups.waiting(stream_id) == 2:
                break
            await asyncio.sleep(0.01)
        batches = service.groups.batches
        turn.release()
        outcomes = await asyncio.gather(*tasks)
    finally:
        store.append = original  # type: ignore[method-assign]
    assert service.groups.batches == batches + 1, "the three were not one batch"
    answered = [msgspec.json.decode(o.body)["events"] for o in outcomes]
    assert [[(e["version"], e["data"]["summary"]) for e in events] for events in answered] == [[(4, "statement 1")], [(5, "statement 2")], [(6, "statement 3")]]
    assert raced == [3] and service.stats.lost_races == 1
    stored = await store.read_stream(stream_id)
    assert [e.version for e in stored] == [1, 2, 3, 4, 5, 6]
    assert [str(e.id) for e in stored[3:]] == [events[0]["id"] for events in answered]
    version, aggregate = cache.take(stream_id)
    assert (version, aggregate.state.view()) == await committed_fold(store, stream_id)
