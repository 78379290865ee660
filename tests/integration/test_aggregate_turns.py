"""Concurrent commands on one long issue stream in one process (service.write.
aggregate_cache.Turns): they take turns on the cached fold instead of refolding
the stream and racing for its head; a request that loses a race to another
process puts back what it had not evolved, so its retry reads only newer events.
Every state left in the cache is the fold of the committed stream."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg

from domain.commands import OpenNegotiation, parse_command
from domain.issue import Issue, issue_stream_id
from projections.records import recorded_from_stored
from service.store.event_store import EventStore
from service.write.aggregate_cache import AggregateCache
from service.write.commands import CommandService
from service.write.requests import OpenRequest, RecordRequest

import msgspec


def command(body: dict):
    return parse_command(json.dumps(body))


def position(n: int) -> dict:
    return {"type": "position.stated", "occurred_on": "2022-03-16", "issue": "grain", "party": "RU",
            "stance": "supports", "summary": f"statement {n}"}  # fmt: skip


async def opened_issue(service: CommandService) -> uuid.UUID:
    opening = msgspec.convert(
        {"title": "Grain talks", "slug": f"grain-{uuid.uuid4().hex[:6]}", "occurred_on": "2022-03-01",
         "parties": [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}]},
        OpenNegotiation,
    )  # fmt: skip
    outcome = await service.open(OpenRequest(opening, "test"))
    negotiation_id = uuid.UUID(msgspec.json.decode(outcome.body)["negotiation_id"])
    raised = {"type": "issue.raised", "occurred_on": "2022-03-01", "issue": "grain", "title": "Grain",
              "category": "humanitarian"}  # fmt: skip
    await service.record(RecordRequest(negotiation_id, [command(raised)], "test"))
    return negotiation_id


async def record(service: CommandService, negotiation_id: uuid.UUID, n: int) -> int:
    outcome = await service.record(RecordRequest(negotiation_id, [command(position(n))], "test"))
    return msgspec.json.decode(outcome.body)["events"][0]["version"]


async def committed_fold(store: EventStore, stream_id: uuid.UUID) -> tuple[int, object]:
    events = await store.read_stream(stream_id)
    return events[-1].version, Issue.from_events([recorded_from_stored(e) for e in events]).state.view()


async def test_concurrent_commands_on_a_long_stream_take_turns(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    cache = AggregateCache(turns_from=2)  # every stream "long" once cached past version 2
    service = CommandService(store, cache)
    negotiation_id = await opened_issue(service)
    stream_id = issue_stream_id(negotiation_id, "grain")
    await record(service, negotiation_id, 0)
    assert cache.is_long(stream_id)
    versions = await asyncio.gather(*(record(service, negotiation_id, n) for n in range(1, 9)))
    assert sorted(versions) == list(range(3, 11))
    assert service.stats.lost_races == 0, "requests of one process on one long stream never race"
    version, aggregate = cache.take(stream_id)
    assert (version, aggregate.state.view()) == await committed_fold(store, stream_id)


async def test_concurrent_commands_on_a_short_stream_still_race(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    service = CommandService(store, AggregateCache())  # default: turns from 500 events
    negotiation_id = await opened_issue(service)
    await record(service, negotiation_id, 0)
    versions = await asyncio.gather(*(record(service, negotiation_id, n) for n in range(1, 9)))
    assert sorted(versions) == list(range(3, 11))
    assert service.stats.lost_races > 0, "the test did not meet concurrency"


async def long_stream_and_another_process(pool: asyncpg.Pool):
    """A service whose cache holds the issue stream as long (at version 2), and
    another process's service (its own cache) on the same database."""
    store = EventStore(pool)
    cache = AggregateCache(turns_from=2)
    service = CommandService(store, cache)
    other = CommandService(EventStore(pool), AggregateCache())  # another process: its own cache
    negotiation_id = await opened_issue(service)
    stream_id = issue_stream_id(negotiation_id, "grain")
    await record(service, negotiation_id, 0)
    return store, cache, service, other, negotiation_id, stream_id


async def test_a_race_lost_to_another_process_keeps_the_cached_fold(pool: asyncpg.Pool) -> None:
    store, cache, service, other, negotiation_id, stream_id = await long_stream_and_another_process(pool)
    # The other process appends while ours is between reading the stream and appending.
    original = store.append
    raced = []

    async def overtaken(events, expected=None, **kwargs):
        if not raced and any(e.stream_id == stream_id for e in events):
            raced.append(await record(other, negotiation_id, 99))
        return await original(events, expected, **kwargs)

    store.append = overtaken  # type: ignore[method-assign]
    try:
        assert await record(service, negotiation_id, 1) == 4
    finally:
        store.append = original  # type: ignore[method-assign]
    assert raced == [3] and service.stats.lost_races == 1
    version, aggregate = cache.take(stream_id)
    assert (version, aggregate.state.view()) == await committed_fold(store, stream_id)
