"""Appending to the log: optimistic concurrency per stream, idempotent by event id,
hash-chained, without a table lock (the one code that writes events and streams).

Each stream is a hash chain: `hash = sha256(previous hash || body)`, with `body`
the canonical JSON bytes of the event (service.store.canonical), stored and
served exactly as hashed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping, Sequence

import asyncpg
import msgspec

from service.store.canonical import CanonicalEvent, canonical_encoder, chain_hash, timestamp_text
from service.store.events import (
    EVENT_COLUMNS,
    AppendResult,
    ConcurrencyError,
    EventIdReused,
    PendingEvent,
    row_to_event,
)
from service.store.log_reader import NOTIFY_CHANNEL


def _canonical(event: PendingEvent, version: int, recorded_at: str) -> bytes:
    return canonical_encoder.encode(
        CanonicalEvent(**{**event.meta(), "recorded_at": recorded_at}, version=version, data=msgspec.Raw(event.data))
    )


def canonical_body(event: PendingEvent, version: int, recorded_at: dt.datetime | None = None) -> bytes:
    moment = event.recorded_at or recorded_at
    if moment is None:
        raise ValueError("an event's body needs its record time")
    return _canonical(event, version, timestamp_text(moment))


def content_digest(event: PendingEvent) -> bytes:
    """What makes a retry "the same event": everything the writer chose, not the
    server's clock, which differs on every retry."""
    return hashlib.sha256(_canonical(event, 0, "")).digest()


async def append_in(
    conn: asyncpg.Connection,
    events: Sequence[PendingEvent],
    expected: Mapping[uuid.UUID, int | None],
    *,
    wake_readers: bool,
) -> AppendResult:
    """The append inside the caller's transaction (see EventStore.append)."""
    ids = [e.id for e in events]
    if len(set(ids)) != len(ids):
        raise ValueError("the same event id twice in one append")
    streams: dict[uuid.UUID, PendingEvent] = {}
    for event in events:
        streams.setdefault(event.stream_id, event)
    ordered = sorted(streams)
    # One round trip: lock every stream head (creating new streams) and look the
    # ids up. Each statement while the heads are locked makes the hottest stream
    # wait, so the append is two statements, not one per step.
    found = await conn.fetch(
        _LOCK_HEADS_SQL,
        ordered,
        [streams[s].stream_type for s in ordered],
        [streams[s].negotiation_id for s in ordered],
        ids,
    )
    existing = {r["id"]: r["content_digest"] for r in found if r["id"] is not None}
    if existing:
        return await _replay(conn, events, existing)
    heads: dict[uuid.UUID, tuple[int, bytes]] = {
        r["stream_id"]: (r["version"], r["head_hash"]) for r in found if r["stream_id"] is not None
    }
    clock = next(r["clock"] for r in found if r["clock"] is not None)
    for stream_id in ordered:
        want = expected.get(stream_id)
        if want is not None and want != heads[stream_id][0]:
            raise ConcurrencyError(stream_id, want, heads[stream_id][0])
    for stream_id, want in expected.items():
        if stream_id not in streams and want is not None:
            raise ValueError(f"expected version given for stream {stream_id} that is not written")

    rows = []
    for event in events:
        version, previous = heads[event.stream_id]
        version += 1
        recorded_at = event.recorded_at or clock
        body = canonical_body(event, version, recorded_at)
        digest = chain_hash(previous, body)
        heads[event.stream_id] = (version, digest)
        rows.append(
            (
                event.id,
                event.stream_id,
                event.stream_type,
                event.negotiation_id,
                version,
                event.type,
                event.schema_version,
                body,
                event.data.decode(),
                event.occurred_on,
                recorded_at,
                event.recorded_by,
                list(event.claimed_by),
                msgspec.json.encode(event.source).decode() if event.source is not None else None,
                event.note,
                event.correlation_id,
                event.causation_id,
                content_digest(event),
                digest,
            )
        )
    # Events, new stream heads and the wake-up for readers in one statement.
    inserted = await conn.fetch(
        _APPEND_AND_WAKE_SQL if wake_readers else _APPEND_SQL,
        *_columns(rows),
        list(heads),
        [version for version, _ in heads.values()],
        [head_hash for _, head_hash in heads.values()],
    )
    stored = sorted((row_to_event(r) for r in inserted), key=lambda e: e.position)
    return AppendResult(events=stored, checkpoint=stored[-1].checkpoint)


