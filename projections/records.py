"""From a stored event to what the domain folds, and the facts projections apply.

`recorded_from_stored` is the one converter from an event as the store returns
it (`service.store.event_store.StoredEvent`) to a `domain.records.Recorded`. It is typed
structurally (`StoredEventLike`) so that `projections` does not import
`service`: dependencies point domain <- projections <- service.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import msgspec

from domain.events import UnknownEventType, decode_data
from domain.records import Recorded, Source


class StoredEventLike(Protocol):
    """The attributes of `service.store.event_store.StoredEvent` that a Recorded needs."""

    position: int
    txid: int
    id: uuid.UUID
    stream_id: uuid.UUID
    stream_type: str
    negotiation_id: uuid.UUID | None
    version: int
    type: str
    schema_version: int
    data: bytes
    occurred_on: str
    recorded_at: dt.datetime
    recorded_by: str
    claimed_by: tuple[str, ...]
    source: dict[str, Any] | None
    note: str | None


class UnreadableEvent(ValueError):
    """A stored event whose data no payload of this code decodes (a poison event:
    the same bytes fail the same way every time). The projection runner stops at
    it and reports it; the API answers a 503 problem naming it."""

    def __init__(self, event: StoredEventLike, error: Exception) -> None:
        super().__init__(f"event {event.id} ({event.type} v{event.schema_version}) cannot be read: {error}")
        self.event_id = event.id
        self.stream_id = event.stream_id
        self.negotiation_id = event.negotiation_id or event.stream_id
        self.type = event.type


def recorded_from_stored(event: StoredEventLike) -> Recorded:
    """A stored event as the domain sees it: payload decoded (and upcast from
    any past schema version), source as a Struct. UnreadableEvent when it does
    not decode."""
    try:
        data = decode_data(event.type, event.schema_version, event.data)
        source = msgspec.convert(event.source, Source) if event.source is not None else None
    except (msgspec.ValidationError, msgspec.DecodeError, UnknownEventType, KeyError, TypeError) as error:
        # (KeyError, TypeError: an upcaster meeting old bytes it cannot rewrite.)
        raise UnreadableEvent(event, error) from error
    return Recorded(
        id=event.id,
        stream_id=event.stream_id,
        stream_type=event.stream_type,
        version=event.version,
        type=event.type,
        schema_version=event.schema_version,
        occurred_on=event.occurred_on,
        recorded_at=event.recorded_at,
        recorded_by=event.recorded_by,
        data=data,
        claimed_by=tuple(event.claimed_by),
        source=source,
        note=event.note,
        position=event.position,
    )


class Fact(msgspec.Struct, frozen=True):
    """One event of the log as a projection applies it."""

    record: Recorded
    # The negotiation the stream belongs to (a negotiation stream's own id).
    negotiation_id: uuid.UUID


def fact_from_stored(event: StoredEventLike) -> Fact:
    return Fact(recorded_from_stored(event), event.negotiation_id or event.stream_id)


# Loads a stream's records with from_version <= version <= to_version, in
# version order, inside the caller's transaction. The runner provides it (it
# owns the store); a projection calls it when the log delivered a stream's
# events out of version order, or when its fold cache is cold.
StreamHistory = Callable[[uuid.UUID, int, int], Awaitable[list[Recorded]]]


def by_stream(facts: Sequence[Fact]) -> dict[uuid.UUID, list[Fact]]:
    """A batch grouped by stream, each group in version order.

    The log's commit order is (txid, position); a transaction that took its txid
    before waiting on a stream's head lock can commit version v+1 of a stream at
    a lower txid than version v. Folds always go in version order.
    """
    grouped: dict[uuid.UUID, list[Fact]] = {}
    for fact in facts:
        grouped.setdefault(fact.record.stream_id, []).append(fact)
    for group in grouped.values():
        group.sort(key=lambda f: f.record.version)
    return grouped
