"""Reads of single streams and events, and the stream heads (mixed into EventStore).

Everything here reads committed rows by key (a stream's versions, an event's id,
a negotiation's streams), so none of it needs the gap-free rule of the log.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence

import asyncpg
import msgspec

from service.store.events import EVENT_COLUMNS, Checkpoint, StoredEvent, row_to_event, tolerant_event

Runner = asyncpg.Connection | asyncpg.Pool


class EventPlace(msgspec.Struct, frozen=True):
    """Where an event is: its stream, and the negotiation that stream belongs to."""

    stream_id: uuid.UUID
    stream_type: str
    negotiation_id: uuid.UUID | None


class DecisionReads(msgspec.Struct, frozen=True):
    """What a command decides against, read in one statement: the transaction's
    clock, the keys of the negotiation's raised issues, and the events of each
    stream asked for from the version asked for (in version order)."""

    clock: dt.datetime
    raised_issue_keys: set[str]
    tails: dict[uuid.UUID, list[StoredEvent]]


class ChainLink(msgspec.Struct, frozen=True, kw_only=True):
    """One event as the chain check reads it (no decoding: the bytes as stored)."""

    position: int
    txid: int
    id: uuid.UUID
    stream_id: uuid.UUID
    version: int
    type: str
    body: bytes
    hash: bytes


class StreamHead(msgspec.Struct, frozen=True):
    stream_id: uuid.UUID
    version: int
    head_hash: bytes


class SealedPlace(msgspec.Struct, frozen=True, kw_only=True):
    """What the ledger check needs of a sealed event."""

    hash: bytes
    txid: int
    position: int
    stream_id: uuid.UUID
    version: int


# One row per event asked for (at least one row: the LEFT JOIN), each carrying the
# clock and the raised keys, computed once (uncorrelated subqueries). The join on
# (stream_id, version) uses the events' unique index; the partial index
# events_issue_raised (migration 0006) serves the keys (the literal type keeps it
# usable by a generic plan).
_DECISION_READS_SQL = f"""
    SELECT now() AS clock,
           ARRAY(SELECT data->>'issue' FROM events WHERE negotiation_id = $1 AND type = 'issue.raised') AS raised,
           tail.*
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT {EVENT_COLUMNS} FROM events
        JOIN unnest($2::uuid[], $3::int[]) AS wanted(wanted_stream, from_version)
          ON events.stream_id = wanted.wanted_stream AND events.version >= wanted.from_version
    ) AS tail ON true
    ORDER BY tail.stream_id, tail.version
"""

# Chains are walked stream by stream in version order. Not in the log's
# (txid, position) order: a transaction's txid is taken at its first write, before
# it waits for a stream's head, so a stream's version 6 can carry a lower txid
# than its version 5 when writers queue on one stream.
_CHAIN_SQL = """
    SELECT position, txid::text::bigint AS txid, id, stream_id, version, type, body, hash
    FROM events
    WHERE (stream_id, version) > ($1::uuid, $2)
    ORDER BY stream_id, version
    LIMIT $3
"""
# The same walk with whole events, as served (the audit compares each served field
# with its hashed body); a damaged body is still read.
_CHAIN_EVENTS_SQL = f"""
    SELECT {EVENT_COLUMNS}, data::text AS data_text
    FROM events
    WHERE (stream_id, version) > ($1::uuid, $2)
    ORDER BY stream_id, version
    LIMIT $3
