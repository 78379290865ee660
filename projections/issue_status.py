"""Read model: every issue's status view, stored as the exact JSON the API serves.

One row per issue stream (table `issue_status`, DDL below, migration 0002), and
the views as of each world time of its facts for time travel
(`issue_snapshots`, `issue_snapshot_heads`: projections/issue_snapshots.py,
migration 0050), written in the same transaction. The view is
`domain.status.IssueFold(...).view()` -- the same fold the write side, time
travel and offline replay use -- encoded once here, so a read is one indexed
lookup that returns bytes, with no decoding or re-encoding.

Events handled: every event on an issue stream (`stream_type == "issue"`),
including `statement.made`, `record.retracted` and `claim.disputed` there.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import ClassVar

import asyncpg
import msgspec

from domain.status import IssueView
from projections import issue_snapshots
from projections.folds import FoldCache, FoldedStream
from projections.issue_snapshots import IssueHistoryFold
from projections.projection import SchemaStep
from projections.records import Fact, StreamHistory, by_stream

_encoder = msgspec.json.Encoder()


def parties_named(view: IssueView) -> list[str]:
    """Every party code the issue's positions, proposals, agreements and items name."""
    codes: set[str] = set(view.positions)
    for proposal in view.proposals:
        codes.add(proposal.by)
        codes.update(proposal.to)
    for agreement in view.agreements:
        codes.update(agreement.parties)
    for item in view.items:
        if item.by:
            codes.add(item.by)
        codes.update(item.parties)
    return sorted(codes)


# The tables, as migration 0002 creates them (service.migrate applies every
# projection's `schema` steps; a later change is a new step with a new number).
SCHEMA_0002 = """
-- projections/issue_status.py: one row per issue stream, the domain fold's view.
CREATE TABLE issue_status (
    stream_id        uuid PRIMARY KEY,
    negotiation_id   uuid NOT NULL,
    key              text NOT NULL,
    title            text NOT NULL,
    category         text NOT NULL,
    status           text NOT NULL,
    -- Every party the issue's positions, proposals, agreements and items name.
    parties          text[] NOT NULL,
    version          integer NOT NULL,
    -- Position of the event at `version` (the newest fact the row reflects).
    updated_position bigint NOT NULL,
    last_activity_on text,
    -- Lineage: the ids of the live (not retracted) events behind the row.
    lineage          uuid[] NOT NULL,
    view             jsonb NOT NULL,
    -- The exact bytes the API serves (the jsonb copy above is for ad-hoc queries).
    view_json        bytea NOT NULL,
    UNIQUE (negotiation_id, key)
);
CREATE INDEX ON issue_status (negotiation_id, status);
CREATE INDEX ON issue_status (negotiation_id, category);
CREATE INDEX ON issue_status USING gin (parties);
CREATE INDEX ON issue_status USING gin (lineage);
"""

# Migration 0034 (issue 15): the view no longer carries its lineage (every event
# id of the stream, rewritten on each fact: O(n^2) over a stream), served by its
# own paged route from the log instead (service.read.lineage); the row's
# (stream_id, version) names the events behind it.
SCHEMA_0034 = "ALTER TABLE issue_status DROP COLUMN lineage;"

_STORED_VERSIONS = "SELECT stream_id, version FROM issue_status WHERE stream_id = ANY($1::uuid[])"

_UPSERT = """
    INSERT INTO issue_status (
        stream_id, negotiation_id, key, title, category, status, parties, version,
        updated_position, last_activity_on, view, view_json)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, convert_from($11, 'UTF8')::jsonb, $11)
    ON CONFLICT (stream_id) DO UPDATE SET
        negotiation_id = EXCLUDED.negotiation_id,
        key = EXCLUDED.key,
        title = EXCLUDED.title,
        category = EXCLUDED.category,
        status = EXCLUDED.status,
        parties = EXCLUDED.parties,
        version = EXCLUDED.version,
        updated_position = EXCLUDED.updated_position,
        last_activity_on = EXCLUDED.last_activity_on,
        view = EXCLUDED.view,
        view_json = EXCLUDED.view_json
"""


# The columns `_UPSERT` writes, in its parameters' order, `view` (jsonb) from the
# bytes: a rebuild COPYs fresh rows (`copy_row`) instead (service.projection.rebuild).
COLUMNS = (
    "stream_id", "negotiation_id", "key", "title", "category", "status", "parties", "version",
    "updated_position", "last_activity_on", "view", "view_json",
)  # fmt: skip


