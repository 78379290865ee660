"""The event as served: command responses, history, the global log and the export
all use this one shape, so an auditor sees the same thing everywhere."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

from service.store.canonical import ImportClaim
from service.store.event_store import StoredEvent


class EventEnvelope(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    position: int
    stream_id: uuid.UUID
    stream_type: str
    negotiation_id: uuid.UUID | None
    version: int
    type: str
    schema_version: int
    occurred_on: str
    recorded_at: dt.datetime
    recorded_by: str
    claimed_by: list[str]
    source: dict[str, Any] | None
    note: str | None
    # The fact's own fields, exactly the bytes stored in the hashed body.
    data: msgspec.Raw
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    # sha256(previous hash of the stream || body), hex.
    hash: str
    # The commit-order checkpoint of this event ("txid.position"): resume after it.
    checkpoint: str
    # Set by `parley import`: what the source log said (its hash, time, recorder), a claim only.
    import_claim: ImportClaim | None = None
    # Command responses only (null elsewhere): the log's signed receipt for this
    # event (service.audit.receipts, docs/audit-format.md §7), to keep and later
    # exchange for an inclusion proof (POST /ledger/receipts). Not a fact: unhashed.
    receipt: str | None = None


class ExportedEvent(EventEnvelope, kw_only=True):
    """A line of the NDJSON export: the envelope plus the exact hashed bytes, so the
    chain can be verified offline without trusting any re-serialisation."""

    body: str  # the canonical JSON body, as UTF-8 text
    # The event's leaf in the ledger's tree (lines come in leaf order); None: not sealed yet.
    leaf_index: int | None = None


def envelope(event: StoredEvent) -> EventEnvelope:
    # Every EventMeta field by name (a field added there that the envelope lacks
    # fails here at once, never dropped silently), then what only a stored event has.
    return EventEnvelope(
        **{**event.meta(), "claimed_by": list(event.claimed_by)},
        position=event.position,
        version=event.version,
        data=msgspec.Raw(event.data),
        hash=event.hash.hex(),
        checkpoint=event.checkpoint.token(),
    )


def exported(event: StoredEvent, *, leaf_index: int | None = None) -> ExportedEvent:
    served = envelope(event)
    return ExportedEvent(**msgspec.structs.asdict(served), body=event.body.decode(), leaf_index=leaf_index)
