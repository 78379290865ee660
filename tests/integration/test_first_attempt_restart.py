"""A command's first attempt runs without a savepoint (service.write.transaction):
when it loses a race its transaction is rolled back and begun again. The request
stays one transaction that commits once, its Idempotency-Key claimed once (a
replay gets the same bytes), and the retry decides on the stream as the race
left it."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec

from domain.issue import issue_stream_id
from service.store.event_store import EventStore
from service.write import idempotency
from service.write.aggregate_cache import AggregateCache
from service.write.commands import CommandService
from service.write.requests import Idempotency, RecordRequest
from tests.integration.test_aggregate_turns import (
    command,
    opened_issue,
    position,
    record,
)


async def test_a_keyed_command_that_loses_its_first_race_commits_once_and_replays(
    pool: asyncpg.Pool, monkeypatch
) -> None:
    claims = []
    claim = idempotency.claim

    async def counted(conn, scope, key, digest):
        claims.append(key)
        return await claim(conn, scope, key, digest)

    monkeypatch.setattr(idempotency, "claim", counted)
    store = EventStore(pool)
    service = CommandService(store, AggregateCache())
    other = CommandService(EventStore(pool), AggregateCache())  # another process
    negotiation_id = await opened_issue(service)
    stream_id = issue_stream_id(negotiation_id, "grain")
    original = store.append
    raced = []

    async def overtaken(events, expected=None, **kwargs):
        if not raced:
            # Inside the first attempt's transaction, before its append: another
            # process records on the same issue and commits.
            raced.append(await record(other, negotiation_id, 99))
        return await original(events, expected, **kwargs)

    key = Idempotency("scope", f"key-{uuid.uuid4().hex}", b"digest")
    request = RecordRequest(negotiation_id, [command(position(1))], "test", idempotency=key)
    store.append = overtaken  # type: ignore[method-assign]
    try:
        first = await service.record(request)
    finally:
        store.append = original  # type: ignore[method-assign]
    assert raced == [2] and service.stats.lost_races == 1
    [event] = msgspec.json.decode(first.body)["events"]
    assert event["version"] == 3, "the retry decided on the stream as the other process left it"
    assert [e.version for e in await store.read_stream(stream_id)] == [1, 2, 3]
    replay = await service.record(request)
    assert replay.replayed and replay.body == first.body
    assert claims == [key.key, key.key], "claimed once by the request (restart included), once by the replay"
