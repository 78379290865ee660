"""`parley demo` records DESIGN's example through the command service, once."""

from __future__ import annotations

import asyncpg

from domain.example import example
from service.auth import Role, authenticate
from service.commands import CommandService
from service.demo import DEMO_RECORDER, _idempotency, issue_demo_key, record_example
from service.store import EventStore


async def count_events(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM events")


async def test_the_example_is_recorded_once_however_often_the_demo_runs(pool: asyncpg.Pool) -> None:
    first = await record_example(pool)
    assert not first.already_recorded
    assert first.slug == "russia-ukraine-2022"
    assert first.events_written == await count_events(pool) > len(example()[1])

    again = await record_example(pool)
    assert again.already_recorded and again.events_written == 0
    assert again.negotiation_id == first.negotiation_id
    assert await count_events(pool) == first.events_written
    recorders = await pool.fetch("SELECT DISTINCT recorded_by FROM events")
    assert [row["recorded_by"] for row in recorders] == [DEMO_RECORDER]


async def test_an_interrupted_demo_resumes_without_repeating_a_fact(pool: asyncpg.Pool, database_url: str) -> None:
    # The first run died right after opening the negotiation.
    opened, _ = example()
    await CommandService(EventStore(pool)).open(
        opened, recorded_by=DEMO_RECORDER, idempotency_key=_idempotency("open", opened)
    )
    resumed = await record_example(pool)
    assert not resumed.already_recorded
    types = await pool.fetch("SELECT type FROM events WHERE type = 'negotiation.opened'")
    assert len(types) == 1
    assert await count_events(pool) == 1 + resumed.events_written


async def test_each_run_gives_the_demo_key_a_new_secret_and_retires_the_old_one(pool: asyncpg.Pool) -> None:
    old = await issue_demo_key(pool, "demo-reader", Role.READER)
    new = await issue_demo_key(pool, "demo-reader", Role.READER)
    assert old != new
    assert await authenticate(pool, old) is None
    key = await authenticate(pool, new)
    assert key is not None and key.role is Role.READER and key.name == "demo-reader"
