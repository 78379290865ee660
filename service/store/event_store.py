"""The event store: a lock-free, append-only log of events in PostgreSQL (asyncpg).

`EventStore` is the one object the rest of the service holds to read or write
events; it is the only code with SQL on the `events` and `streams` tables:

* appending (service.store.append): optimistic concurrency per stream, idempotent
  by event id, hash-chained, no table lock;
* the global log, gap-free (service.store.log_reader: the rule written once);
* single streams and events by key (service.store.streams).

The shapes it takes and gives are defined in service.store.events and imported
from here by callers, so this module is the store's whole interface.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Mapping, Sequence

import asyncpg
import msgspec

from service.store.append import append_in, canonical_body, content_digest
from service.store.canonical import ZERO_HASH, chain_hash
from service.store.events import (
    START,
    AppendResult,
    Checkpoint,
    ConcurrencyError,
    EventIdReused,
    EventMeta,
    PendingEvent,
    StoredEvent,
    StoreError,
    row_to_event,
)
from service.store.log_reader import EVERYTHING, GAP_FREE, NOTIFY_CHANNEL, Backlog, LogFilter, LogReader
from service.store.streams import ChainLink, EventPlace, SealedPlace, StreamHead, StreamReader

log = logging.getLogger("parley.store")

# Evaluated after a write's COMMIT has returned, on the same connection: with
# synchronous commit (PostgreSQL's default, which "an acknowledged write is durable"
# needs anyway) the commit record is flushed by then, so the flush position is at or
# past its end, and it is a position the primary has sent to its standbys, which
# they replay up to. A consistency token carries it (service.store.consistency).
COMMITTED_LSN = "pg_current_wal_flush_lsn()"


class EventStore(LogReader, StreamReader):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def append(
        self,
        events: Sequence[PendingEvent],
        expected: Mapping[uuid.UUID, int | None] | None = None,
        *,
        conn: asyncpg.Connection | None = None,
        wake_readers: bool = True,
    ) -> AppendResult:
        """Append events atomically to one or more streams.

        `expected` maps a stream to the version it must be at (0: must not exist yet);
        a stream not named, or named with None, is appended to wherever it is.
        Re-appending events whose ids are already stored with the same content
        returns the original result and writes nothing.

        With `conn`, runs inside the caller's transaction (the caller commits), so
        other writes can share the append's atomicity. Subscribers are then woken from
        inside that transaction, unless `wake_readers=False`: the caller then calls
        `wake_readers()` once it has committed, which keeps concurrent commits from
        queueing on NOTIFY's lock.
        """
        if not events:
            raise ValueError("nothing to append")
        if conn is not None:
            # The caller commits: the wake-up travels inside its transaction, or the
            # caller sends it after its commit.
            return await append_in(conn, events, expected or {}, wake_readers=wake_readers)
        async with self.pool.acquire() as own:
            for attempt in range(3):
                try:
                    # One statement outside a transaction: it is its own transaction.
                    result = await append_in(own, events, expected or {}, wake_readers=False)
                    # NOTIFY takes a database-wide lock held until its transaction has
                    # committed (WAL flush included), which would serialise every
                    # appending commit; sent after ours, from a transaction that
                    # writes nothing, it holds that lock for microseconds.
                    if not result.replayed:
                        lsn = await self.wake_readers(own)
                        return msgspec.structs.replace(result, lsn=lsn)
                    return result
                except asyncpg.UniqueViolationError as error:
                    # A concurrent writer inserted one of these ids between our check
                    # and our insert: the next attempt sees it and answers as a retry.
                    if error.constraint_name != "events_id_key" or attempt == 2:
                        raise
            raise AssertionError("unreachable")

    @staticmethod
    async def clock(conn: asyncpg.Connection) -> dt.datetime:
        """The record time of what `conn`'s transaction appends: PostgreSQL's now()."""
        return await conn.fetchval("SELECT now()")

    async def wake_readers(self, conn: asyncpg.Connection | None = None) -> int | None:
        """Wake subscribers: new events have committed. Returns the primary's WAL
        position past that commit (COMMITTED_LSN: a consistency token's LSN), or None
        if the wake-up failed. Never raises: the events are already committed, and a
        lost wake-up only leaves readers to their polling."""
        try:
            return await (conn or self.pool).fetchval(
                f"SELECT {COMMITTED_LSN} FROM (SELECT pg_notify($1, '')) AS woken", NOTIFY_CHANNEL
            )
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("could not wake log readers (they will poll): %s", error)
            return None


__all__ = [
    "COMMITTED_LSN",
    "EVERYTHING",
    "GAP_FREE",
    "START",
    "ZERO_HASH",
    "AppendResult",
    "Backlog",
    "ChainLink",
    "Checkpoint",
    "ConcurrencyError",
    "EventIdReused",
    "EventMeta",
    "EventPlace",
    "EventStore",
    "LogFilter",
    "PendingEvent",
    "SealedPlace",
    "StoreError",
    "StoredEvent",
    "StreamHead",
    "canonical_body",
    "chain_hash",
    "content_digest",
    "row_to_event",
]