"""


class StreamReader:
    """Reads by stream and by event id (mixed into EventStore)."""

    pool: asyncpg.Pool

    async def stream_version(self, stream_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> int:
        version = await (conn or self.pool).fetchval("SELECT version FROM streams WHERE stream_id = $1", stream_id)
        return version or 0

    async def read_stream(
        self,
        stream_id: uuid.UUID,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> list[StoredEvent]:
        rows = await (conn or self.pool).fetch(
            f"""
            SELECT {EVENT_COLUMNS} FROM events
            WHERE stream_id = $1 AND version >= $2 AND ($3::int IS NULL OR version <= $3)
            ORDER BY version
            """,
            stream_id,
            from_version,
            to_version,
        )
        return [row_to_event(r) for r in rows]

    async def get_event(self, event_id: uuid.UUID) -> StoredEvent | None:
        row = await self.pool.fetchrow(f"SELECT {EVENT_COLUMNS} FROM events WHERE id = $1", event_id)
        return row_to_event(row) if row is not None else None

    async def locate(self, event_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> EventPlace | None:
        row = await (conn or self.pool).fetchrow(
            "SELECT stream_id, stream_type, negotiation_id FROM events WHERE id = $1", event_id
        )
        return EventPlace(row["stream_id"], row["stream_type"], row["negotiation_id"]) if row else None

    async def live_copies(
        self, event_id: uuid.UUID, negotiation_id: uuid.UUID, *, conn: asyncpg.Connection | None = None
    ) -> list[uuid.UUID]:
        """The other copies of a multi-issue agreement step (the write side stores
        one copy per covered issue, in one transaction), not retracted yet, in log
        order. A copy: an event of the same transaction and negotiation, of the same
        type and world date, on another issue stream, whose fields differ only in
        `issue`. Retractions are final (a retraction cannot be retracted), so a copy
        that any retraction names is left out."""
        rows = await (conn or self.pool).fetch(
            """
            SELECT c.id FROM events e
            JOIN events c ON c.txid = e.txid AND c.negotiation_id = e.negotiation_id AND c.type = e.type
                         AND c.stream_type = 'issue' AND c.stream_id <> e.stream_id
                         AND c.occurred_on = e.occurred_on AND (c.data - 'issue') = (e.data - 'issue')
            WHERE e.id = $1 AND e.negotiation_id = $2 AND e.stream_type = 'issue' AND e.type LIKE 'agreement.%'
              AND NOT EXISTS (
                  SELECT 1 FROM events r
                  WHERE r.stream_id = c.stream_id AND r.type = 'record.retracted' AND r.data->>'event_id' = c.id::text)
            ORDER BY c.txid, c.position
            """,
            event_id,
            negotiation_id,
        )
        return [r["id"] for r in rows]

    async def has_event_at(self, checkpoint: Checkpoint) -> bool:
        """Whether an event sits at exactly this place in the log (a consistency
        token names the last event of a write)."""
        return await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM events WHERE position = $1 AND txid = $2::text::xid8)",
            checkpoint.position,
            str(checkpoint.txid),
        )

    async def count_events(self, negotiation_id: uuid.UUID | None = None) -> int:
        """Events in the log (of one negotiation's streams, when given)."""
        return await self.pool.fetchval(
            "SELECT count(*) FROM events WHERE ($1::uuid IS NULL OR negotiation_id = $1)", negotiation_id
        )

    async def last_position(self) -> int:
        """The highest position written (0 for an empty log), committed or not yet readable."""
        return await self.pool.fetchval("SELECT coalesce(max(position), 0) FROM events")

    async def decision_reads(
        self, conn: asyncpg.Connection, negotiation_id: uuid.UUID, wanted: Mapping[uuid.UUID, int]
    ) -> DecisionReads:
        """In one round trip: `conn`'s clock (now()), the negotiation's raised issue
        keys, and each wanted stream's events from its version on."""
        rows = await conn.fetch(_DECISION_READS_SQL, negotiation_id, list(wanted), list(wanted.values()))
        tails: dict[uuid.UUID, list[StoredEvent]] = {stream_id: [] for stream_id in wanted}
        for row in rows:
            if row["id"] is not None:
                tails[row["stream_id"]].append(row_to_event(row))
        return DecisionReads(rows[0]["clock"], set(rows[0]["raised"]), tails)

    # -- streams ---------------------------------------------------------------------

    async def is_negotiation(self, stream_id: uuid.UUID) -> bool:
        return await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM streams WHERE stream_id = $1 AND stream_type = 'negotiation')", stream_id
        )

    async def issue_streams(self, negotiation_id: uuid.UUID) -> list[uuid.UUID]:
        """The ids of a negotiation's issue streams, in id order."""
        rows = await self.pool.fetch(
            "SELECT stream_id FROM streams WHERE negotiation_id = $1 AND stream_type = 'issue' ORDER BY stream_id",
            negotiation_id,
        )
        return [row["stream_id"] for row in rows]

    async def issue_stream_versions(
        self, negotiation_id: uuid.UUID, *, conn: asyncpg.Connection | None = None
    ) -> dict[uuid.UUID, int]:
        """Each of a negotiation's issue streams and its version now, in id order."""
        rows = await (conn or self.pool).fetch(
            "SELECT stream_id, version FROM streams WHERE negotiation_id = $1 AND stream_type = 'issue'"
            " ORDER BY stream_id",
            negotiation_id,
        )
        return {row["stream_id"]: row["version"] for row in rows}

    async def count_issue_streams(self, negotiation_id: uuid.UUID) -> int:
        return await self.pool.fetchval(
            "SELECT count(*) FROM streams WHERE negotiation_id = $1 AND stream_type = 'issue'", negotiation_id
        )

    async def lock_heads(self, conn: asyncpg.Connection, stream_ids: Sequence[uuid.UUID]) -> None:
        """Hold the heads of these (existing) streams until `conn`'s transaction ends.
        All in one statement, in stream id order, as an append locks them: locks
        taken in any other order could deadlock with another writer's append."""
        await conn.execute(
            "SELECT 1 FROM streams WHERE stream_id = ANY($1::uuid[]) ORDER BY stream_id FOR UPDATE",
            sorted(stream_ids),
        )

    # -- what the chain check reads --------------------------------------------------

    async def chain_links(self, after: tuple[uuid.UUID, int], limit: int) -> list[ChainLink]:
        """Events after (stream id, version), stream by stream in version order."""
        rows = await self.pool.fetch(_CHAIN_SQL, after[0], after[1], limit)
        return [ChainLink(**dict(row)) for row in rows]

    async def chain_events(self, after: tuple[uuid.UUID, int], limit: int) -> list[StoredEvent]:
        """Whole events after (stream id, version), stream by stream in version order,
        as the routes serve them (a body that no longer parses included)."""
        rows = await self.pool.fetch(_CHAIN_EVENTS_SQL, after[0], after[1], limit)
        return [tolerant_event(row) for row in rows]

    async def stream_heads(self) -> AsyncIterator[StreamHead]:
        """Every stream's head as stored (a cursor: constant memory)."""
        async with self.pool.acquire() as conn, conn.transaction():
            async for row in conn.cursor("SELECT stream_id, version, head_hash FROM streams", prefetch=5000):
                yield StreamHead(row["stream_id"], row["version"], row["head_hash"])

    async def sealed_places(self, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, SealedPlace]:
        """Hash and place of each of these events that is stored (missing ids are absent)."""
        rows = await self.pool.fetch(
            """
            SELECT id, hash, txid::text::bigint AS txid, position, stream_id, version
            FROM events WHERE id = ANY($1::uuid[])
            """,
            list(event_ids),
        )
        return {
            row["id"]: SealedPlace(
                hash=row["hash"], txid=row["txid"], position=row["position"],
                stream_id=row["stream_id"], version=row["version"],
            )
            for row in rows
        }  # fmt: skip
