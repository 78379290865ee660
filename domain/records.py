"""What every recorded fact carries besides its own payload."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated

import msgspec

from domain.world_time import DATE_PATTERN

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class Source(msgspec.Struct, omit_defaults=True, frozen=True, forbid_unknown_fields=False):
    """Where a fact was reported. All optional: a recorder writes what the report gives."""

    outlet: Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["RBC"])] | None = None
    url: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=2000, pattern=r"^https?://\S+$", examples=["https://www.rbc.ru/"]),
    ] | None = None
    speaker: Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["Sergey Lavrov"])] | None = None
    quote: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)] | None = None
    published_on: Annotated[
        str, msgspec.Meta(pattern=DATE_PATTERN, description="ISO date the report was published", examples=["2022-03-16"])
    ] | None = None


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """An event as stored, as the domain sees it."""

    id: uuid.UUID
    stream_id: uuid.UUID
    stream_type: str  # "negotiation" | "issue"
    version: int  # 1-based within the stream
    type: str  # e.g. "proposal.made"
    schema_version: int
    occurred_on: str  # normalised world time (see domain.world_time)
    recorded_at: datetime.datetime  # tz-aware UTC
    recorded_by: str
    data: msgspec.Struct  # decoded payload of the current schema (after upcasting)
    claimed_by: tuple[str, ...] = ()
    source: Source | None = None
    note: str | None = None
    position: int | None = None
