"""Lineage, paged: the ids of the live events behind a view (issue 15, bounded views).

A view used to carry its whole lineage inline: every fact added an id to every
later write and read of the stream's view (3,000 facts: 3,000 ids in each). The
view now names its stream and version; its lineage — that stream's facts not
retracted, in stream order, retractions and disputes included, as
`domain.status.lineage` folds it — is served here, `limit` per page with a
cursor (the /events conventions: `{"items": [...], "next": cursor-or-null}` and
`Link`). With `as_of` / `known_at` it is the lineage of the view as it stood:
only the facts inside the window, retractions known then.

Each page reads the stream from the log (O(stream), never a projection), so a
page costs the stream's length, not the square of it.
"""

from __future__ import annotations

import msgspec

from domain import errors
from domain.records import Recorded
from domain.status import lineage, select_known
from projections import cursors

_CURSOR = "lineage.v1"
_encoder = msgspec.json.Encoder()


class LineageEntry(msgspec.Struct):
    event_id: str
    version: int
    type: str


class LineagePage(msgspec.Struct):
    items: list[LineageEntry]
    next: str | None


def page(
    records: list[Recorded],
    stream_type: str,
    *,
    cursor: str | None,
    limit: int,
    as_of: object = None,
    known_at: object = None,
    first_type: str,
    missing: errors.DomainError,
) -> tuple[bytes, str | None]:
    """One page of the lineage of a stream's records (in version order); `missing`
    is raised when the stream's first fact (`first_type`) is not in the window."""
    after = 0
    if cursor is not None:
        (version,) = cursors.decode(_CURSOR, cursor, 1)
        after = cursors.number(version, 2**31 - 1)
    if as_of is not None or known_at is not None:
        records = select_known(records, as_of=as_of, known_at=known_at)  # type: ignore[arg-type]
    if not records or records[0].type != first_type:
        raise missing
    by_id = {str(r.id): r for r in records}
    live = [by_id[event_id] for event_id in lineage(records, stream_type)]
    rest = [r for r in live if r.version > after]
    shown = rest[:limit]
    next_cursor = cursors.encode(_CURSOR, shown[-1].version) if len(rest) > limit else None
    items = [LineageEntry(event_id=str(r.id), version=r.version, type=r.type) for r in shown]
    return _encoder.encode(LineagePage(items=items, next=next_cursor)), next_cursor


__all__ = ["LineageEntry", "LineagePage", "page"]
