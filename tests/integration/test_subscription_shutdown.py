"""A subscription cancelled at any moment gives its connection back.

The projection runner consumes `EventStore.subscribe`; when a batch fails, the
subscription is closed and, if the service is stopping at that moment, the
task is cancelled while the subscription unlistens. A connection kept then
makes the pool's close() wait for ever: `parley serve` never exits and a test's
teardown hangs (CI saw it: "Pool.close() is taking over 60 seconds").
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from service.db import create_pool
from service.store.event_store import EventStore
from tests.pending_events import pending


class BatchFailed(Exception):
    pass


async def consume_and_fail(store: EventStore, cancel_after: float) -> None:
    async with contextlib.aclosing(store.subscribe(poll_interval=0.01)) as batches:
        async for _ in batches:
            # The service stops just as a batch fails: the cancellation arrives
            # while the subscription is closing (unlistening, releasing).
            task = asyncio.current_task()
            assert task is not None
            asyncio.get_running_loop().call_later(cancel_after, task.cancel)
            raise BatchFailed  # as a projection batch that cannot be applied


async def test_a_subscription_cancelled_while_closing_releases_its_connection(database_url: str) -> None:
    store = EventStore(await create_pool(database_url, min_size=1, max_size=2))
    try:
        await store.append([pending(uuid.uuid4(), 1)])
    finally:
        await store.pool.close()
    leaked = []
    for cancel_after in (0.0, 0.0005, 0.001, 0.002, 0.005):
        # Two: the subscription holds one to listen and reads with the other.
        pool = await create_pool(database_url, min_size=0, max_size=2)
        task = asyncio.create_task(consume_and_fail(EventStore(pool), cancel_after))
        with contextlib.suppress(asyncio.CancelledError, BatchFailed):
            await task
        # Generous: a pool with nothing checked out closes in milliseconds
        # (close() itself cannot be cancelled, hence wait() and terminate()).
        closing = asyncio.ensure_future(pool.close())
        await asyncio.wait([closing], timeout=10)
        if not closing.done():
            leaked.append(cancel_after)
            pool.terminate()
            await closing
    assert leaked == [], f"cancelled this long after the failure, the connection was never released: {leaked}"
