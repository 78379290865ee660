"""What the store takes and gives: the event shapes, places in the log, errors.

Every shape of an event the store knows shares one `EventMeta`, the fields a
writer chooses (which event, where, when, by whom, on what authority):

* `PendingEvent`: what a writer asks to record (meta + the fact's canonical JSON);
* `StoredEvent`: a row of the log (meta + version, place, hashed body, hash).

The served shapes (`service.store.envelope`) and the hashed body
(`service.store.canonical.CanonicalEvent`) are built from `meta()`, so a field
added to EventMeta reaches every shape through one definition.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import msgspec

from service.store.canonical import ImportClaim, body_facts


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


class EventMeta(msgspec.Struct, frozen=True, kw_only=True):
    """The fields every shape of an event carries besides its data and its place."""

    id: uuid.UUID
    stream_id: uuid.UUID
    stream_type: str
    type: str
    schema_version: int
    occurred_on: str
    recorded_by: str
    # Record time is PostgreSQL's clock: None (on a PendingEvent) lets the store take
    # now() of the inserting transaction; a writer that decides with the time first
    # (the command service) passes that same now() (EventStore.clock). Any other
    # time is refused by the events_recorded_at_is_postgres_time trigger.
    recorded_at: dt.datetime | None = None
    negotiation_id: uuid.UUID | None = None
    claimed_by: tuple[str, ...] = ()
    source: dict[str, Any] | None = None
    note: str | None = None
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    # Set by `parley import`: what the source log said of the event (hashed, a claim only).
    import_claim: ImportClaim | None = None

    def meta(self) -> dict[str, Any]:
        """The EventMeta fields by name (to build another shape of the same event)."""
        return {name: getattr(self, name) for name in EventMeta.__struct_fields__}


class PendingEvent(EventMeta, frozen=True, kw_only=True):
    """What a writer asks to record. The store adds version, position and hash."""

    data: bytes  # canonical JSON of the fact's own fields


class StoredEvent(EventMeta, frozen=True, kw_only=True):
    """An event of the log as stored."""

    recorded_at: dt.datetime  # always known once stored
    position: int
    txid: int
    version: int
    body: bytes  # the canonical JSON of the whole event, exactly as hashed
    data: bytes  # the fact's own fields, exactly the bytes inside `body`
    hash: bytes  # sha256(previous hash of the stream || body)

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.txid, self.position)

    def pending(self) -> PendingEvent:
        """The same event as a writer would ask for it (a restore re-appends it)."""
        return PendingEvent(**self.meta(), data=self.data)


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
    # The primary's WAL position past the commit, when the store committed it itself
    # (a caller that commits learns it from EventStore.wake_readers()).
    lsn: int | None = None


# The columns every read of whole events selects, in the names StoredEvent uses.
EVENT_COLUMNS = """
    position, txid::text::bigint AS txid, id, stream_id, stream_type, negotiation_id,
    version, type, schema_version, body, occurred_on, recorded_at,
    recorded_by, claimed_by, source::text AS source, note, correlation_id, causation_id, hash
"""


def row_to_event(row: asyncpg.Record, data: bytes | None = None) -> StoredEvent:
    """A row of `EVENT_COLUMNS` as a StoredEvent. `data` defaults to the fact's
    fields taken from the body; a reader that must serve a damaged body (the audit)
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


def tolerant_event(row: asyncpg.Record) -> StoredEvent:
    """A row of `EVENT_COLUMNS` plus `data_text` as a StoredEvent, even when its body
    no longer parses (the audit must be able to show a damaged record): then the
    queryable copy of its data is served instead of the hashed one."""
    try:
        return row_to_event(row)
    except msgspec.DecodeError:
        return row_to_event(row, row["data_text"].encode())
