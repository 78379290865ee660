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
* **Hiccups.** A database failure (`is_hiccup`: a lost connection, a
  serialization failure or deadlock, a server shutting down or out of
  resources) closes the connection, forgets in-memory folds (they may be ahead
  of what committed) and retries with capped exponential backoff; the runner
  never raises into the API process.
* **Poison events.** Any other failure of a batch is taken as deterministic (an
  event whose data does not decode, a fold that fails on it): the batch is
  applied again one event at a time, which commits the events before the bad one
  and finds it; if it fails again alone, the projection stops there and records
  it as stuck (event, negotiation, error) beside its checkpoint
  (`checkpoints.mark_stuck`). It does not retry in a loop: it waits until a
  rebuild (or another holder) moves its checkpoint, and tries the event once
  more on its next start (after a fix is deployed). /health/ready, the metrics
  and the reads of that negotiation report it (docs/operations.md, "A
  projection stuck at an event").

Rebuilds are in `service.projection.rebuild`, lag and read-your-writes in
`service.projection.watch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from projections import PROJECTION_NAMES, PROJECTIONS, Projection
from service import tracing
from service.db import close_connection, connect
from service.projection.checkpoints import (
    HOLDER_LOCK_CLASS,
    CheckpointMoved,
    apply_batch,
    ensure_checkpoints,
    mark_stuck,
    read_checkpoint,
    read_stuck,
)
from service.store.event_store import Checkpoint, EventStore, StoredEvent

log = logging.getLogger("parley.projector")

# SQLSTATE classes of a passing database condition: connection exception,
# transaction rollback (serialization failure, deadlock), insufficient resources,
# object not in prerequisite state (lock not available), operator intervention
# (shutdown, cancel), system error. Anything else repeats with the same event.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})


def is_hiccup(error: BaseException) -> bool:
    """A failure that says nothing about the events (retry), not a poison event."""
    if isinstance(error, (OSError, ConnectionError, TimeoutError, asyncio.TimeoutError, asyncpg.InterfaceError,
                          asyncpg.exceptions.InternalClientError)):
        return True
    if isinstance(error, asyncpg.PostgresError):
        return (error.sqlstate or "")[:2] in _TRANSIENT_SQLSTATE_CLASSES
    return False


class _Stuck(Exception):
    """This holder has marked its projection stuck after `checkpoint`; it waits."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        super().__init__(str(checkpoint))
        self.checkpoint = checkpoint

@dataclass
class WorkerStats:
    """What this process knows of one projection (for /health/ready)."""

    name: str
    holding: bool = False
    events_applied: int = 0
    batches: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    last_batch_seconds: float = 0.0
    # When this process last committed a batch of it (None: never, or not held here).
    last_batch_at: dt.datetime | None = None
    # The event this projection is stuck at: {"event_id", "negotiation_id", "error"}.
    stuck: dict[str, object] | None = None


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
                self.stats.last_error_at = dt.datetime.now(dt.timezone.utc)
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
                except _Stuck as stuck:
                    await self._wait_while_stuck(conn, stuck.checkpoint)
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
                with tracing.span("parley.projection.batch", {"parley.projection": self.projection.name,
                                                              "parley.events": len(batch)}):  # fmt: skip
                    try:
                        checkpoint = await apply_batch(conn, self.store, self.projection, checkpoint, batch)
                    except CheckpointMoved:
                        raise
                    except Exception as error:
                        if is_hiccup(error):
                            raise
                        self.projection.reset()
                        checkpoint = await self._one_by_one(conn, checkpoint, batch, error)
                self.stats.batches += 1
                self.stats.events_applied += len(batch)
                self.stats.last_batch_seconds = time.perf_counter() - started
                self.stats.last_batch_at = dt.datetime.now(dt.timezone.utc)
                self.stats.stuck = None

    async def _one_by_one(
        self, conn: asyncpg.Connection, checkpoint: Checkpoint, batch: Sequence[StoredEvent], first: Exception
    ) -> Checkpoint:
        """A batch failed for a reason that is not the database's: apply it one
        event at a time, to commit what comes before the event that fails and find it."""
        log.warning("projection %s: a batch failed (%s); applying it event by event", self.projection.name, first)
        for event in batch:
            try:
                checkpoint = await apply_batch(conn, self.store, self.projection, checkpoint, [event])
            except CheckpointMoved:
                raise
            except Exception as error:
                if is_hiccup(error):
                    raise
                self.projection.reset()
                detail = f"{type(error).__name__}: {error}"
                await mark_stuck(conn, self.projection.name, checkpoint, event, detail)
                self.stats.errors += 1
                self.stats.last_error = detail
                self.stats.last_error_at = dt.datetime.now(dt.timezone.utc)
                self.stats.stuck = {
                    "event_id": event.id, "negotiation_id": event.negotiation_id or event.stream_id, "error": detail
                }
                log.error(
                    "projection %s: stuck at event %s (%s, negotiation %s): %s; it stays there until "
                    "`parley projections rebuild %s` after a fix, or its next start",
                    self.projection.name, event.id, event.type, event.negotiation_id or event.stream_id, detail,
                    self.projection.name,
                )  # fmt: skip
                raise _Stuck(checkpoint) from error
        return checkpoint

    async def _wait_while_stuck(self, conn: asyncpg.Connection, checkpoint: Checkpoint) -> None:
        """Until the stored checkpoint moves (a rebuild swapped fixed tables in, or
        another holder applied) or the stuck mark is cleared; no retry meanwhile."""
        while not self.stopping.is_set():
            await self._pause(self.lock_poll_interval)
            if await read_checkpoint(conn, self.projection.name) != checkpoint:
                break
            if await read_stuck(conn, self.projection.name) is None:
                break
        self.stats.stuck = None


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
