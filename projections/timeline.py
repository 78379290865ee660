"""Read model: one human-readable line per recorded fact, in world-time order.

Order: the instant a fact's world time begins (`domain.world_time.sort_key`:
a fact dated by a day starts at 00:00 UTC and comes before the timed facts of
that day), then record order (the event's position). The sentence is
`domain.timeline.describe`, with party names as known at that point of the log.

Corrections stay in the timeline (history keeps both): a retracted fact is
served with `retracted: true`, a disputed one with `disputed: true` (unless the
dispute itself was retracted). Both flags are computed when read, from the
correction rows, so the rows are written once and never depend on the order
in which a correction and its target reached the log.

Events handled: every event.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

import asyncpg
import msgspec

from domain import world_time
from domain.timeline import describe
from projections import cursors
from projections.projection import SchemaStep
from projections.records import Fact, StreamHistory


class TimelineEntry(msgspec.Struct, kw_only=True):
    event_id: uuid.UUID
    position: int
    type: str
    occurred_on: str
    recorded_at: dt.datetime
    negotiation_id: uuid.UUID
    stream_id: uuid.UUID
    stream_type: str
    issue: str | None  # the issue's key, for facts on an issue stream
    line: str
    claimed_by: list[str]
    retracted: bool
    disputed: bool


class TimelinePage(msgspec.Struct):
    items: list[TimelineEntry]
    next: str | None  # cursor of the following page


# The tables, as migration 0002 creates them (service.migrate applies every
# projection's `schema` steps; a later change is a new step with a new number).
SCHEMA_0002 = """
-- projections/timeline.py: one row per recorded fact.
CREATE TABLE timeline (
    event_id         uuid PRIMARY KEY,
    negotiation_id   uuid NOT NULL,
    stream_id        uuid NOT NULL,
    stream_type      text NOT NULL,
    issue_key        text,
    type             text NOT NULL,
    occurred_on      text NOT NULL,
    -- World-time order (domain.world_time.sort_key): the instant the fact's
    -- world time begins, then days before timed facts, then record order.
    world_start      timestamptz NOT NULL,
    world_timed      smallint NOT NULL,
    position         bigint NOT NULL,
    recorded_at      timestamptz NOT NULL,
    claimed_by       text[] NOT NULL,
    line             text NOT NULL,
    -- Set on record.retracted / claim.disputed rows: the fact they correct.
    retracts         uuid,
    disputes         uuid
);
CREATE INDEX ON timeline (negotiation_id, world_start, world_timed, position);
CREATE INDEX ON timeline (retracts) WHERE retracts IS NOT NULL;
CREATE INDEX ON timeline (disputes) WHERE disputes IS NOT NULL;

