"""What is served against what was hashed: one comparison for every verifier
(`/audit/verify`, `parley audit verify`, `parley import`). Pure, no I/O.

Every field a reader is served beside the hashed body (docs/audit-format.md §2)
must equal the body's: a column changed on its own shows here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from service.store.canonical import CanonicalEvent, canonical_decoder, timestamp_text
from service.store.envelope import EventEnvelope

__all__ = ["disagreements", "served_disagreements"]


def disagreements(event: EventEnvelope, hashed: CanonicalEvent) -> list[str]:
    """The served facts of `event` that are not what its body hashed (docs/audit-format.md §2)."""
    pairs = {
        "id": (event.id, hashed.id),
        "stream_id": (event.stream_id, hashed.stream_id),
        "stream_type": (event.stream_type, hashed.stream_type),
        "version": (event.version, hashed.version),
        "type": (event.type, hashed.type),
        "schema_version": (event.schema_version, hashed.schema_version),
        "occurred_on": (event.occurred_on, hashed.occurred_on),
        "recorded_at": (timestamp_text(event.recorded_at), hashed.recorded_at),
        "recorded_by": (event.recorded_by, hashed.recorded_by),
        # As JSON values: an export re-serialised by another tool keeps its meaning.
        "data": (_json_value(event.data), _json_value(hashed.data)),
        "claimed_by": (tuple(event.claimed_by), hashed.claimed_by),
        "source": (event.source, hashed.source),
        "note": (event.note, hashed.note),
        "negotiation_id": (event.negotiation_id, hashed.negotiation_id),
        "correlation_id": (event.correlation_id, hashed.correlation_id),
        "causation_id": (event.causation_id, hashed.causation_id),
        "import_claim": (event.import_claim, hashed.import_claim),
    }
    return [name for name, (served, signed) in pairs.items() if served != signed]


def _json_value(raw: msgspec.Raw) -> Any:
    try:
        return msgspec.json.decode(bytes(raw))
    except msgspec.DecodeError:
        return raw  # unreadable: compared as bytes, and the body check names it


def served_disagreements(event: EventEnvelope, body: bytes) -> list[str]:
    """`disagreements` with the body still to decode: ["body"] if it is not an event."""
    try:
        return disagreements(event, canonical_decoder.decode(body))
    except msgspec.DecodeError:
        return ["body"]
