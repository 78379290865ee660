"""The workload that shows why the log is read by (txid, position): 16 writers hold
their transactions open for random times, so commits land out of position order,
while a naive `position > last` reader and the store's gap-free reader follow the log.

Shared by the store's test on one server and the replication test on a standby
(writers on the primary, readers on the standby).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from service.store.event_store import START, EventStore
from tests.pending_events import pending


@dataclass(frozen=True)
class Race:
    written: set[uuid.UUID]
    naive_seen: list[uuid.UUID]
    store_seen: list[uuid.UUID]


async def race(
    writing: EventStore,
    reading: EventStore,
    *,
    writers: int = 16,
    per_writer: int = 12,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> Race:
    """Run the writers on `writing` and both readers on `reading` until every writer
    has finished and (`settle`) the readers' server has everything the writers wrote."""
    rng = random.Random(20220316)
    streams = [uuid.uuid4() for _ in range(40)]
    written: set[uuid.UUID] = set()
    done = asyncio.Event()

    async def writer(w: int) -> None:
        for i in range(per_writer):
            event = pending(rng.choice(streams), w * 100 + i)
            async with writing.pool.acquire() as conn:
                async with conn.transaction():
                    await writing.append([event], conn=conn)
                    await asyncio.sleep(rng.uniform(0, 0.02))
            written.add(event.id)

    async def naive_reader() -> list[uuid.UUID]:
        seen, last = [], 0
        while True:
            finished = done.is_set()
            rows = await reading.pool.fetch(
                "SELECT id, position FROM events WHERE position > $1 ORDER BY position", last
            )
            for row in rows:
                seen.append(row["id"])
                last = row["position"]
            if finished:
                return seen
            await asyncio.sleep(0.001)

    async def store_reader() -> list[uuid.UUID]:
        seen, checkpoint = [], START
        while True:
            finished = done.is_set()
            batch = await reading.read_log(checkpoint, 50)
            seen.extend(e.id for e in batch)
            if batch:
                checkpoint = batch[-1].checkpoint
            elif finished:
                return seen
            await asyncio.sleep(0.001)

    naive_task = asyncio.create_task(naive_reader())
    store_task = asyncio.create_task(store_reader())
    await asyncio.gather(*(writer(w) for w in range(writers)))
    if settle is not None:
        await settle()
    done.set()
    return Race(written, await naive_task, await store_task)
