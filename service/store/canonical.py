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


canonical_encoder = msgspec.json.Encoder(order="sorted")
canonical_decoder = msgspec.json.Decoder(CanonicalEvent)


def timestamp_text(moment: dt.datetime) -> str:
    """The one fixed text form of a hashed timestamp: UTC, microseconds, "Z"."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chain_hash(previous: bytes, body: bytes) -> bytes:
    return hashlib.sha256(previous + body).digest()


class _BodyData(msgspec.Struct):
    data: msgspec.Raw


_body_data = msgspec.json.Decoder(_BodyData)


def body_data(body: bytes) -> bytes:
    """The fact's own fields exactly as hashed in `body` (raises msgspec.DecodeError
    if the body does not parse)."""
    return bytes(_body_data.decode(body).data)
