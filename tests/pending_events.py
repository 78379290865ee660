"""Events as a writer hands them to the store, for tests that write straight to it."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

from service.store.event_store import PendingEvent

# A time for tests that name one without inserting it (an idempotent retry): an
# insert with any time but PostgreSQL's own is refused (recorded_at=None lets the
# store take it).
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.timezone.utc)


def pending(
    stream_id: uuid.UUID,
    n: int = 0,
    *,
    type: str = "issue.discussed",
    negotiation_id: uuid.UUID | None = None,
    recorded_at: dt.datetime | None = None,
    **data: object,
) -> PendingEvent:
    return PendingEvent(
        id=uuid.uuid4(),
        stream_id=stream_id,
        stream_type="issue",
        type=type,
        schema_version=1,
        data=msgspec.json.encode({"n": n, **data}),
        occurred_on="2022-03-10",
        recorded_by="test",
        recorded_at=recorded_at,
        negotiation_id=negotiation_id,
    )
