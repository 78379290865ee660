"""Snapshots for time travel: each issue's view as of every world time of its facts.

An issue's view as of world time D (``fold_issue(select_known(records,
as_of=D))``, no ``known_at``) is piecewise constant in D: the selection holds
the facts (not corrections) whose world time starts by D, and the corrections
whose root fact is among them. It changes only at the start instants
(``domain.world_time.start``) of the stream's facts -- its *boundaries*. So the
view as of D is the view at the greatest boundary <= D, and the projection
keeps one row per (issue stream, boundary) in `issue_snapshots` holding the
exact bytes the log fold would serve (NULL: the issue had not been raised by
then), or `stale` when it could not keep it exact cheaply.

How each fact moves the rows (`IssueHistoryFold`, pure; the projection writes
what it reports):

* a fact at or after the newest boundary (the common case): the newest row
  becomes the projection's own view; the previous newest row is frozen with
  the view just before the fact;
* a fact dated earlier, or a correction of a fact at boundary t: every row at
  a boundary >= t changes. For the newest `LIVE_BOUNDARIES` boundaries the fold
  of that boundary's window is kept in memory (built once from the stream's
  records, then applied fact by fact, so in stream order exactly as
  ``select_known`` keeps them) and the row rewritten; older rows become
  `stale` and reads of them fall back to the log.
* a correction of an event not in the stream (never written by the domain):
  snapshots of the stream are switched off and every read folds the log.

What the rows hold is a function of the log alone (a cold fold replays the
stream through the same steps), so a rebuild writes the same rows. The reader
(`snapshot_at`) uses them only when `issue_snapshot_heads.valid_through`
equals the stream's version in the store, so projection lag never serves an
old view.
"""

from __future__ import annotations

import bisect
import datetime as dt
import uuid
from collections.abc import Iterable
from typing import NamedTuple

import asyncpg
import msgspec

from domain import events as e
from domain import world_time
from domain.records import Recorded
from domain.status import IssueFold, select_known

_encoder = msgspec.json.Encoder()
# Boundaries below the newest whose window folds are kept in memory per stream:
# a late fact or correction within them rewrites their rows; one reaching
# further back marks the older rows stale. Bounds a fact's cost and a stream's memory.
LIVE_BOUNDARIES = 32

SCHEMA_0050 = """
-- projections/issue_snapshots.py: an issue's view as of each world time of its facts.
CREATE TABLE issue_snapshots (
    stream_id  uuid NOT NULL,
    -- The start (domain.world_time.start) of a fact's world time, in UTC.
    boundary   timestamptz NOT NULL,
    -- True: not kept exact (a late fact reached back past the live folds); read the log.
    stale      boolean NOT NULL,
    -- The exact bytes of fold_issue(select_known(records, as_of=boundary));
    -- NULL (not stale): the issue had not been raised by then.
    view_json  bytea,
    PRIMARY KEY (stream_id, boundary)
);
CREATE TABLE issue_snapshot_heads (
    stream_id     uuid PRIMARY KEY,
    -- The stream version the rows reflect; reads use them only at this version.
    valid_through integer NOT NULL,
    -- False: a correction named an event outside the stream; reads fold the log.
    enabled       boolean NOT NULL
);
"""


class _Live:
    """Marker: the row is the view of the live fold at its boundary."""


class _Newest:
    """Marker: the row is the view of the whole stream (the newest boundary)."""


class _Stale:
    """Marker: the row is not kept exact."""


LIVE, NEWEST, STALE = _Live(), _Newest(), _Stale()
Row = tuple[bool, bytes | None]  # (stale, view_json)


def encode_view(fold: IssueFold) -> bytes | None:
    """The row's bytes for a window's fold; None when its first fact is not the raising."""
    if not fold.records or fold.records[0].type != "issue.raised":
        return None
    return _encoder.encode(fold.view())


