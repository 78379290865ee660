"""The projection runner: applies the log to every read model, exactly once.

* **Exactly once.** Each batch goes through `checkpoints.apply_batch`: rows and
  checkpoint in one transaction, on top of exactly the checkpoint it was read
  after.
* **One holder per projection.** Each projection is held through a session-level
  advisory lock, taken on a dedicated connection that also runs every apply
  transaction: if that connection dies, the lock and any half-done batch go
  with it, so no holder can ever write after losing its lock. Other runners
  (in other API processes, `parley project` workers, other machines) retry the
  lock every `lock_poll_interval` seconds and take over within about a second
  of the holder's death.
* **Wake-up.** Events come from `EventStore.subscribe` (LISTEN/NOTIFY, polling
  as the fallback). After each committed batch the runner notifies
  `parley_projections`, which `watch.ProjectionWatch.wait_for` listens to for
  read-your-writes.
* **Hiccups.** Any failure closes the connection, forgets in-memory folds (they
  may be ahead of what committed) and retries with capped exponential backoff;
  the runner never raises into the API process.

Rebuilds are in `service.projection.rebuild`, lag and read-your-writes in
`service.projection.watch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from projections import PROJECTION_NAMES, PROJECTIONS, Projection
from service.db import close_connection, connect
from service.projection.checkpoints import (
    HOLDER_LOCK_CLASS,
    CheckpointMoved,
    apply_batch,
    ensure_checkpoints,
    read_checkpoint,
)
from service.store.event_store import Checkpoint, EventStore

log = logging.getLogger("parley.projector")

@dataclass
class WorkerStats:
    """What this process knows of one projection (for metrics)."""

    name: str
    holding: bool = False
    events_applied: int = 0
    batches: int = 0
    errors: int = 0
    last_error: str | None = None
    last_batch_seconds: float = 0.0


class ProjectionWorker:
    """Holds one projection when it can, and keeps it up to date."""

    def __init__(
        self,
        database_url: str,
        store: EventStore,
        projection: Projection,
        *,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
        lock_poll_interval: float = 1.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.database_url = database_url
        self.store = store
        self.projection = projection
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.lock_poll_interval = lock_poll_interval
        self.max_backoff = max_backoff
        self.stats = WorkerStats(projection.name)
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        """Until `stopping` is set (or the task is cancelled); never raises otherwise."""
        backoff = 0.2
        while not self.stopping.is_set():
            try:
                await self._hold_and_apply()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a database hiccup, or a bug in one batch: retry
                self.projection.reset()
                self.stats.errors += 1
                self.stats.last_error = f"{type(error).__name__}: {error}"
                log.warning("projection %s: %s; retrying in %.1fs", self.projection.name, error, backoff)
                await self._pause(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.max_backoff)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _hold_and_apply(self) -> None:
        conn = await connect(self.database_url, f"parley-projector:{self.projection.name}")
        try:
            await ensure_checkpoints(conn, [self.projection.name])
            while not await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", HOLDER_LOCK_CLASS, self.projection.lock_id
            ):
                if self.stopping.is_set():
                    return
                await self._pause(self.lock_poll_interval)
            self.stats.holding = True
            log.info("projection %s: holding", self.projection.name)
            while not self.stopping.is_set():
                # Whatever was cached may predate another holder's or a rebuild's writes.
                self.projection.reset()
                checkpoint = await read_checkpoint(conn, self.projection.name)
                try:
                    await self._follow(conn, checkpoint)
                except CheckpointMoved:
                    log.info("projection %s: checkpoint moved; resuming from the stored one", self.projection.name)
        finally:
            self.stats.holding = False
            await close_connection(conn)

    async def _follow(self, conn: asyncpg.Connection, checkpoint: Checkpoint) -> None:
        subscription = self.store.subscribe(
            checkpoint, batch_size=self.batch_size, poll_interval=self.poll_interval, stop=self.stopping
        )
        async with contextlib.aclosing(subscription) as batches:
            async for batch in batches:
                started = time.perf_counter()
                checkpoint = await apply_batch(conn, self.store, self.projection, checkpoint, batch)
                self.stats.batches += 1
                self.stats.events_applied += len(batch)
                self.stats.last_batch_seconds = time.perf_counter() - started


class Projector:
    """Every projection's worker, in this process (the API's, or `parley project`).

    `pool` is the runner's own (service.bootstrap gives it one, so the runner never
    competes with requests for connections); each held projection also has its
    dedicated connection to `database_url`.
    """

    def __init__(
        self,
        database_url: str,
        names: Sequence[str] = PROJECTION_NAMES,
        *,
        pool: asyncpg.Pool,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
        lock_poll_interval: float = 1.0,
        projections: dict[str, Projection] | None = None,
    ) -> None:
        unknown = set(names) - set(PROJECTIONS)
        if unknown:
            raise ValueError(f"unknown projections: {sorted(unknown)}")
        self.database_url = database_url
        self.names = tuple(names)
        self.settings = dict(batch_size=batch_size, poll_interval=poll_interval, lock_poll_interval=lock_poll_interval)
        self.projections = projections or {name: PROJECTIONS[name]() for name in self.names}
        store = EventStore(pool)
        self.workers = [
            ProjectionWorker(database_url, store, self.projections[name], **self.settings)  # type: ignore[arg-type]
            for name in self.names
        ]
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="parley-projector")
        return self._task

    async def stop(self) -> None:
        for worker in self.workers:
            worker.stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def stats(self) -> list[WorkerStats]:
        return [worker.stats for worker in self.workers]

    async def run(self) -> None:
        """Every worker until stopped; a database that is unreachable is retried by
        each worker with backoff, never raised."""
        await asyncio.gather(*(worker.run() for worker in self.workers))
