"""The hashed form of an event: one definition for the store that writes it and
the audits (database and offline) that check it. Pure: no database here.

A stream is a hash chain, `hash = sha256(previous hash || body)` from
`ZERO_HASH`, with `body` the canonical JSON of :class:`CanonicalEvent` (keys
sorted, defaults omitted), stored and served exactly as hashed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

import msgspec

ZERO_HASH = bytes(32)


class ImportClaim(msgspec.Struct, frozen=True, kw_only=True):
    """What another log said about an event that `parley import` re-recorded here:
    kept as a claim beside this log's own record time and chain (docs/audit-format.md §8)."""

    hash: str  # hex: the event's hash in the source log
    recorded_at: str  # timestamp text, as the source log recorded it
    recorded_by: str


class CanonicalEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The hashed form of an event. Field order is irrelevant: keys are sorted.

    Decoding a body gives the defaults for the fields it omits.
    """

    id: uuid.UUID
    stream_id: uuid.UUID
    stream_type: str
    version: int
    type: str
    schema_version: int
    occurred_on: str
    recorded_at: str
    recorded_by: str
    data: msgspec.Raw
    claimed_by: tuple[str, ...] = ()
    source: dict[str, Any] | None = None
    note: str | None = None
    negotiation_id: uuid.UUID | None = None
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    import_claim: ImportClaim | None = None


canonical_encoder = msgspec.json.Encoder(order="sorted")
canonical_decoder = msgspec.json.Decoder(CanonicalEvent)


def timestamp_text(moment: dt.datetime) -> str:
    """The one fixed text form of a hashed timestamp: UTC, microseconds, "Z"."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chain_hash(previous: bytes, body: bytes) -> bytes:
    return hashlib.sha256(previous + body).digest()


class BodyFacts(msgspec.Struct):
    """What readers take from a body besides the columns: the fact's own fields
    exactly as hashed, and the import claim."""

    data: msgspec.Raw
    import_claim: ImportClaim | None = None


_body_facts = msgspec.json.Decoder(BodyFacts)


def body_facts(body: bytes) -> BodyFacts:
    """(raises msgspec.DecodeError if the body does not parse)"""
    return _body_facts.decode(body)


def body_data(body: bytes) -> bytes:
    """The fact's own fields exactly as hashed in `body` (raises msgspec.DecodeError
    if the body does not parse)."""
    return bytes(_body_facts.decode(body).data)