class IssueHistoryFold(IssueFold):
    """`IssueFold` that also tracks the rows of `issue_snapshots` its facts change."""

    def __init__(self, records: Iterable[Recorded] = ()) -> None:
        self.boundaries: list[dt.datetime] = []
        self.live: dict[dt.datetime, IssueFold] = {}
        # boundary -> (version of the fact that last changed it, what it is now)
        self.changed: dict[dt.datetime, tuple[int, object]] = {}
        self.enabled = True
        super().__init__(records)

    def apply(self, record: Recorded) -> None:
        if self.enabled:
            self._track(record)
        super().apply(record)

    def _track(self, record: Recorded) -> None:
        version = record.version
        if isinstance(record.data, e.CORRECTIONS):
            root = self._root(record.data.event_id)
            if root is None:  # select_known never keeps it; the whole-stream view does
                self.enabled = False
                self.live.clear()
                self.changed.clear()
                return
            reaches = root
        else:
            moment = world_time.start(record.occurred_on)
            newest = self.boundaries[-1] if self.boundaries else None
            if newest is None or moment > newest:
                if newest is not None:
                    # Every record so far is inside the old newest window: it is this fold.
                    self.changed[newest] = (version, encode_view(self))
                self.boundaries.append(moment)
                self.changed[moment] = (version, NEWEST)
                self._evict()
                return
            index = bisect.bisect_left(self.boundaries, moment)
            if self.boundaries[index] != moment:
                self.boundaries.insert(index, moment)
                self._evict()
            reaches = moment
        newest = self.boundaries[-1]
        first_live = max(0, len(self.boundaries) - 1 - LIVE_BOUNDARIES)
        for index in range(bisect.bisect_left(self.boundaries, reaches), len(self.boundaries)):
            boundary = self.boundaries[index]
            if boundary == newest:
                self.changed[boundary] = (version, NEWEST)
            elif index >= first_live:
                fold = self.live.get(boundary)
                if fold is None:
                    # The window's records before this one, in stream order (built once).
                    fold = IssueFold(select_known(self.records, as_of=boundary))
                    self.live[boundary] = fold
                fold.apply(record)  # inside: its own time, or its root's, is <= boundary
                self.changed[boundary] = (version, LIVE)
            else:
                self.changed[boundary] = (version, STALE)

    def _root(self, event_id: uuid.UUID) -> dt.datetime | None:
        """The boundary a correction's target is selected from (a correction of a
        correction: its target's), None when the target is not in the stream."""
        for record in reversed(self.records):
            if record.id == event_id:
                if isinstance(record.data, e.CORRECTIONS):
                    return self._root(record.data.event_id)
                return world_time.start(record.occurred_on)
        return None

    def _evict(self) -> None:
        """Drop live folds that fell out of the newest LIVE_BOUNDARIES (their rows
        stay exact until a fact reaches back to them)."""
        keep = set(self.boundaries[-1 - LIVE_BOUNDARIES : -1])
        for boundary in [b for b in self.live if b not in keep]:
            fold = self.live.pop(boundary)
            version, state = self.changed.get(boundary, (0, None))
            if state is LIVE:
                self.changed[boundary] = (version, encode_view(fold))

    def take_rows(self, after_version: int) -> list[tuple[dt.datetime, bool, bytes | None]]:
        """The rows changed by facts after `after_version` (what the table holds
        already reflects the rest), as (boundary, stale, view_json); forgets them."""
        rows = []
        for boundary, (version, state) in self.changed.items():
            if version <= after_version:
                continue
            if state is NEWEST:
                rows.append((boundary, False, encode_view(self)))
            elif state is LIVE:
                rows.append((boundary, False, encode_view(self.live[boundary])))
            elif state is STALE:
                rows.append((boundary, True, None))
            else:
                rows.append((boundary, False, state))  # type: ignore[arg-type]
        self.changed.clear()
        return rows


# --- the projection's writes ---------------------------------------------------------

_UPSERT_ROW = """
    INSERT INTO issue_snapshots (stream_id, boundary, stale, view_json) VALUES ($1, $2, $3, $4)
    ON CONFLICT (stream_id, boundary) DO UPDATE SET stale = EXCLUDED.stale, view_json = EXCLUDED.view_json
"""
_UPSERT_HEAD = """
    INSERT INTO issue_snapshot_heads (stream_id, valid_through, enabled) VALUES ($1, $2, $3)
    ON CONFLICT (stream_id) DO UPDATE SET valid_through = EXCLUDED.valid_through, enabled = EXCLUDED.enabled
"""