async def _replay(
    conn: asyncpg.Connection,
    events: Sequence[PendingEvent],
    digests: dict[uuid.UUID, bytes],
) -> AppendResult:
    for event in events:
        if digests.get(event.id) != content_digest(event):
            raise EventIdReused(event.id)
    rows = await conn.fetch(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ANY($1::uuid[]) ORDER BY position",
        [e.id for e in events],
    )
    stored = [row_to_event(r) for r in rows]
    return AppendResult(events=stored, checkpoint=max(e.checkpoint for e in stored), replayed=True)


_INSERT_SQL = f"""
    INSERT INTO events (
        id, stream_id, stream_type, negotiation_id, version, type, schema_version,
        body, data, occurred_on, recorded_at, recorded_by, claimed_by, source, note,
        correlation_id, causation_id, content_digest, hash)
    SELECT id, stream_id, stream_type, negotiation_id, version, type, schema_version,
        body, data, occurred_on, recorded_at, recorded_by,
        -- unnest cannot carry an array per row; claimed_by travels as JSON text
        ARRAY(SELECT jsonb_array_elements_text(claimed_by)), source, note,
        correlation_id, causation_id, content_digest, hash
    FROM unnest(
        $1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::int[], $6::text[], $7::int[],
        $8::bytea[], $9::jsonb[], $10::text[], $11::timestamptz[], $12::text[], $13::jsonb[],
        $14::jsonb[], $15::text[], $16::uuid[], $17::uuid[], $18::bytea[], $19::bytea[])
        WITH ORDINALITY AS batch(id, stream_id, stream_type, negotiation_id, version, type,
            schema_version, body, data, occurred_on, recorded_at, recorded_by, claimed_by,
            source, note, correlation_id, causation_id, content_digest, hash, ord)
    ORDER BY ord
    RETURNING {EVENT_COLUMNS}
"""


# Locks the heads in stream id order (two multi-stream appends cannot deadlock; writers
# to other streams never wait on each other). DO UPDATE, unlike DO NOTHING, returns and
# locks a head that already exists, or that a concurrent writer has just created.
_LOCK_HEADS_SQL = """
    WITH heads AS (
        INSERT INTO streams (stream_id, stream_type, negotiation_id)
        SELECT stream_id, stream_type, negotiation_id
        FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS s(stream_id, stream_type, negotiation_id)
        ORDER BY stream_id
        ON CONFLICT (stream_id) DO UPDATE SET stream_id = EXCLUDED.stream_id
        RETURNING stream_id, version, head_hash
    )
    -- now(): the record time of every event of this transaction (PostgreSQL's clock).
    SELECT stream_id, version, head_hash, NULL::uuid AS id, NULL::bytea AS content_digest, now() AS clock
    FROM heads
    UNION ALL
    SELECT NULL, NULL, NULL, id, content_digest, NULL FROM events WHERE id = ANY($4::uuid[])
"""

_INSERT_AND_MOVE_HEADS = f"""
    WITH inserted AS ({_INSERT_SQL}),
    moved AS (
        UPDATE streams SET version = head.version, head_hash = head.head_hash
        FROM unnest($20::uuid[], $21::int[], $22::bytea[]) AS head(stream_id, version, head_hash)
        WHERE streams.stream_id = head.stream_id
    )"""

_APPEND_SQL = f"""{_INSERT_AND_MOVE_HEADS}
    SELECT * FROM inserted
"""

_APPEND_AND_WAKE_SQL = f"""{_INSERT_AND_MOVE_HEADS},
    -- A CTE with a volatile function is evaluated once, not once per event.
    woken AS (SELECT pg_notify('{NOTIFY_CHANNEL}', ''))
    SELECT inserted.* FROM inserted, woken
"""


def _columns(rows: list[tuple]) -> list[list]:
    columns = [list(column) for column in zip(*rows)]
    columns[12] = [msgspec.json.encode(claimed).decode() for claimed in columns[12]]
    return columns
