"""The event store against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import msgspec
import pytest

from service.store.event_store import (
    START,
    ZERO_HASH,
    Checkpoint,
    ConcurrencyError,
    EventIdReused,
    EventStore,
    PendingEvent,
    chain_hash,
)
from tests.out_of_order_writers import race
from tests.pending_events import NOW, pending

# -- appending -------------------------------------------------------------------


async def test_append_assigns_versions_and_reads_back_the_stream(store: EventStore) -> None:
    stream = uuid.uuid4()
    result = await store.append([pending(stream, 1), pending(stream, 2)])
    assert [e.version for e in result.events] == [1, 2]
    more = await store.append([pending(stream, 3)], {stream: 2})
    assert more.events[0].version == 3
    read = await store.read_stream(stream)
    assert [msgspec.json.decode(e.data)["n"] for e in read] == [1, 2, 3]
    assert await store.stream_version(stream) == 3
    assert [e.version for e in await store.read_stream(stream, 2, 2)] == [2]


async def test_one_append_spans_several_streams_atomically(store: EventStore) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    await store.append([pending(b)])
    with pytest.raises(ConcurrencyError):
        await store.append([pending(a), pending(b)], {a: 0, b: 0})
    assert await store.stream_version(a) == 0, "the batch failed on b, so nothing went to a"
    result = await store.append([pending(a), pending(b)], {a: 0, b: 1})
    assert [(e.stream_id, e.version) for e in result.events] == [(a, 1), (b, 2)]


async def test_expected_version_mismatch_carries_the_current_version(store: EventStore) -> None:
    stream = uuid.uuid4()
    await store.append([pending(stream), pending(stream)])
    with pytest.raises(ConcurrencyError) as raised:
        await store.append([pending(stream)], {stream: 1})
    assert (raised.value.expected, raised.value.actual) == (1, 2)


async def test_two_concurrent_appends_at_the_same_version_one_wins(store: EventStore) -> None:
    stream = uuid.uuid4()
    await store.append([pending(stream)])
    outcomes = await asyncio.gather(
        store.append([pending(stream, 1)], {stream: 1}),
        store.append([pending(stream, 2)], {stream: 1}),
        return_exceptions=True,
    )
    wins = [o for o in outcomes if not isinstance(o, BaseException)]
    losses = [o for o in outcomes if isinstance(o, ConcurrencyError)]
    assert len(wins) == 1 and len(losses) == 1, outcomes
    assert losses[0].actual == 2
    assert await store.stream_version(stream) == 2


# -- idempotency -----------------------------------------------------------------


async def test_retrying_a_batch_writes_nothing_and_returns_the_original(store: EventStore) -> None:
    stream = uuid.uuid4()
    batch = [pending(stream, 1), pending(stream, 2)]
    first = await store.append(batch)
    retry = await store.append(batch)
    assert retry.replayed and not first.replayed
    assert [e.position for e in retry.events] == [e.position for e in first.events]
    assert [e.hash for e in retry.events] == [e.hash for e in first.events]
    assert len(await store.read_log(START)) == 2


async def test_a_retry_recorded_later_is_still_the_same_event(store: EventStore) -> None:
    stream = uuid.uuid4()
    event = pending(stream)
    await store.append([event])
    later = msgspec.structs.replace(event, recorded_at=NOW + dt.timedelta(minutes=5))
    assert (await store.append([later])).replayed


async def test_a_used_id_with_other_content_is_refused(store: EventStore) -> None:
    stream = uuid.uuid4()
    event = pending(stream, 1)
    await store.append([event])
    other = msgspec.structs.replace(event, data=msgspec.json.encode({"n": 2}))
    with pytest.raises(EventIdReused):
        await store.append([other])
    assert await store.stream_version(stream) == 1


async def test_concurrent_retries_of_one_batch_write_it_once(store: EventStore) -> None:
    stream = uuid.uuid4()
    batch = [pending(stream, 1)]
    results = await asyncio.gather(*(store.append(batch) for _ in range(8)))
    assert len({r.events[0].position for r in results}) == 1
    assert await store.stream_version(stream) == 1


# -- append-only -----------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET type = 'changed'",
        "DELETE FROM events",
        "TRUNCATE events",
        "TRUNCATE events CASCADE",
    ],
)
async def test_postgres_itself_refuses_to_change_events(store: EventStore, statement: str) -> None:
    await store.append([pending(uuid.uuid4())])
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await store.pool.execute(statement)
    assert len(await store.read_log(START)) == 1


# -- hash chain ------------------------------------------------------------------


def recompute_chain(events: list) -> list[bytes]:
    hashes, previous = [], ZERO_HASH
    for event in events:
        previous = chain_hash(previous, event.body)
        hashes.append(previous)
    return hashes


async def test_the_hash_chain_recomputed_from_stored_rows_matches(store: EventStore) -> None:
    stream = uuid.uuid4()
    for n in range(5):
        await store.append([pending(stream, n)])
    events = await store.read_stream(stream)
    assert recompute_chain(events) == [e.hash for e in events]
    assert msgspec.json.decode(events[2].body)["version"] == 3, "the body is the whole event"


async def test_a_row_altered_behind_the_trigger_is_detected(store: EventStore) -> None:
    stream = uuid.uuid4()
    for n in range(4):
        await store.append([pending(stream, n)])
    async with store.pool.acquire() as conn:
        # A superuser can switch the trigger off; the chain still tells.
        async with conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
            await conn.execute(
                "UPDATE events SET body = convert_to(replace(convert_from(body, 'UTF8'), '\"n\":2', '\"n\":9'), 'UTF8')"
                " WHERE stream_id = $1 AND version = 3",
                stream,
            )
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_no_update_delete")
    events = await store.read_stream(stream)
    recomputed = recompute_chain(events)
    mismatches = [e.version for e, h in zip(events, recomputed) if h != e.hash]
    assert mismatches[0] == 3


# -- the global log --------------------------------------------------------------


async def test_the_log_reads_in_commit_order_after_a_checkpoint(store: EventStore) -> None:
    streams = [uuid.uuid4() for _ in range(3)]
    for s in streams:
        await store.append([pending(s), pending(s)])
    everything = await store.read_log(START)
    assert len(everything) == 6
    rest = await store.read_log(everything[1].checkpoint)
    assert [e.id for e in rest] == [e.id for e in everything[2:]]
    assert await store.head() == everything[-1].checkpoint
    only = await store.read_log(START, stream_id=streams[1])
    assert {e.stream_id for e in only} == {streams[1]}


async def test_a_late_commit_with_a_lower_position_is_not_skipped(store: EventStore) -> None:
    """The case a naive `position > last` reader gets wrong, made deterministic."""
    slow_stream, fast_stream = uuid.uuid4(), uuid.uuid4()
    async with store.pool.acquire() as slow:
        transaction = slow.transaction()
        await transaction.start()
        early = await store.append([pending(slow_stream)], conn=slow)  # lower position, not committed
        late = await store.append([pending(fast_stream)])  # higher position, committed
        assert late.events[0].position > early.events[0].position

        naive = await store.pool.fetch("SELECT position FROM events WHERE position > 0 ORDER BY position")
        naive_last = naive[-1]["position"]
        gap_free = await store.read_log(START)
        assert gap_free == [], "the running transaction holds the reader back instead of letting it skip"
        await transaction.commit()

    naive_after = await store.pool.fetch("SELECT position FROM events WHERE position > $1", naive_last)
    assert naive_after == [], "the naive reader has passed the late event for good"
    assert [e.stream_id for e in await store.read_log(START)] == [slow_stream, fast_stream]


async def test_sixteen_writers_committing_out_of_order_lose_nothing(store: EventStore) -> None:
    """16 writers hold their transactions open for random times so that commits
    interleave out of position order. A naive reader misses events; the store's
    reader delivers each exactly once, in the same order on every read."""
    outcome = await race(store, store)

    assert len(outcome.written) == 16 * 12
    # How many late commits a naive `position > last` reader skipped depends on
    # scheduling, so it is reported, not asserted; the deterministic case is
    # test_a_late_commit_with_a_lower_position_is_not_skipped.
    print(f"naive reader saw {len(outcome.naive_seen)} of {len(outcome.written)}")
    assert len(outcome.store_seen) == len(set(outcome.store_seen)) == len(outcome.written)
    assert set(outcome.store_seen) == outcome.written
    again = [e.id for e in await store.read_log(START, 10_000)]
    assert again == outcome.store_seen, "the same order on every read"


async def test_subscribe_wakes_on_new_events_and_resumes_from_a_checkpoint(store: EventStore) -> None:
    stream = uuid.uuid4()
    first = await store.append([pending(stream, 1)])
    stop = asyncio.Event()
    received: list[uuid.UUID] = []

    async def consume() -> None:
        async for batch in store.subscribe(first.checkpoint, poll_interval=3600, stop=stop):
            received.extend(e.id for e in batch)
            if len(received) >= 2:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    second = await store.append([pending(stream, 2)])
    third = await store.append([pending(stream, 3)])
    # poll_interval is an hour, so only the notification can wake it; the 60 s
    # ceiling only bounds a failure.
    await asyncio.wait_for(task, 60)
    assert received == [second.events[0].id, third.events[0].id]


def test_checkpoint_tokens_round_trip() -> None:
    assert Checkpoint.parse(Checkpoint(7, 42).token()) == Checkpoint(7, 42)
    with pytest.raises(ValueError):
        Checkpoint.parse("7;DROP TABLE events")