def status_row(stream_id: uuid.UUID, negotiation_id: uuid.UUID, folded: FoldedStream[IssueHistoryFold]) -> tuple:
    """The parameters of `_UPSERT` for a stream folded to its newest version."""
    view = folded.fold.view()
    if folded.head is None or folded.head.position is None:
        raise RuntimeError(f"issue stream {stream_id} folded without a stored head event")
    return (
        stream_id,
        negotiation_id,
        view.key,
        view.title,
        view.category,
        view.status,
        parties_named(view),
        view.version,
        folded.head.position,
        view.last_activity_on,
        _encoder.encode(view),
    )


def copy_row(row: tuple) -> tuple:
    """A `status_row` as COPY takes it (`COLUMNS`): the jsonb copy as text, as `_UPSERT` converts it."""
    return (*row[:-1], row[-1].decode(), row[-1])


class IssueStatusProjection:
    name: ClassVar[str] = "issue_status"
    tables: ClassVar[tuple[str, ...]] = ("issue_status", "issue_snapshots", "issue_snapshot_heads")
    lock_id: ClassVar[int] = 1
    schema: ClassVar[tuple[SchemaStep, ...]] = (
        SchemaStep(2, "projections", SCHEMA_0002),
        SchemaStep(34, "views without lineage", SCHEMA_0034),
        SchemaStep(50, "issue snapshots", issue_snapshots.SCHEMA_0050),
    )

    def __init__(self, fold_cache_size: int = 2000) -> None:
        self.folds: FoldCache[IssueHistoryFold] = FoldCache(IssueHistoryFold, fold_cache_size)

    def reset(self) -> None:
        self.folds.clear()

    async def apply(self, conn: asyncpg.Connection, facts: Sequence[Fact], history: StreamHistory) -> None:
        streams = by_stream([f for f in facts if f.record.stream_type == "issue"])
        if not streams:
            return
        stored = {r["stream_id"]: r["version"] for r in await conn.fetch(_STORED_VERSIONS, list(streams))}
        # Snapshots written through another version than the row (a runner of a
        # version without them ran meanwhile): refold those streams from the start
        # and rewrite all their snapshot rows.
        snapshot_after = await issue_snapshots.valid_through(conn, list(streams))
        for stream_id in streams:
            if snapshot_after.get(stream_id, 0) != stored.get(stream_id, 0):
                self.folds.forget(stream_id)
                snapshot_after[stream_id] = -1
        rows = []
        snapshots = []
        for stream_id, group in streams.items():
            folded = await self.folds.advance(stream_id, stored.get(stream_id, 0), [f.record for f in group], history)
            if folded is None:
                continue
            snapshots.append((stream_id, folded.version, folded.fold))
            rows.append(status_row(stream_id, group[0].negotiation_id, folded))
        if rows:
            await conn.executemany(_UPSERT, rows)
        await issue_snapshots.write(conn, snapshots, snapshot_after)


# --- queries for the API ---------------------------------------------------------


async def fetch_one(conn: asyncpg.Connection | asyncpg.Pool, negotiation_id: uuid.UUID, key: str) -> bytes | None:
    """One issue's status view as JSON bytes, ready to send; None if unknown."""
    return await conn.fetchval(
        "SELECT view_json FROM issue_status WHERE negotiation_id = $1 AND key = $2", negotiation_id, key
    )


async def fetch_for_negotiation(
    conn: asyncpg.Connection | asyncpg.Pool,
    negotiation_id: uuid.UUID,
    *,
    status: str | None = None,
    category: str | None = None,
    party: str | None = None,
) -> list[msgspec.Raw]:
    """The status views of a negotiation's issues, by key; each a `msgspec.Raw`
    that a response Struct or `msgspec.json.encode` embeds without re-encoding."""
    rows = await conn.fetch(
        """
        SELECT view_json FROM issue_status
        WHERE negotiation_id = $1
          AND ($2::text IS NULL OR status = $2)
          AND ($3::text IS NULL OR category = $3)
          AND ($4::text IS NULL OR parties @> ARRAY[$4::text])
        ORDER BY key
        """,
        negotiation_id,
        status,
        category,
        party,
    )
    return [msgspec.Raw(r["view_json"]) for r in rows]