async def valid_through(conn: asyncpg.Connection, stream_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The version each stream's snapshot rows reflect (absent: none written)."""
    rows = await conn.fetch(
        "SELECT stream_id, valid_through FROM issue_snapshot_heads WHERE stream_id = ANY($1::uuid[])", stream_ids
    )
    return {r["stream_id"]: r["valid_through"] for r in rows}


# The columns of `rows_to_write`'s rows and heads (a rebuild COPYs them into fresh tables).
ROW_COLUMNS = ("stream_id", "boundary", "stale", "view_json")
HEAD_COLUMNS = ("stream_id", "valid_through", "enabled")


def rows_to_write(
    changes: list[tuple[uuid.UUID, int, IssueHistoryFold]], after: dict[uuid.UUID, int]
) -> tuple[list[tuple], list[tuple], list[uuid.UUID]]:
    """What `write` writes: (snapshot rows, heads, streams whose rows are deleted first)."""
    rows, heads, cleared = [], [], []
    for stream_id, version, fold in changes:
        since = after.get(stream_id, 0)
        if since < 0 or not fold.enabled:
            cleared.append(stream_id)
        if fold.enabled:
            rows.extend((stream_id, *row) for row in fold.take_rows(max(since, 0)))
        heads.append((stream_id, version, fold.enabled))
    return rows, heads, cleared


async def write(
    conn: asyncpg.Connection, changes: list[tuple[uuid.UUID, int, IssueHistoryFold]], after: dict[uuid.UUID, int]
) -> None:
    """Write the rows each stream's fold changed past the version its rows were
    valid through (`after`; -1: rewrite them all, the fold having been refolded
    from version 1), and the version they are now valid through (in the
    projection's transaction)."""
    rows, heads, cleared = rows_to_write(changes, after)
    if cleared:
        await conn.execute("DELETE FROM issue_snapshots WHERE stream_id = ANY($1::uuid[])", cleared)
    if rows:
        await conn.executemany(_UPSERT_ROW, rows)
    if heads:
        await conn.executemany(_UPSERT_HEAD, heads)


# --- the read ------------------------------------------------------------------------


def cut(as_of: dt.date | dt.datetime) -> dt.datetime:
    """The latest instant a fact may start at to be inside ``as_of``
    (domain.world_time.occurred_by; a day ends before 00:00 UTC of the next,
    and instants here have microseconds at the finest)."""
    if isinstance(as_of, dt.datetime):
        return as_of.astimezone(dt.UTC)
    next_day = dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    return next_day - dt.timedelta(microseconds=1)


class Snapshot(NamedTuple):
    """A served answer: the view's bytes, or None when not raised by then."""

    view_json: bytes | None


_AT = """
    SELECT h.stream_id, h.valid_through, h.enabled, s.boundary, s.stale, s.view_json
    FROM issue_snapshot_heads h
    LEFT JOIN LATERAL (
        SELECT boundary, stale, view_json FROM issue_snapshots
        WHERE stream_id = h.stream_id AND boundary <= $2 ORDER BY boundary DESC LIMIT 1
    ) s ON true
    WHERE h.stream_id = ANY($1::uuid[])
"""


async def snapshots_at(
    conn: asyncpg.Connection | asyncpg.Pool, versions: dict[uuid.UUID, int], as_of: dt.date | dt.datetime
) -> dict[uuid.UUID, Snapshot]:
    """The snapshot answers for the streams (id -> version in the store now) that
    can be answered exactly from the table: valid through that very version,
    enabled, and the boundary's row not stale. Streams left out fold the log."""
    found = {}
    for row in await conn.fetch(_AT, list(versions), cut(as_of)):
        stream_id = row["stream_id"]
        if not row["enabled"] or row["valid_through"] != versions[stream_id] or versions[stream_id] < 1:
            continue
        if row["boundary"] is None:  # before its first fact: nothing selected
            found[stream_id] = Snapshot(None)
        elif not row["stale"]:
            found[stream_id] = Snapshot(row["view_json"])
    return found
