"""The two ends of a write in the shapes beside it: a decided event as the store
records it (`pending_event`), and an append's result as the command's answer
(`outcome_of`: the served events with their signed receipts, the consistency token,
the encoded body kept for an Idempotency-Key replay)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from domain.decide import CommandMeta, NewEvent
from domain.events import encode_data
from service.audit.receipts import sign_receipt
from service.store.canonical import ImportClaim
from service.store.envelope import envelope
from service.store.event_store import AppendResult, PendingEvent
from service.write.requests import CommandResult, Outcome

_encoder = msgspec.json.Encoder()


def pending_event(
    event: NewEvent,
    *,
    event_id: uuid.UUID,
    stream_id: uuid.UUID,
    negotiation_id: uuid.UUID,
    meta: CommandMeta,
    import_claim: ImportClaim | None = None,
    correlation_id: uuid.UUID | None = None,
) -> PendingEvent:
    """A decided event as the store records it (every event carries its negotiation;
    a re-recorded one its import claim; one written for an HTTP request that
    request's id as its correlation_id)."""
    return PendingEvent(
        id=event_id,
        stream_id=stream_id,
        stream_type=event.stream,
        type=event.type,
        schema_version=event.schema_version,
        data=encode_data(event.data),
        occurred_on=event.occurred_on,
        recorded_by=meta.recorded_by,
        recorded_at=meta.recorded_at,
        negotiation_id=negotiation_id,
        claimed_by=tuple(event.claimed_by),
        source=msgspec.to_builtins(event.source) if event.source is not None else None,
        note=event.note,
        import_claim=import_claim,
        correlation_id=correlation_id,
    )


def outcome_of(
    negotiation_id: uuid.UUID, result: AppendResult, location: str | None = None, receipts: Any = None
) -> Outcome:
    # Each event with the log's signed receipt when this service signs them
    # (`receipts`: the ledger key, service.audit.receipts); a replayed answer is
    # the stored one, receipts included.
    events = [envelope(e) for e in result.events]
    if receipts is not None:
        events = [
            msgspec.structs.replace(served, receipt=sign_receipt(receipts, event))
            for served, event in zip(events, result.events)
        ]
    response = CommandResult(
        negotiation_id=negotiation_id,
        events=events,
        consistency_token=result.checkpoint.token(),
    )
    written = 0 if result.replayed else len(result.events)
    return Outcome(
        _encoder.encode(response), location, events_written=written, response=response, checkpoint=result.checkpoint
    )
