"""The timeline of a bitemporal window (`as_of`, `known_at`), from the log.

The timeline projection serves the present. A past timeline is computed from
the negotiation's streams with the same selection as every other time-travel
view (`domain.status.select_known`, per stream), the same order (world time,
then log position), the same sentences (`domain.timeline.describe`, with the
party names known at that point of the log) and the same flags, computed from
the corrections inside the window only. Cursors are the projection's, so a
client pages a past timeline exactly as the present one.
"""

from __future__ import annotations

import datetime as dt
import uuid

from domain import world_time
from domain.records import Recorded
from domain.status import select_known
from domain.timeline import describe
from projections import cursors
from projections.timeline import CURSOR, TimelineEntry, TimelinePage


def past_timeline(
    negotiation_id: uuid.UUID,
    streams: list[list[Recorded]],
    *,
    as_of: dt.date | dt.datetime | None,
    known_at: dt.datetime | None,
    after: str | None,
    limit: int,
) -> TimelinePage:
    """One page of the window's timeline; ``streams`` are the negotiation's
    streams (negotiation first), each in version order."""
    selected: list[tuple[Recorded, str | None]] = []
    for records in streams:
        window = select_known(records, as_of=as_of, known_at=known_at)
        key = getattr(window[0].data, "issue", None) if window and window[0].stream_type == "issue" else None
        selected.extend((record, key) for record in window)
    selected.sort(key=lambda pair: pair[0].position or 0)  # log order, for the names known at each point
    retracted = {r.data.event_id for r, _ in selected if r.type == "record.retracted"}  # type: ignore[attr-defined]
    disputed = {
        r.data.event_id  # type: ignore[attr-defined]
        for r, _ in selected
        if r.type == "claim.disputed" and r.id not in retracted
    }
    names: dict[str, str] = {}
    entries: list[tuple[tuple[dt.datetime, int, int], TimelineEntry]] = []
    for record, key in selected:
        data = record.data
        introduced = [*data.parties, *data.mediators] if record.type == "negotiation.opened" else (  # type: ignore[attr-defined]
            [data.party] if record.type == "party.joined" else []  # type: ignore[attr-defined]
        )
        for party in introduced:
            names[party.code] = party.name
        start, timed = world_time.sort_key(record.occurred_on)
        position = record.position or 0
        entries.append(
            (
                (start, timed, position),
                TimelineEntry(
                    event_id=record.id,
                    position=position,
                    type=record.type,
                    occurred_on=record.occurred_on,
                    recorded_at=record.recorded_at,
                    negotiation_id=negotiation_id,
                    stream_id=record.stream_id,
                    stream_type=record.stream_type,
                    issue=key,
                    line=describe(record, names),
                    claimed_by=list(record.claimed_by),
                    retracted=record.id in retracted,
                    disputed=record.id in disputed,
                ),
            )
        )
    entries.sort(key=lambda pair: pair[0])
    if after is not None:
        start_text, timed_text, position_text = cursors.decode(CURSOR, after, 3)
        try:
            bound = (
                dt.datetime.fromisoformat(start_text),
                cursors.number(timed_text, 2**15 - 1),
                cursors.number(position_text, 2**63 - 1),
            )
        except ValueError:
            raise cursors.InvalidCursor("not a cursor for this list") from None
        entries = [pair for pair in entries if pair[0] > bound]
    page = entries[:limit]
    next_cursor = None
    if len(entries) > limit:
        (start, timed, position), _ = page[-1]
        next_cursor = cursors.encode(CURSOR, start.isoformat(), timed, position)
    return TimelinePage(items=[entry for _, entry in page], next=next_cursor)
