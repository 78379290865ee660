"""The event store: a lock-free, append-only log of events in PostgreSQL (asyncpg).

Writers never take a table lock. Positions come from a sequence at insert time, so
transactions can commit out of order; a reader that only asks for `position > last`
would skip an event that commits after a higher position was already read. Readers
here follow `(txid, position)` and only read rows whose transaction id is below the
oldest transaction still running (`pg_snapshot_xmin(pg_current_snapshot())`): every
transaction below that line has finished, so no row can appear behind a checkpoint.

Every stream is a hash chain: `hash = sha256(previous hash || body)`, with `body`
the canonical JSON bytes of the event, stored and served exactly as hashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import asyncpg
import msgspec

from service.store.canonical import (
    CanonicalEvent,
    ImportClaim,
    body_facts,
    canonical_encoder,
    chain_hash,
    timestamp_text,
)
from service.store.canonical import ZERO_HASH as ZERO_HASH  # re-exported: callers speak of the chain as the store's

log = logging.getLogger("parley.store")

NOTIFY_CHANNEL = "parley_events"


class Checkpoint(msgspec.Struct, frozen=True, order=True):
    """A place in the global log: readers resume strictly after it."""

    txid: int
    position: int

    def token(self) -> str:
        return f"{self.txid}.{self.position}"

    @classmethod
    def parse(cls, token: str) -> "Checkpoint":
        txid, _, position = token.partition(".")
        if not (txid.isdigit() and position.isdigit()):
            raise ValueError(f"not a log checkpoint: {token!r}")
        return cls(int(txid), int(position))


START = Checkpoint(0, 0)


class PendingEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What a writer asks to record. The store adds version, position and hash."""

    id: uuid.UUID
    stream_id: uuid.UUID
    stream_type: str
    type: str
    schema_version: int
    data: bytes  # canonical JSON of the fact's own fields
    occurred_on: str
    recorded_by: str
    # Record time is PostgreSQL's clock: None lets the store take now() of the
    # inserting transaction; a writer that decides with the time first (the command
    # service) passes that same now() (EventStore.clock). Any other time is refused
    # by the events_recorded_at_is_postgres_time trigger.
    recorded_at: dt.datetime | None = None
    negotiation_id: uuid.UUID | None = None
    claimed_by: tuple[str, ...] = ()
    source: dict[str, Any] | None = None
    note: str | None = None
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    import_claim: ImportClaim | None = None


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    txid: int
    id: uuid.UUID
    stream_id: uuid.UUID
    stream_type: str
    negotiation_id: uuid.UUID | None
    version: int
    type: str
    schema_version: int
    body: bytes
    data: bytes
    occurred_on: str
    recorded_at: dt.datetime
    recorded_by: str
    claimed_by: tuple[str, ...]
    source: dict[str, Any] | None
    note: str | None
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    hash: bytes
    import_claim: ImportClaim | None = None

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.txid, self.position)


