"""Appending to the log: optimistic concurrency per stream, idempotent by event id,
hash-chained, without a table lock (the one code that writes events and streams).

Each stream is a hash chain: `hash = sha256(previous hash || body)`, with `body`
the canonical JSON bytes of the event (service.store.canonical), stored and
served exactly as hashed.

An append is one statement, the `parley_append` function of migration 0060: the
writer sends each body as two pieces around its record time and version (which
only the server knows once it holds the heads), and the server locks the heads,
checks ids and expected versions, finishes and chains the bodies, inserts and
moves the heads. Outside a transaction that one statement is the whole append.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping, Sequence

import asyncpg
import msgspec

from service import tracing
from service.store.canonical import CanonicalEvent, canonical_encoder, timestamp_text
from service.store.events import (
    EVENT_COLUMNS,
    AppendResult,
    ConcurrencyError,
    EventIdReused,
    PendingEvent,
    row_to_event,
)


def _canonical(event: PendingEvent, version: int, recorded_at: str) -> bytes:
    return canonical_encoder.encode(
        CanonicalEvent(**{**event.meta(), "recorded_at": recorded_at}, version=version, data=msgspec.Raw(event.data))
    )


def canonical_body(event: PendingEvent, version: int, recorded_at: dt.datetime | None = None) -> bytes:
    moment = event.recorded_at or recorded_at
    if moment is None:
        raise ValueError("an event's body needs its record time")
    return _canonical(event, version, timestamp_text(moment))


def _piece(name: str, keep) -> type[msgspec.Struct]:
    fields = []
    for field in msgspec.structs.fields(CanonicalEvent):
        if keep(field.encode_name):
            if field.default is not msgspec.NODEFAULT:
                fields.append((field.name, field.type, field.default))
            elif field.default_factory is not msgspec.NODEFAULT:
                fields.append((field.name, field.type, msgspec.field(default_factory=field.default_factory)))
            else:
                fields.append((field.name, field.type))
    return msgspec.defstruct(name, fields, kw_only=True, omit_defaults=True)


# The canonical body sorts its keys: everything before "recorded_at", the record
# time, everything after it, and "version", the last key of all. The two pieces
# are encoded like the whole (same encoder, same fields and defaults), so
# head + time + tail + version + "}" is byte for byte canonical_body's result
# (tests/unit/test_body_pieces.py); the server finishes the body (migration 0060).
_KEYS = sorted(f.encode_name for f in msgspec.structs.fields(CanonicalEvent))
assert _KEYS[-1] == "version" and "recorded_at" in _KEYS
_Head = _piece("CanonicalHead", lambda key: key < "recorded_at")
_Tail = _piece("CanonicalTail", lambda key: "recorded_at" < key < "version")


def body_pieces(event: PendingEvent) -> tuple[bytes, bytes]:
    """The event's canonical body without its record time and version, as the
    two pieces around them: body = head + time text + tail + version + b"}"."""
    values = {**event.meta(), "data": msgspec.Raw(event.data)}
    head = canonical_encoder.encode(_Head(**{f: values[f] for f in _Head.__struct_fields__}))
    tail = canonical_encoder.encode(_Tail(**{f: values[f] for f in _Tail.__struct_fields__}))
    return head[:-1] + b',"recorded_at":"', b'",' + tail[1:-1] + b',"version":'


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
    """The append as ONE statement (the parley_append function of migration 0060):
    it locks the heads in stream id order, checks the ids and the expected
    versions, finishes each body with its record time and version, chains it,
    inserts and moves the heads. Atomic on its own (a connection outside a
    transaction needs no BEGIN/COMMIT) or inside the caller's transaction."""
    ids = [e.id for e in events]
    if len(set(ids)) != len(ids):
        raise ValueError("the same event id twice in one append")
    streams: dict[uuid.UUID, PendingEvent] = {}
    for event in events:
        streams.setdefault(event.stream_id, event)
    for stream_id, want in expected.items():
        if stream_id not in streams and want is not None:
            raise ValueError(f"expected version given for stream {stream_id} that is not written")
    ordered = sorted(streams)
    pieces = [body_pieces(e) for e in events]
    try:
        with tracing.span("parley.append", {"parley.events": len(events), "parley.streams": len(ordered)}):
            rows = await conn.fetch(
                _APPEND_SQL,
                ordered,
                [streams[s].stream_type for s in ordered],
                [streams[s].negotiation_id for s in ordered],
                [expected.get(s) for s in ordered],
                ids,
                [e.stream_id for e in events],
                [e.stream_type for e in events],
                [e.negotiation_id for e in events],
                [e.type for e in events],
                [e.schema_version for e in events],
                [head for head, _ in pieces],
                [tail for _, tail in pieces],
                [e.data.decode() for e in events],
                [e.occurred_on for e in events],
                [e.recorded_at for e in events],
                [e.recorded_by for e in events],
                [msgspec.json.encode(e.claimed_by).decode() for e in events],
                [msgspec.json.encode(e.source).decode() if e.source is not None else None for e in events],
                [e.note for e in events],
                [e.correlation_id for e in events],
                [e.causation_id for e in events],
                [content_digest(e) for e in events],
                wake_readers,
            )
    except asyncpg.PostgresError as error:
        if getattr(error, "sqlstate", None) == CONFLICT_SQLSTATE:
            stream, want, actual = (error.detail or "").split()
            raise ConcurrencyError(uuid.UUID(stream), int(want), int(actual)) from None
        raise
    if rows and rows[0]["outcome"] == "exists":
        return await _replay(conn, events, {r["id"]: r["content_digest"] for r in rows})
    stored = [row_to_event(r) for r in rows]
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


# What parley_append raises when a stream is not at the version the writer expected
# (detail: "<stream id> <expected> <actual>").
CONFLICT_SQLSTATE = "PV409"

_APPEND_SQL = """
    SELECT * FROM parley_append(
        $1::uuid[], $2::text[], $3::uuid[], $4::int[], $5::uuid[], $6::uuid[], $7::text[], $8::uuid[],
        $9::text[], $10::int[], $11::bytea[], $12::bytea[], $13::jsonb[], $14::text[], $15::timestamptz[],
        $16::text[], $17::jsonb[], $18::jsonb[], $19::text[], $20::uuid[], $21::uuid[], $22::bytea[], $23::boolean)
"""