-- Party display names per negotiation, as known so far in log order (the
-- timeline's sentences say "Russia", not "RU").
CREATE TABLE timeline_parties (
    negotiation_id   uuid NOT NULL,
    code             text NOT NULL,
    name             text NOT NULL,
    PRIMARY KEY (negotiation_id, code)
);
"""

_PARTY_NAMES = "SELECT negotiation_id, code, name FROM timeline_parties WHERE negotiation_id = ANY($1::uuid[])"

_UPSERT_PARTY = """
    INSERT INTO timeline_parties (negotiation_id, code, name) VALUES ($1, $2, $3)
    ON CONFLICT (negotiation_id, code) DO UPDATE SET name = EXCLUDED.name
"""

_INSERT = """
    INSERT INTO timeline (
        event_id, negotiation_id, stream_id, stream_type, issue_key, type, occurred_on,
        world_start, world_timed, position, recorded_at, claimed_by, line, retracts, disputes)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
    ON CONFLICT (event_id) DO NOTHING
"""


# The columns of `_UPSERT_PARTY` and `_INSERT`, in their parameters' order (a
# rebuild COPYs rows into fresh tables).
PARTY_COLUMNS = ("negotiation_id", "code", "name")
COLUMNS = (
    "event_id", "negotiation_id", "stream_id", "stream_type", "issue_key", "type", "occurred_on",
    "world_start", "world_timed", "position", "recorded_at", "claimed_by", "line", "retracts", "disputes",
)  # fmt: skip


class TimelineProjection:
    name: ClassVar[str] = "timeline"
    tables: ClassVar[tuple[str, ...]] = ("timeline_parties", "timeline")
    lock_id: ClassVar[int] = 3
    schema: ClassVar[tuple[SchemaStep, ...]] = (SchemaStep(2, "projections", SCHEMA_0002),)

    def __init__(self) -> None:
        # An issue stream's key never changes: safe to keep across transactions.
        self.issue_keys: dict[uuid.UUID, str] = {}

    def reset(self) -> None:
        pass  # nothing kept that a failed transaction could have made wrong

    async def issue_key(self, record: Any, history: StreamHistory) -> str:
        """The key of the issue an issue stream's record is on."""
        key = self.issue_keys.get(record.stream_id)
        if key is None:
            key = getattr(record.data, "issue", None)
            if record.type in ("statement.made", "record.retracted", "claim.disputed") or not key:
                # These do not always name the issue: ask its issue.raised.
                (raised,) = await history(record.stream_id, 1, 1)
                key = raised.data.issue
            if len(self.issue_keys) > 100_000:
                self.issue_keys.clear()
            self.issue_keys[record.stream_id] = key
        return key

    async def apply(self, conn: asyncpg.Connection, facts: Sequence[Fact], history: StreamHistory) -> None:
        if not facts:
            return
        names: dict[uuid.UUID, dict[str, str]] = {}
        for row in await conn.fetch(_PARTY_NAMES, list({f.negotiation_id for f in facts})):
            names.setdefault(row["negotiation_id"], {})[row["code"]] = row["name"]
        party_rows = []
        rows = []
        # In log order: each sentence uses the names known at its point of the
        # log, whatever the batch boundaries were (so a rebuild writes the same).
        for fact in facts:
            known = names.setdefault(fact.negotiation_id, {})
            for party in introduced(fact.record):
                known[party.code] = party.name
                party_rows.append((fact.negotiation_id, party.code, party.name))
            rows.append(await self.row(fact, known, history))
        if party_rows:
            await conn.executemany(_UPSERT_PARTY, party_rows)
        await conn.executemany(_INSERT, rows)

    async def row(self, fact: Fact, known: dict[str, str], history: StreamHistory) -> tuple:
        """The parameters of `_INSERT` for a fact, with the party names known at it."""
        record: Any = fact.record
        start, timed = world_time.sort_key(record.occurred_on)
        return (
            record.id,
            fact.negotiation_id,
            record.stream_id,
            record.stream_type,
            await self.issue_key(record, history) if record.stream_type == "issue" else None,
            record.type,
            record.occurred_on,
            start,
            timed,
            record.position,
            record.recorded_at,
            list(record.claimed_by),
            describe(record, known),
            record.data.event_id if record.type == "record.retracted" else None,
            record.data.event_id if record.type == "claim.disputed" else None,
        )


def introduced(record: Any) -> list[Any]:
    """The parties (code and name) a record introduces to its negotiation."""
    if record.type == "negotiation.opened":
        return [*record.data.parties, *record.data.mediators]
    if record.type == "party.joined":
        return [record.data.party]
    return []


# --- queries for the API ---------------------------------------------------------

_COLUMNS = """
    t.event_id, t.position, t.type, t.occurred_on, t.recorded_at, t.negotiation_id, t.stream_id,
    t.stream_type, t.issue_key, t.line, t.claimed_by, t.world_start, t.world_timed,
    EXISTS (SELECT 1 FROM timeline r WHERE r.retracts = t.event_id) AS retracted,
    EXISTS (
        SELECT 1 FROM timeline d
        WHERE d.disputes = t.event_id
          AND NOT EXISTS (SELECT 1 FROM timeline r WHERE r.retracts = d.event_id)
    ) AS disputed
"""

_FIRST_PAGE = f"""
    SELECT {_COLUMNS} FROM timeline t
    WHERE t.negotiation_id = $1
    ORDER BY t.world_start, t.world_timed, t.position
    LIMIT $2
"""

_NEXT_PAGE = f"""
    SELECT {_COLUMNS} FROM timeline t
    WHERE t.negotiation_id = $1
      AND (t.world_start, t.world_timed, t.position) > ($3::timestamptz, $4::smallint, $5::bigint)
    ORDER BY t.world_start, t.world_timed, t.position
    LIMIT $2
"""

CURSOR = "timeline.v1"


async def fetch(
    conn: asyncpg.Connection | asyncpg.Pool,
    negotiation_id: uuid.UUID,
    after: str | None = None,
    limit: int = 100,
) -> TimelinePage:
    """A page of a negotiation's timeline; `after` is the previous page's `next`
    (anything else raises `projections.cursors.InvalidCursor`)."""
    if after is None:
        rows = await conn.fetch(_FIRST_PAGE, negotiation_id, limit + 1)
    else:
        start, timed, position = cursors.decode(CURSOR, after, 3)
        try:
            bound = (
                dt.datetime.fromisoformat(start),
                cursors.number(timed, 2**15 - 1),  # smallint
                cursors.number(position, 2**63 - 1),
            )
        except ValueError:
            raise cursors.InvalidCursor("not a cursor for this list") from None
        rows = await conn.fetch(_NEXT_PAGE, negotiation_id, limit + 1, *bound)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        TimelineEntry(
            event_id=r["event_id"],
            position=r["position"],
            type=r["type"],
            occurred_on=r["occurred_on"],
            recorded_at=r["recorded_at"],
            negotiation_id=r["negotiation_id"],
            stream_id=r["stream_id"],
            stream_type=r["stream_type"],
            issue=r["issue_key"],
            line=r["line"],
            claimed_by=list(r["claimed_by"]),
            retracted=r["retracted"],
            disputed=r["disputed"],
        )
        for r in rows
    ]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = cursors.encode(CURSOR, last["world_start"].isoformat(), last["world_timed"], last["position"])
    return TimelinePage(items=items, next=next_cursor)
