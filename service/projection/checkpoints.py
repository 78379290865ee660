"""Checkpoints: where each projection is in the log, and the one transaction that
moves it.

A batch of events, the rows it changes and the projection's checkpoint
`(txid, position)` are written in one transaction (`apply_batch`). The
checkpoint row is locked first and compared with the checkpoint the batch was
read after, so a batch is applied only on top of exactly the state it follows;
a runner killed anywhere in a batch leaves nothing of it behind, and the next
holder resumes from the committed checkpoint. The table itself is created by
migration 0002 (service/migrations).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from domain.records import Recorded
from projections import Projection
from projections.records import StreamHistory, fact_from_stored, recorded_from_stored
from service.store.event_store import START, Checkpoint, EventStore, StoredEvent

# NOTIFY channel: a projection committed a batch (payload: its name).
PROJECTIONS_CHANNEL = "parley_projections"
# Advisory lock classes (the two-key form): (class, projection.lock_id).
HOLDER_LOCK_CLASS = 0x70726F6A  # "proj"
REBUILD_LOCK_CLASS = 0x72626C64  # "rbld"


class CheckpointMoved(Exception):
    """The stored checkpoint is not the one this runner read after (a rebuild
    swapped tables in, or another holder applied): re-read and carry on."""


def stream_history(store: EventStore, conn: asyncpg.Connection) -> StreamHistory:
    async def load(stream_id: Any, from_version: int, to_version: int) -> list[Recorded]:
        events = await store.read_stream(stream_id, from_version, to_version, conn=conn)
        return [recorded_from_stored(e) for e in events]

    return load


async def ensure_checkpoints(conn: asyncpg.Connection | asyncpg.Pool, names: Iterable[str]) -> None:
    await conn.execute(
        "INSERT INTO projection_checkpoints (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING",
        list(names),
    )


async def read_checkpoint(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> Checkpoint:
    row = await conn.fetchrow("SELECT txid, position FROM projection_checkpoints WHERE name = $1", name)
    return Checkpoint(row["txid"], row["position"]) if row else START


async def read_stuck(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> dict[str, Any] | None:
    """The event a projection is stuck at (docs/operations.md), or None."""
    row = await conn.fetchrow(
        """
        SELECT stuck_event_id AS event_id, stuck_negotiation_id AS negotiation_id, stuck_error AS error,
               stuck_since AS since
        FROM projection_checkpoints WHERE name = $1 AND stuck_event_id IS NOT NULL
        """,
        name,
    )
    return dict(row) if row is not None else None


async def mark_stuck(
    conn: asyncpg.Connection, name: str, after: Checkpoint, event: StoredEvent, error: str
) -> None:
    """Record that `name` cannot apply `event`, the next one after `after` (its
    checkpoint stays there). CheckpointMoved if another holder or a rebuild moved it."""
    marked = await conn.fetchval(
        """
        UPDATE projection_checkpoints
        SET stuck_since = CASE WHEN stuck_event_id = $4 THEN stuck_since ELSE now() END,
            stuck_event_id = $4, stuck_negotiation_id = $5, stuck_error = $6, updated_at = now()
        WHERE name = $1 AND txid = $2 AND position = $3
        RETURNING name
        """,
        name,
        after.txid,
        after.position,
        event.id,
        event.negotiation_id or event.stream_id,
        error,
    )
    if marked is None:
        raise CheckpointMoved(name)


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
            SET txid = $2, position = $3, events_applied = events_applied + $4, updated_at = now(),
                stuck_event_id = NULL, stuck_negotiation_id = NULL, stuck_error = NULL, stuck_since = NULL
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