def _canonical(event: PendingEvent, version: int, recorded_at: str) -> bytes:
    return canonical_encoder.encode(
        CanonicalEvent(
            id=event.id,
            stream_id=event.stream_id,
            stream_type=event.stream_type,
            version=version,
            type=event.type,
            schema_version=event.schema_version,
            occurred_on=event.occurred_on,
            recorded_at=recorded_at,
            recorded_by=event.recorded_by,
            data=msgspec.Raw(event.data),
            claimed_by=event.claimed_by,
            source=event.source,
            note=event.note,
            negotiation_id=event.negotiation_id,
            correlation_id=event.correlation_id,
            causation_id=event.causation_id,
            import_claim=event.import_claim,
        )
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


class StoreError(Exception):
    pass


class ConcurrencyError(StoreError):
    """A stream was not at the version the writer expected."""

    def __init__(self, stream_id: uuid.UUID, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream_id} is at version {actual}, not {expected}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class EventIdReused(StoreError):
    """An event id already recorded with other content (ids are idempotency keys)."""

    def __init__(self, event_id: uuid.UUID) -> None:
        super().__init__(f"event id {event_id} is already recorded with other content")
        self.event_id = event_id


class AppendResult(msgspec.Struct, frozen=True):
    events: list[StoredEvent]
    # The commit-order place of the last event written: readers that have passed it
    # reflect this write (the consistency token of the API).
    checkpoint: Checkpoint
    replayed: bool = False


_EVENT_COLUMNS = """
    position, txid::text::bigint AS txid, id, stream_id, stream_type, negotiation_id,
    version, type, schema_version, body, occurred_on, recorded_at,
    recorded_by, claimed_by, source::text AS source, note, correlation_id, causation_id, hash
"""


def row_to_event(row: asyncpg.Record, data: bytes | None = None) -> StoredEvent:
    """A row of `_EVENT_COLUMNS` as a StoredEvent. `data` defaults to the fact's
    fields taken from the body; a caller that must serve a damaged body (the audit)
    passes its own."""
    source = row["source"]
    body = row["body"]
    facts = body_facts(body) if data is None else None
    return StoredEvent(
        position=row["position"],
        txid=row["txid"],
        id=row["id"],
        stream_id=row["stream_id"],
        stream_type=row["stream_type"],
        negotiation_id=row["negotiation_id"],
        version=row["version"],
        type=row["type"],
        schema_version=row["schema_version"],
        body=body,
        # The fact's fields exactly as hashed (the jsonb copy is normalised by PostgreSQL).
        data=bytes(facts.data) if facts is not None else data,
        occurred_on=row["occurred_on"],
        recorded_at=row["recorded_at"],
        recorded_by=row["recorded_by"],
        claimed_by=tuple(row["claimed_by"]),
        source=msgspec.json.decode(source) if source is not None else None,
        note=row["note"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        hash=row["hash"],
        import_claim=facts.import_claim if facts is not None else None,
    )


class EventStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- writing -----------------------------------------------------------------

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
            return await self._append(conn, events, expected or {}, wake_readers=wake_readers)
        async with self.pool.acquire() as own:
            for attempt in range(3):
                try:
                    async with own.transaction():
                        result = await self._append(own, events, expected or {}, wake_readers=False)
                    # NOTIFY takes a database-wide lock held until its transaction has
                    # committed (WAL flush included), which would serialise every
                    # appending commit; sent after ours, from a transaction that
                    # writes nothing, it holds that lock for microseconds.
                    if not result.replayed:
                        await self.wake_readers(own)
                    return result
                except asyncpg.UniqueViolationError as error:
                    # A concurrent writer inserted one of these ids between our check
                    # and our insert: the next attempt sees it and answers as a retry.
                    if error.constraint_name != "events_id_key" or attempt == 2:
                        raise
            raise AssertionError("unreachable")

    async def wake_readers(self, conn: asyncpg.Connection | None = None) -> None:
        """Wake subscribers: new events have committed. Never raises: the events are
        already committed, and a lost wake-up only leaves readers to their polling."""
        try:
            await (conn or self.pool).execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("could not wake log readers (they will poll): %s", error)

    async def _append(
        self,
        conn: asyncpg.Connection,
        events: Sequence[PendingEvent],
        expected: Mapping[uuid.UUID, int | None],
        *,
        wake_readers: bool,
    ) -> AppendResult:
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
            return await self._replay(conn, events, existing)
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
        self,
        conn: asyncpg.Connection,
        events: Sequence[PendingEvent],
        digests: dict[uuid.UUID, bytes],
    ) -> AppendResult:
        for event in events:
            if digests.get(event.id) != content_digest(event):
                raise EventIdReused(event.id)
        rows = await conn.fetch(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ANY($1::uuid[]) ORDER BY position",
            [e.id for e in events],
        )
        stored = [row_to_event(r) for r in rows]
        return AppendResult(events=stored, checkpoint=max(e.checkpoint for e in stored), replayed=True)

    @staticmethod
    async def clock(conn: asyncpg.Connection) -> dt.datetime:
        """The record time of what `conn`'s transaction appends: PostgreSQL's now()."""
        return await conn.fetchval("SELECT now()")

    # -- reading -----------------------------------------------------------------

    async def stream_version(self, stream_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> int:
        runner = conn or self.pool
        version = await runner.fetchval("SELECT version FROM streams WHERE stream_id = $1", stream_id)
        return version or 0

    async def read_stream(
        self,
        stream_id: uuid.UUID,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> list[StoredEvent]:
        runner = conn or self.pool
        rows = await runner.fetch(
            f"""
            SELECT {_EVENT_COLUMNS} FROM events
            WHERE stream_id = $1 AND version >= $2 AND ($3::int IS NULL OR version <= $3)
            ORDER BY version
            """,
            stream_id,
            from_version,
            to_version,
        )
        return [row_to_event(r) for r in rows]

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

    async def get_event(self, event_id: uuid.UUID) -> StoredEvent | None:
        row = await self.pool.fetchrow(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = $1", event_id)
        return row_to_event(row) if row is not None else None

    async def read_log(
        self,
        after: Checkpoint = START,
        limit: int = 1000,
        *,
        negotiation_id: uuid.UUID | None = None,
        stream_id: uuid.UUID | None = None,
        types: Sequence[str] | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> list[StoredEvent]:
        """The global log after a checkpoint, in commit order, never skipping an event.

        Only transactions below the oldest one still running are read: an event whose
        transaction may yet commit is waited for rather than passed over.
        """
        runner = conn or self.pool
        rows = await runner.fetch(
            f"""
            SELECT {_EVENT_COLUMNS} FROM events
            WHERE (txid, position) > ($1::text::xid8, $2)
              AND txid < pg_snapshot_xmin(pg_current_snapshot())
              AND ($4::uuid IS NULL OR negotiation_id = $4)
              AND ($5::uuid IS NULL OR stream_id = $5)
              AND ($6::text[] IS NULL OR type = ANY($6))
            -- events.txid, not the bigint txid output column: that would sort the whole log
            ORDER BY events.txid, events.position
            LIMIT $3
            """,
            str(after.txid),
            after.position,
            limit,
            negotiation_id,
            stream_id,
            list(types) if types else None,
        )
        return [row_to_event(r) for r in rows]

    async def head(self) -> Checkpoint:
        """The last event a gap-free reader can see now (START for an empty log)."""
        row = await self.pool.fetchrow(
            """
            SELECT txid::text::bigint AS txid, position FROM events
            WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY events.txid DESC, events.position DESC LIMIT 1
            """
        )
        return Checkpoint(row["txid"], row["position"]) if row else START

    async def subscribe(
        self,
        after: Checkpoint = START,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        stop: asyncio.Event | None = None,
    ) -> AsyncIterator[list[StoredEvent]]:
        """Yield batches of new events for ever (until `stop` is set), resuming after
        `after`. LISTEN/NOTIFY wakes the reader; polling covers a lost notification or
        a transaction that was still running when the notification came."""
        wake = asyncio.Event()

        def on_notify(*_: object) -> None:
            wake.set()

        listener = await self.pool.acquire()
        try:
            await listener.add_listener(NOTIFY_CHANNEL, on_notify)
            checkpoint = after
            while stop is None or not stop.is_set():
                wake.clear()
                batch = await self.read_log(checkpoint, batch_size)
                if batch:
                    checkpoint = batch[-1].checkpoint
                    yield batch
                    continue
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), poll_interval)
        finally:
            with contextlib.suppress(Exception):
                await listener.remove_listener(NOTIFY_CHANNEL, on_notify)
            await self.pool.release(listener)


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
    RETURNING {_EVENT_COLUMNS}
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
