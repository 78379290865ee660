"""The projection runner: applies the log to every read model, exactly once.

* **Exactly once.** A batch of events, the rows it changes and the projection's
  checkpoint `(txid, position)` are written in one transaction. The checkpoint
  row is locked first and compared with the checkpoint the batch was read
  after, so a batch is applied only on top of exactly the state it follows; a
  runner killed anywhere in a batch leaves nothing of it behind, and the next
  holder resumes from the committed checkpoint.
* **One holder per projection.** Each projection is held through a session-level
  advisory lock, taken on a dedicated connection that also runs every apply
  transaction: if that connection dies, the lock and any half-done batch go
  with it, so no holder can ever write after losing its lock. Other runners
  (in other API processes, `parley project` workers, other machines) retry the
  lock every `lock_poll_interval` seconds and take over within about a second
  of the holder's death.
* **Wake-up.** Events come from `EventStore.subscribe` (LISTEN/NOTIFY, polling
  as the fallback). After each committed batch the runner notifies
  `parley_projections`, which `ProjectionWatch.wait_for` listens to for
  read-your-writes.
* **Hiccups.** Any failure closes the connection, forgets in-memory folds (they
  may be ahead of what committed) and retries with capped exponential backoff;
  the runner never raises into the API process.
* **Rebuild.** `rebuild()` replays the whole log into fresh tables in the schema
  `parley_rebuild` (the projection's SQL is unchanged: the search path points at
  that schema), then swaps them in with one short transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import asyncpg

from domain.records import Recorded
from projections import PROJECTION_NAMES, PROJECTIONS, Projection
from projections.records import StreamHistory, fact_from_stored, recorded_from_stored
from service.db import connect
from service.roles import copy_grants
from service.store.event_store import START, Checkpoint, EventStore, StoredEvent

log = logging.getLogger("parley.projector")

# NOTIFY channel: a projection committed a batch (payload: its name).
PROJECTIONS_CHANNEL = "parley_projections"
# Advisory lock classes (the two-key form): (class, projection.lock_id).
HOLDER_LOCK_CLASS = 0x70726F6A  # "proj"
REBUILD_LOCK_CLASS = 0x72626C64  # "rbld"
REBUILD_SCHEMA = "parley_rebuild"


class CheckpointMoved(Exception):
    """The stored checkpoint is not the one this runner read after (a rebuild
    swapped tables in, or another holder applied): re-read and carry on."""


def stream_history(store: EventStore, conn: asyncpg.Connection) -> StreamHistory:
    async def load(stream_id: Any, from_version: int, to_version: int) -> list[Recorded]:
        events = await store.read_stream(stream_id, from_version, to_version, conn=conn)
        return [recorded_from_stored(e) for e in events]

    return load


# --- checkpoints ---------------------------------------------------------------------


async def ensure_checkpoints(conn: asyncpg.Connection | asyncpg.Pool, names: Iterable[str]) -> None:
    await conn.execute(
        "INSERT INTO projection_checkpoints (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING",
        list(names),
    )


async def read_checkpoint(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> Checkpoint:
    row = await conn.fetchrow("SELECT txid, position FROM projection_checkpoints WHERE name = $1", name)
    return Checkpoint(row["txid"], row["position"]) if row else START


async def apply_batch(
    conn: asyncpg.Connection,
    store: EventStore,
    projection: Projection,
    after: Checkpoint,
    batch: Sequence[StoredEvent],
) -> Checkpoint:
    """Apply one batch read after `after`, with the checkpoint, in one transaction."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT txid, position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", projection.name
        )
        if row is None or Checkpoint(row["txid"], row["position"]) != after:
            raise CheckpointMoved(projection.name)
        await projection.apply(conn, [fact_from_stored(e) for e in batch], stream_history(store, conn))
        last = batch[-1].checkpoint
        await conn.execute(
            """
            UPDATE projection_checkpoints
            SET txid = $2, position = $3, events_applied = events_applied + $4, updated_at = now()
            WHERE name = $1
            """,
            projection.name,
            last.txid,
            last.position,
            len(batch),
        )
    # After the commit, not inside it: PostgreSQL holds a database-wide lock from a
    # transaction's NOTIFY until its commit is flushed, so a NOTIFY in here made every
    # batch's commit and every command's commit queue behind one another.
    await conn.execute("SELECT pg_notify($1, $2)", PROJECTIONS_CHANNEL, projection.name)
    return last


