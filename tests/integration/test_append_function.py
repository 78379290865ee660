"""The append in one statement (migration 0060, service.store.append): the bodies
and hashes the server finishes are the canonical ones, a lost race leaves nothing
behind, and a caller's transaction survives it in a savepoint."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import msgspec
import pytest

from service.store.canonical import ImportClaim
from service.store.event_store import (
    ZERO_HASH,
    ConcurrencyError,
    EventStore,
    PendingEvent,
    canonical_body,
    chain_hash,
)
from tests.pending_events import pending


def full_event(stream: uuid.UUID, negotiation: uuid.UUID, n: int) -> PendingEvent:
    return PendingEvent(
        id=uuid.uuid4(),
        stream_id=stream,
        stream_type="issue",
        type="position.stated",
        schema_version=2,
        data=msgspec.json.encode({"n": n, "recorded_at": "x", "version": 0, "text": 'quote " \\ é \u2028'}),
        occurred_on="2022-03-10",
        recorded_by="recorder ü",
        negotiation_id=negotiation,
        claimed_by=("RU", "UA"),
        source={"outlet": "RBC", "version": 3, "recorded_at": None},
        note='a "note"\n',
        correlation_id=uuid.uuid4(),
        causation_id=uuid.uuid4(),
        import_claim=ImportClaim(hash="ab" * 32, recorded_at="2022-03-10T00:00:00.000000Z", recorded_by="elsewhere"),
    )


async def test_bodies_and_hashes_are_the_canonical_ones_across_streams(store: EventStore) -> None:
    negotiation, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first = [full_event(a, negotiation, 0)]
    await store.append(first)
    batch = [full_event(b, negotiation, 1), full_event(a, negotiation, 2), full_event(b, negotiation, 3)]
    result = await store.append(batch, {a: 1, b: 0})
    assert [(e.stream_id, e.version) for e in result.events] == [(b, 1), (a, 2), (b, 2)]
    for stream, written in ((a, [first[0], batch[1]]), (b, [batch[0], batch[2]])):
        stored = await store.read_stream(stream)
        previous = ZERO_HASH
        for asked, event in zip(written, stored, strict=True):
            assert event.id == asked.id
            assert event.body == canonical_body(asked, event.version, event.recorded_at)
            assert event.hash == chain_hash(previous, event.body)
            previous = event.hash
        head = await store.pool.fetchrow("SELECT version, head_hash FROM streams WHERE stream_id = $1", stream)
        assert (head["version"], head["head_hash"]) == (stored[-1].version, stored[-1].hash)


async def test_a_lost_race_on_a_new_stream_creates_no_head(store: EventStore) -> None:
    fresh = uuid.uuid4()
    with pytest.raises(ConcurrencyError) as raised:
        await store.append([pending(fresh)], {fresh: 3})
    assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (fresh, 3, 0)
    assert await store.pool.fetchval("SELECT count(*) FROM streams WHERE stream_id = $1", fresh) == 0
    assert await store.pool.fetchval("SELECT count(*) FROM events") == 0


async def test_a_callers_transaction_survives_a_lost_race_in_a_savepoint(store: EventStore) -> None:
    stream = uuid.uuid4()
    await store.append([pending(stream)])
    async with store.pool.acquire() as conn, conn.transaction():
        with pytest.raises(ConcurrencyError):
            async with conn.transaction():
                await store.append([pending(stream, 1)], {stream: 0}, conn=conn, wake_readers=False)
        result = await store.append([pending(stream, 2)], {stream: 1}, conn=conn, wake_readers=False)
        assert [e.version for e in result.events] == [2]
    assert await store.stream_version(stream) == 2


async def test_a_failed_insert_leaves_the_heads_where_they_were(store: EventStore) -> None:
    stream = uuid.uuid4()
    await store.append([pending(stream)])
    bad = msgspec.structs.replace(pending(stream), occurred_on=None)  # type: ignore[arg-type]
    with pytest.raises(asyncpg.PostgresError):
        await store.append([bad])
    assert await store.stream_version(stream) == 1
    assert [e.version for e in (await store.append([pending(stream)])).events] == [2]


async def test_a_batch_over_streams_with_and_without_heads_moves_every_head(store: EventStore) -> None:
    # A stream without a head between two with one, then one with a head between
    # two without: every head is taken in stream id order and moved.
    low, middle, high = sorted(uuid.uuid4() for _ in range(3))
    await store.append([pending(low), pending(high)])
    result = await store.append([pending(high, 1), pending(middle, 2), pending(low, 3)], {low: 1, middle: 0, high: 1})
    assert [(e.stream_id, e.version) for e in result.events] == [(high, 2), (middle, 1), (low, 2)]
    below, above = uuid.UUID(int=low.int - 1), uuid.UUID(int=high.int + 1)
    result = await store.append([pending(above), pending(middle, 4), pending(below)], {below: 0, middle: 1, above: 0})
    assert [(e.stream_id, e.version) for e in result.events] == [(above, 1), (middle, 2), (below, 1)]
    for stream, version in ((low, 2), (middle, 2), (high, 2), (below, 1), (above, 1)):
        stored = await store.read_stream(stream)
        assert [e.version for e in stored] == list(range(1, version + 1))
        previous = ZERO_HASH
        for event in stored:
            assert event.hash == chain_hash(previous, event.body)
            previous = event.hash
        head = await store.pool.fetchrow("SELECT version, head_hash FROM streams WHERE stream_id = $1", stream)
        assert (head["version"], head["head_hash"]) == (version, previous)


async def test_concurrent_batches_over_new_and_existing_streams_do_not_deadlock(store: EventStore) -> None:
    # Heads are locked in stream id order even when some are created on the way:
    # writers racing to create the same new streams among existing ones all succeed
    # (a lock taken out of order would surface as a DeadlockDetectedError).
    existing = sorted(uuid.uuid4() for _ in range(4))
    await store.append([pending(s) for s in existing])
    written: dict[uuid.UUID, int] = {s: 1 for s in existing}

    async def writer(streams: list[uuid.UUID]) -> None:
        await store.append([pending(s) for s in streams])

    for _ in range(6):
        new = [uuid.uuid4() for _ in range(4)]
        every = sorted(existing + new)
        batches = [every[i::2] for i in range(2)] + [every, every[::-1], new + existing[:2], existing[2:] + new[:2]]
        await asyncio.wait_for(asyncio.gather(*(writer(b) for b in batches)), timeout=60)
        for batch in batches:
            for stream in batch:
                written[stream] = written.get(stream, 0) + 1
    for stream, count in written.items():
        assert await store.stream_version(stream) == count
