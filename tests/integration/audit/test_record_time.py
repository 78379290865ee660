"""Record time is PostgreSQL's clock: an insert that names any other time, or a
body that hashes another time than its row, is refused by the database itself."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import msgspec
import pytest

from service.store.event_store import EventStore

from .conftest import pending


async def test_the_store_records_postgres_time(store: EventStore, pool: asyncpg.Pool) -> None:
    before = await pool.fetchval("SELECT clock_timestamp()")
    [event] = (await store.append([pending(uuid.uuid4(), 1)])).events
    after = await pool.fetchval("SELECT clock_timestamp()")
    assert before <= event.recorded_at <= after
    assert msgspec.json.decode(event.body)["recorded_at"] == event.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize("offset", [dt.timedelta(days=-400), dt.timedelta(seconds=-5), dt.timedelta(hours=1)])
async def test_a_correctly_chained_event_with_another_time_is_refused(
    store: EventStore, pool: asyncpg.Pool, offset: dt.timedelta
) -> None:
    """The issue's finding: a chained INSERT with an old recorded_at passed every
    verifier. Now the row never gets in, whoever writes it."""
    stream = uuid.uuid4()
    await store.append([pending(stream, 1)])
    now = await pool.fetchval("SELECT now()")
    backdated = msgspec.structs.replace(pending(stream, 2), recorded_at=now + offset)
    with pytest.raises(asyncpg.CheckViolationError, match="not the time of this insert"):
        await store.append([backdated])
    assert await pool.fetchval("SELECT count(*) FROM events") == 1


async def test_a_body_that_hashes_another_time_than_its_row_is_refused(store: EventStore, pool: asyncpg.Pool) -> None:
    [event] = (await store.append([pending(uuid.uuid4(), 1)])).events
    old = msgspec.json.decode(event.body)["recorded_at"]
    forged_body = event.body.replace(old.encode(), b"2020-01-01T00:00:00.000000Z")
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(asyncpg.CheckViolationError, match="hashed body records"):
            await conn.execute(
                """
                INSERT INTO events (id, stream_id, stream_type, version, type, schema_version, body, data,
                    occurred_on, recorded_at, recorded_by, content_digest, hash)
                VALUES ($1, $2, 'issue', 2, 'issue.discussed', 1, $3, '{}', '2022-03-10', now(), 'x', $4, $4)
                """,
                uuid.uuid4(), event.stream_id, forged_body, bytes(32),
            )