# --- the runner ------------------------------------------------------------------------


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


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=2)
    except BaseException:
        conn.terminate()
        raise


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
            await _close(conn)

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


# --- lag ---------------------------------------------------------------------------------

# Counting stops here: "a million or more behind" is all a health check needs.
_LAG_COUNT_CAP = 1_000_000


async def projection_lag(pool: asyncpg.Pool, names: Sequence[str] = PROJECTION_NAMES) -> list[dict[str, Any]]:
    """Per projection: events behind the visible head of the log, and seconds
    since the oldest of them was recorded (0 when caught up)."""
    rows = await pool.fetch(
        "SELECT name, txid, position FROM projection_checkpoints WHERE name = ANY($1::text[]) ORDER BY name",
        list(names),
    )
    behind = await EventStore(pool).backlog([Checkpoint(r["txid"], r["position"]) for r in rows], cap=_LAG_COUNT_CAP)
    return [
        {"name": r["name"], "events_behind": lag.events, "seconds_behind": lag.seconds}
        for r, lag in zip(rows, behind)
    ]


# --- read-your-writes ------------------------------------------------------------------------


class ProjectionWatch:
    """Waits until every projection has passed a checkpoint (a consistency token).

    One LISTEN connection per process wakes all waiters when a batch commits;
    waiters also re-check every `poll_interval`, which covers a lost
    notification or a listener that is reconnecting. Waiters share their reads
    of the checkpoints: many requests waiting at once cost one query per commit.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        database_url: str,
        names: Sequence[str] = PROJECTION_NAMES,
        *,
        poll_interval: float = 0.25,
    ) -> None:
        self.pool = pool
        self.database_url = database_url
        self.names = list(names)
        self.poll_interval = poll_interval
        self._changed = asyncio.Event()
        self._generation = 0  # notifications received so far
        self._reading: tuple[int, asyncio.Future[Checkpoint | None]] | None = None
        self._listener: asyncio.Task[None] | None = None

    async def _read_slowest(self) -> Checkpoint | None:
        rows = await self.pool.fetch(
            "SELECT txid, position FROM projection_checkpoints WHERE name = ANY($1::text[])", self.names
        )
        if len(rows) < len(self.names):
            return None
        return min(Checkpoint(r["txid"], r["position"]) for r in rows)

    async def slowest(self) -> Checkpoint | None:
        """The checkpoint every projection has passed (None: one has never run).

        A read already in flight is shared if it started after the latest
        notification (so it cannot miss that commit)."""
        reading = self._reading
        if reading is None or reading[1].done() or reading[0] < self._generation:
            reading = self._reading = (self._generation, asyncio.ensure_future(self._read_slowest()))
        return await asyncio.shield(reading[1])

    async def passed(self, checkpoint: Checkpoint) -> bool:
        slowest = await self.slowest()
        return slowest is not None and slowest >= checkpoint

    async def wait_for(self, checkpoint: Checkpoint, timeout: float = 5.0) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed  # taken before checking: a commit after it still wakes us
            if await self.passed(checkpoint):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._listener is None or self._listener.done():
                self._listener = asyncio.create_task(self._listen(), name="parley-projection-watch")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, self.poll_interval))

    def _notify(self, *_: object) -> None:
        self._generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _listen(self) -> None:
        while True:
            try:
                conn = await connect(self.database_url, "parley-projection-watch")
                try:
                    await conn.add_listener(PROJECTIONS_CHANNEL, self._notify)
                    while not conn.is_closed():
                        await asyncio.sleep(1.0)
                finally:
                    await _close(conn)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.info("projection watch: %s; reconnecting", error)
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener


# --- rebuild ---------------------------------------------------------------------------------


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class RebuildResult:
    name: str
    events: int
    checkpoint: Checkpoint
    seconds: float
    tables: tuple[str, ...] = field(default_factory=tuple)


async def rebuild(
    pool: asyncpg.Pool,
    name: str,
    *,
    batch_size: int = 2000,
    progress: TextIO | None = sys.stderr,
    projection_factory: Callable[[], Projection] | None = None,
) -> RebuildResult:
    """Replay the whole log into fresh tables and swap them in atomically.

    Reads keep being served from the live tables throughout; they wait only for
    the swap itself (a few DROP/ALTER statements). A live runner carries on from
    the swapped-in checkpoint: its next batch finds the checkpoint moved,
    forgets its folds and resumes from the stored checkpoint.
    """
    from tqdm import tqdm

    if name not in PROJECTIONS:
        raise ValueError(f"unknown projection {name!r}; known: {', '.join(PROJECTION_NAMES)}")
    projection = (projection_factory or PROJECTIONS[name])()
    started = time.perf_counter()
    store = EventStore(pool)
    # Two connections of the caller's pool: one replays, the other swaps.
    async with pool.acquire() as work, pool.acquire() as swap:
        # One rebuild of a projection at a time (a second one waits here).
        await work.execute("SELECT pg_advisory_lock($1, $2)", REBUILD_LOCK_CLASS, projection.lock_id)
        await ensure_checkpoints(work, [name])
        live_schema = await work.fetchval(
            """
            SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = to_regclass($1)
            """,
            quote_identifier(projection.tables[0]),
        )
        live = quote_identifier(live_schema)
        fresh = quote_identifier(REBUILD_SCHEMA)
        # Identifiers below come from the projection's fixed table list, quoted.
        await work.execute(f"CREATE SCHEMA IF NOT EXISTS {fresh}")
        for table in projection.tables:
            t = quote_identifier(table)
            await work.execute(f"DROP TABLE IF EXISTS {fresh}.{t}")
            await work.execute(f"CREATE TABLE {fresh}.{t} (LIKE {live}.{t} INCLUDING ALL)")
        # The projection's own SQL now writes the fresh tables; `events` is
        # still found in the live schema.
        await work.execute(f"SET search_path TO {fresh}, {live}")

        [everything] = await store.backlog([START], conn=work)
        total = everything.events
        bar = tqdm(
            total=total, unit="event", desc=f"rebuild {name}", file=progress, disable=progress is None,
            dynamic_ncols=True,
        )
        checkpoint, applied = START, 0

        async def catch_up(until: Checkpoint | None) -> None:
            nonlocal checkpoint, applied
            history = stream_history(store, work)
            while until is None or checkpoint < until:
                batch = await store.read_log(checkpoint, batch_size, conn=work)
                if not batch:
                    return
                async with work.transaction():
                    await projection.apply(work, [fact_from_stored(e) for e in batch], history)
                checkpoint = batch[-1].checkpoint
                applied += len(batch)
                if applied > bar.total:
                    bar.total = applied
                bar.update(len(batch))

        try:
            await catch_up(None)
            async with swap.transaction():
                await swap.execute("SET LOCAL lock_timeout = '10s'")
                # Locking the checkpoint row first waits for a live batch in
                # flight and holds the next one back (a batch locks it first too).
                row = await swap.fetchrow(
                    "SELECT txid, position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", name
                )
                # Never swap in something older than what is being served.
                await catch_up(Checkpoint(row["txid"], row["position"]))
                for table in projection.tables:
                    t = quote_identifier(table)
                    # The application role keeps its grants on the new table.
                    await copy_grants(swap, f"{live}.{t}", f"{fresh}.{t}")
                    await swap.execute(f"DROP TABLE {live}.{t}")
                    await swap.execute(f"ALTER TABLE {fresh}.{t} SET SCHEMA {live}")
                await swap.execute(
                    """
                    UPDATE projection_checkpoints
                    SET txid = $2, position = $3, events_applied = $4, updated_at = now()
                    WHERE name = $1
                    """,
                    name,
                    checkpoint.txid,
                    checkpoint.position,
                    applied,
                )
                await swap.execute("SELECT pg_notify($1, $2)", PROJECTIONS_CHANNEL, name)
        finally:
            # Releasing the connections resets their search path and advisory locks.
            bar.close()
    return RebuildResult(name, applied, checkpoint, time.perf_counter() - started, projection.tables)
