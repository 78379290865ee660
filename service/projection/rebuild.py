"""Rebuild: replay the whole log into fresh tables and swap them in.

All the projections asked for are rebuilt in one pass over the log: each batch
is read and decoded once and folded in memory for every projection
(projections.bulk), whose final rows are COPYed into fresh tables on the
second connection while the first reads and folds on; then one swap
transaction moves every projection's tables in. Facts of a negotiation evicted
from memory, the catch-up inside the swap, and projection objects of other
classes apply batches as the live runner does (one transaction per batch).

The fresh tables live in the schema `parley_rebuild` (`LIKE` the live ones,
so indexes and constraints are the same); the projection's own SQL writes them
unchanged because the search path points at that schema first. The swap is one
short transaction that first locks the checkpoint row (waiting for a live
batch in flight and holding the next one back), catches up to what is being
served, and moves the tables in. Reads are served from the live tables all
along.

A rebuild is also how a projection stuck at an event (service.projection.runner)
resumes after the fix: the swap clears the stuck event with the checkpoint. A
rebuild that meets the event it cannot apply fails and swaps nothing in.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import asyncpg

from projections import PROJECTION_NAMES, PROJECTIONS, Projection
from projections.bulk import COLUMNS as BULK_COLUMNS
from projections.bulk import TABLES as BULK_TABLES
from projections.bulk import BulkFold, Rows
from projections.records import fact_from_stored
from service.projection.checkpoints import (
    PROJECTIONS_CHANNEL,
    REBUILD_LOCK_CLASS,
    ensure_checkpoints,
    stream_history,
)
from service.roles import copy_grants
from service.store.event_store import START, Checkpoint, EventStore

REBUILD_SCHEMA = "parley_rebuild"
# Events a rebuild folds in memory at most (outside a negotiation larger than
# that): ~2.7 KB each in bench.replay's log, so ~140 MB.
HELD_EVENTS = 50_000


@contextlib.contextmanager
def rare_collections() -> Iterator[None]:
    """No automatic cyclic garbage collection inside: call `gc.collect()` now and
    then instead (the caller does, every few times `HELD_EVENTS` events). The
    fold keeps millions of objects alive while it creates and frees as many, so
    the collector's full passes over them, triggered by that churn, cost more
    than the fold itself (bench.replay's log, 200,000 events: 20.3 s of CPU with
    them, 7.9 s without). What the fold frees it frees by reference counting:
    the peak memory was the same with the collector off (198 MB)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Writer:
    """COPYs rows into the fresh tables on the connection the swap uses later,
    one transaction per batch of rows, while the other connection reads and
    folds the next batch (PostgreSQL writes on one core, the fold runs on another)."""

    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        self.conn = conn
        self.schema = schema
        self.pending: asyncio.Task[None] | None = None

    async def copy(self, rows: Rows) -> None:
        """Start writing `rows` once the rows handed over before are committed."""
        await self.drain()
        if any(rows.values()):
            self.pending = asyncio.ensure_future(self._copy(rows))

    async def _copy(self, rows: Rows) -> None:
        async with self.conn.transaction():
            # No wait for the WAL flush here: the rows are live only through the
            # swap, whose commit (synchronous) flushes every WAL record before it.
            await self.conn.execute("SET LOCAL synchronous_commit = off")
            for table, records in rows.items():
                if records:
                    await self.conn.copy_records_to_table(
                        table, records=records, columns=BULK_COLUMNS[table], schema_name=self.schema
                    )

    async def drain(self) -> None:
        """Wait for the rows handed over so far to be committed."""
        pending, self.pending = self.pending, None
        if pending is not None:
            await pending

    async def close(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending


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
    """Rebuild one projection (`rebuild_all` with one name)."""
    if name not in PROJECTIONS:
        raise ValueError(f"unknown projection {name!r}; known: {', '.join(PROJECTION_NAMES)}")
    projection = (projection_factory or PROJECTIONS[name])()
    [result] = await rebuild_all(pool, [projection], batch_size=batch_size, progress=progress)
    return result


async def rebuild_all(
    pool: asyncpg.Pool,
    projections: Sequence[str | Projection] = PROJECTION_NAMES,
    *,
    batch_size: int = 2000,
    progress: TextIO | None = sys.stderr,
    held_events: int = HELD_EVENTS,
) -> list[RebuildResult]:
    """Replay the whole log once into fresh tables of every projection given (by
    name, or as an object), then swap them all in atomically.

    Reads keep being served from the live tables throughout; they wait only for
    the swap itself (a few DROP/ALTER statements). A live runner carries on from
    the swapped-in checkpoint: its next batch finds the checkpoint moved,
    forgets its folds and resumes from the stored checkpoint.

    `held_events` bounds the events folded in memory (projections.bulk).
    """
    from tqdm import tqdm

    chosen: list[Projection] = []
    for item in projections:
        if isinstance(item, str):
            if item not in PROJECTIONS:
                raise ValueError(f"unknown projection {item!r}; known: {', '.join(PROJECTION_NAMES)}")
            item = PROJECTIONS[item]()
        chosen.append(item)
    names = [p.name for p in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"a projection named twice: {names}")
    started = time.perf_counter()
    store = EventStore(pool)
    # Two connections of the caller's pool: one replays, the other swaps.
    async with pool.acquire() as work, pool.acquire() as swap:
        # One rebuild of a projection at a time (a second one waits here); locks
        # taken in one order, so two rebuilds of overlapping sets cannot deadlock.
        for projection in sorted(chosen, key=lambda p: p.lock_id):
            await work.execute("SELECT pg_advisory_lock($1, $2)", REBUILD_LOCK_CLASS, projection.lock_id)
        await ensure_checkpoints(work, names)
        fresh = quote_identifier(REBUILD_SCHEMA)
        await work.execute(f"CREATE SCHEMA IF NOT EXISTS {fresh}")
        live_schemas = set()
        for projection in chosen:
            live_schemas.add(
                await work.fetchval(
                    """
                    SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.oid = to_regclass($1)
                    """,
                    quote_identifier(projection.tables[0]),
                )
            )
        if len(live_schemas) != 1 or None in live_schemas:
            raise RuntimeError(f"the projections' tables are not in one schema: {live_schemas}")
        live = quote_identifier(live_schemas.pop())
        # Identifiers below come from the projections' fixed table lists, quoted.
        for projection in chosen:
            for table in projection.tables:
                t = quote_identifier(table)
                await work.execute(f"DROP TABLE IF EXISTS {fresh}.{t}")
                await work.execute(f"CREATE TABLE {fresh}.{t} (LIKE {live}.{t} INCLUDING ALL)")
        # The projections' own SQL now writes the fresh tables; `events` is
        # still found in the live schema.
        await work.execute(f"SET search_path TO {fresh}, {live}")

        [everything] = await store.backlog([START], conn=work)
        bar = tqdm(
            total=everything.events, unit="event", desc=f"rebuild {', '.join(names)}", file=progress,
            disable=progress is None, dynamic_ncols=True,
        )
        checkpoint, applied = START, 0
        history = stream_history(store, work)
        # The projections of this code are folded in memory and their rows
        # COPYed in (projections.bulk); any other object given applies batches.
        in_bulk = [p for p in chosen if type(p) is PROJECTIONS.get(p.name) and p.name in BULK_TABLES]
        batched = [p for p in chosen if p not in in_bulk]
        folding = BulkFold((p.name for p in in_bulk), held_events) if in_bulk else None
        writer = _Writer(swap, REBUILD_SCHEMA)
        collect_every = 4 * max(held_events, 1)

        async def catch_up(until: Checkpoint | None, *, in_memory: bool) -> None:
            nonlocal checkpoint, applied
            while until is None or checkpoint < until:
                batch = await store.read_log(checkpoint, batch_size, conn=work)
                if not batch:
                    return
                facts = [fact_from_stored(e) for e in batch]
                if folding is None or not in_memory:
                    applying = [(p, facts) for p in chosen]
                else:
                    applying = [(p, facts) for p in batched]
                    held, rest = [], []
                    for fact in facts:
                        (held if folding.holds(fact) else rest).append(fact)
                    # One batch's rows are written while the next is read and folded.
                    await writer.copy(await folding.add(held, history))
                    if rest:
                        # Negotiations evicted from memory go on from the rows written.
                        await writer.drain()
                        applying += [(p, rest) for p in in_bulk]
                if applying:
                    async with work.transaction():
                        for projection, some in applying:
                            await projection.apply(work, some, history)
                checkpoint = batch[-1].checkpoint
                if (applied + len(batch)) // collect_every > applied // collect_every:
                    gc.collect()  # (see rare_collections)
                applied += len(batch)
                if applied > bar.total:
                    bar.total = applied
                bar.update(len(batch))

        try:
            with rare_collections():
                await catch_up(None, in_memory=True)
                if folding is not None:
                    await writer.copy(await folding.finish(history))
                    await writer.drain()
            async with swap.transaction():
                await swap.execute("SET LOCAL lock_timeout = '10s'")
                # Locking the checkpoint rows first waits for a live batch in
                # flight and holds the next one back (a batch locks its row first too).
                rows = await swap.fetch(
                    "SELECT txid, position FROM projection_checkpoints WHERE name = ANY($1::text[])"
                    " ORDER BY name FOR UPDATE",
                    names,
                )
                # Never swap in something older than what is being served.
                # (Through the projections' own batches: the swap holds the other connection.)
                await catch_up(max(Checkpoint(r["txid"], r["position"]) for r in rows), in_memory=False)
                for projection in chosen:
                    for table in projection.tables:
                        t = quote_identifier(table)
                        # The application role keeps its grants on the new table.
                        await copy_grants(swap, f"{live}.{t}", f"{fresh}.{t}")
                        await swap.execute(f"DROP TABLE {live}.{t}")
                        await swap.execute(f"ALTER TABLE {fresh}.{t} SET SCHEMA {live}")
                await swap.execute(
                    """
                    UPDATE projection_checkpoints
                    SET txid = $2, position = $3, events_applied = $4, updated_at = now(),
                        stuck_event_id = NULL, stuck_negotiation_id = NULL, stuck_error = NULL,
                        stuck_since = NULL
                    WHERE name = ANY($1::text[])
                    """,
                    names,
                    checkpoint.txid,
                    checkpoint.position,
                    applied,
                )
                for name in names:
                    await swap.execute("SELECT pg_notify($1, $2)", PROJECTIONS_CHANNEL, name)
        finally:
            await writer.close()
            # Releasing the connections resets their search path and advisory locks.
            bar.close()
    seconds = time.perf_counter() - started
    return [RebuildResult(p.name, applied, checkpoint, seconds, p.tables) for p in chosen]
