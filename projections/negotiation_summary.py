"""Read model: one summary per negotiation, for `GET /negotiations` and `GET /negotiations/{ref}`.

The served document (`NegotiationSummary`) is the domain's `NegotiationView`
(status, parties, mediators, rounds, disputes, ...) plus every
issue's brief status and the count of issues by status. It is stored encoded
(`view_json`), as is the shorter list entry (`list_item_json`).

Events handled: every event on a negotiation stream (folded with
`domain.status.NegotiationFold`) and every event on an issue stream (folded
with `IssueFold` for the issue's status). This projection folds issues itself
rather than reading `issue_status`: each projection advances, fails and
rebuilds on its own, so none may read another's tables.

Over 300 lines on purpose: one read model is one module (its served shapes,
its DDL, its writes and its queries), as every projection is.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import ClassVar

import asyncpg
import msgspec

from domain.status import IssueFold, IssueView, NegotiationFold, NegotiationView, negotiation_agreements
from domain.views import AgreementView
from projections import cursors
from projections.folds import FoldCache, FoldedStream
from projections.projection import SchemaStep
from projections.records import Fact, StreamHistory, by_stream


class IssueBrief(msgspec.Struct, kw_only=True):
    key: str
    title: str
    category: str
    status: str
    version: int
    last_activity_on: str | None

    @classmethod
    def of(cls, view: IssueView) -> "IssueBrief":
        return cls(
            key=view.key,
            title=view.title,
            category=view.category,
            status=view.status,
            version=view.version,
            last_activity_on=view.last_activity_on,
        )


class StoredBrief(IssueBrief, kw_only=True):
    """An issue's brief as this projection stores it: with the issue's
    agreements, which the negotiation's view lists once each."""

    agreements: list[AgreementView] = []

    @classmethod
    def of(cls, view: IssueView) -> "StoredBrief":
        return cls(**msgspec.structs.asdict(IssueBrief.of(view)), agreements=view.agreements)

    def brief(self) -> IssueBrief:
        return IssueBrief(
            key=self.key, title=self.title, category=self.category, status=self.status, version=self.version,
            last_activity_on=self.last_activity_on,
        )  # fmt: skip


# Issue briefs a negotiation view inlines at most (issue 15: bounded view sizes; 3,000
# issues once made an 860 KB view, rewritten whole at every issue event). The rest
# are paged from GET /negotiations/{ref}/issues, from `issues_next`.
INLINE_ISSUES = 100


class NegotiationSummary(NegotiationView, kw_only=True):
    """What `GET /negotiations/{ref}` serves."""

    issue_counts: dict[str, int]  # status -> number of issues, statuses in name order (all of them)
    issues: list[IssueBrief]  # by key, the first INLINE_ISSUES
    issues_total: int  # every issue of the negotiation, inlined or not
    # The `cursor` of GET /negotiations/{ref}/issues for the issues after the
    # inlined ones (null: every issue is inlined).
    issues_next: str | None
    agreements: list[AgreementView]  # every agreement once, however many issues it covers


class NegotiationListItem(msgspec.Struct, kw_only=True):
    """One entry of `GET /negotiations`."""

    id: str
    slug: str
    title: str
    status: str
    parties: list[str]
    mediators: list[str]
    rounds: int
    issue_counts: dict[str, int]
    last_activity_on: str | None
    version: int


class NegotiationPage(msgspec.Struct):
    items: list[msgspec.Raw]  # encoded NegotiationListItem, embedded as they are
    next: str | None  # cursor of the following page


# The tables, as migration 0002 creates them (service.migrate applies every
# projection's `schema` steps; a later change is a new step with a new number).
SCHEMA_0002 = """
-- projections/negotiation_summary.py: one row per negotiation...
CREATE TABLE negotiation_summary (
    negotiation_id   uuid PRIMARY KEY,
    slug             text NOT NULL UNIQUE,
    title            text NOT NULL,
    status           text NOT NULL,
    -- Codes of every party and mediator that ever took part (the list filter).
    parties          text[] NOT NULL,
    mediators        text[] NOT NULL,
    rounds           integer NOT NULL,
    issue_counts     jsonb NOT NULL,
    -- Position of negotiation.opened: the keyset of the list.
    created_position bigint NOT NULL UNIQUE,
    version          integer NOT NULL,
    updated_position bigint NOT NULL,
    lineage          uuid[] NOT NULL,
    view_json        bytea NOT NULL,
    list_item_json   bytea NOT NULL
);
CREATE INDEX ON negotiation_summary (status, created_position);
CREATE INDEX ON negotiation_summary USING gin (parties);
CREATE INDEX ON negotiation_summary USING gin (lineage);

-- ...and, for it, the status of each of the negotiation's issues, folded by the
-- summary projection itself so that it never depends on another projection's
-- progress (each projection rebuilds alone).
CREATE TABLE negotiation_summary_issues (
    stream_id        uuid PRIMARY KEY,
    negotiation_id   uuid NOT NULL,
    key              text NOT NULL,
    version          integer NOT NULL,
    brief_json       bytea NOT NULL
);
CREATE INDEX ON negotiation_summary_issues (negotiation_id, key);
"""

_encoder = msgspec.json.Encoder()
_brief_decoder = msgspec.json.Decoder(StoredBrief)

_STORED_ISSUE_VERSIONS = "SELECT stream_id, version FROM negotiation_summary_issues WHERE stream_id = ANY($1::uuid[])"

_UPSERT_ISSUE = """
    INSERT INTO negotiation_summary_issues (stream_id, negotiation_id, key, version, brief_json)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (stream_id) DO UPDATE SET
        negotiation_id = EXCLUDED.negotiation_id,
        key = EXCLUDED.key,
        version = EXCLUDED.version,
        brief_json = EXCLUDED.brief_json
"""

# Migration 0034 (issue 15): the view no longer carries its lineage, served by
# its own paged route from the log (service.read.lineage); the row's
# (negotiation_id, version) names the events behind it.
SCHEMA_0034 = "ALTER TABLE negotiation_summary DROP COLUMN lineage;"
# Migration 0040 (issue 15): the view inlines at most INLINE_ISSUES briefs, with
# issues_total and issues_next; its rows are dropped and re-projected
# (service/migrations/0040_bounded_negotiation_view.sql).

_STORED_NEGOTIATION_VERSIONS = (
    "SELECT negotiation_id, version FROM negotiation_summary WHERE negotiation_id = ANY($1::uuid[])"
)

_ISSUE_BRIEFS = """
    SELECT negotiation_id, brief_json FROM negotiation_summary_issues
    WHERE negotiation_id = ANY($1::uuid[])
    ORDER BY negotiation_id, key
"""

_UPSERT_NEGOTIATION = """
    INSERT INTO negotiation_summary (
        negotiation_id, slug, title, status, parties, mediators, rounds, issue_counts,
        created_position, version, updated_position, view_json, list_item_json)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9, $10, $11, $12, $13)
    ON CONFLICT (negotiation_id) DO UPDATE SET
        slug = EXCLUDED.slug,
        title = EXCLUDED.title,
        status = EXCLUDED.status,
        parties = EXCLUDED.parties,
        mediators = EXCLUDED.mediators,
        rounds = EXCLUDED.rounds,
        issue_counts = EXCLUDED.issue_counts,
        version = EXCLUDED.version,
        updated_position = EXCLUDED.updated_position,
        view_json = EXCLUDED.view_json,
        list_item_json = EXCLUDED.list_item_json
"""


def summarise(view: NegotiationView, issues: list[StoredBrief]) -> tuple[NegotiationSummary, NegotiationListItem]:
    counts: dict[str, int] = {}
    for issue in issues:
        counts[issue.status] = counts.get(issue.status, 0) + 1
    counts = dict(sorted(counts.items()))
    agreements = negotiation_agreements(issues)
    # By key in code-point order, as GET /negotiations/{ref}/issues pages them (its
    # cursor is the last key before: `key > cursor`), whatever the database's collation.
    issues = sorted(issues, key=lambda brief: brief.key)
    inlined = issues[:INLINE_ISSUES]
    summary = NegotiationSummary(
        **msgspec.structs.asdict(view), issue_counts=counts, issues=[b.brief() for b in inlined],
        issues_total=len(issues),
        issues_next=cursors.encode(cursors.ISSUES, inlined[-1].key) if len(issues) > len(inlined) else None,
        agreements=agreements,
    )
    item = NegotiationListItem(
        id=view.id,
        slug=view.slug,
        title=view.title,
        status=view.status,
        parties=[p.code for p in view.parties],
        mediators=[p.code for p in view.mediators],
        rounds=len(view.rounds),
        issue_counts=counts,
        last_activity_on=view.last_activity_on,
        version=view.version,
    )
    return summary, item


# The columns of `_UPSERT_ISSUE` and `_UPSERT_NEGOTIATION`, in their parameters'
# order (a rebuild COPYs `issue_row`s and `negotiation_row`s into fresh tables).
ISSUE_COLUMNS = ("stream_id", "negotiation_id", "key", "version", "brief_json")
NEGOTIATION_COLUMNS = (
    "negotiation_id", "slug", "title", "status", "parties", "mediators", "rounds", "issue_counts",
    "created_position", "version", "updated_position", "view_json", "list_item_json",
)  # fmt: skip


def issue_row(stream_id: uuid.UUID, negotiation_id: uuid.UUID, fold: IssueFold) -> tuple:
    """The parameters of `_UPSERT_ISSUE` for an issue stream's fold."""
    view = fold.view()
    return (stream_id, negotiation_id, view.key, view.version, _encoder.encode(StoredBrief.of(view)))


def stored_brief(brief_json: bytes) -> StoredBrief:
    return _brief_decoder.decode(brief_json)


def negotiation_row(
    negotiation_id: uuid.UUID, folded: FoldedStream[NegotiationFold] | None, briefs: list[StoredBrief]
) -> tuple | None:
    """The parameters of `_UPSERT_NEGOTIATION` for the negotiation's fold and its
    issues' stored briefs; None before its negotiation.opened was folded."""
    if folded is None or folded.first is None or folded.head is None:
        return None  # issue facts seen before negotiation.opened: summarised when it comes
    view = folded.fold.view()
    summary, item = summarise(view, briefs)
    return (
        negotiation_id,
        view.slug,
        view.title,
        view.status,
        sorted({p.code for p in view.parties} | {p.code for p in view.mediators}),
        [p.code for p in view.mediators],
        len(view.rounds),
        _encoder.encode(summary.issue_counts).decode(),
        folded.first.position,
        view.version,
        folded.head.position,
        _encoder.encode(summary),
        _encoder.encode(item),
    )


class NegotiationSummaryProjection:
    name: ClassVar[str] = "negotiation_summary"
    tables: ClassVar[tuple[str, ...]] = ("negotiation_summary_issues", "negotiation_summary")
    lock_id: ClassVar[int] = 2
    schema: ClassVar[tuple[SchemaStep, ...]] = (
        SchemaStep(2, "projections", SCHEMA_0002),
        SchemaStep(34, "views without lineage", SCHEMA_0034),
    )

    def __init__(self, fold_cache_size: int = 2000) -> None:
        self.issue_folds: FoldCache[IssueFold] = FoldCache(IssueFold, fold_cache_size)
        self.negotiation_folds: FoldCache[NegotiationFold] = FoldCache(NegotiationFold, fold_cache_size)

    def reset(self) -> None:
        self.issue_folds.clear()
        self.negotiation_folds.clear()

    async def apply(self, conn: asyncpg.Connection, facts: Sequence[Fact], history: StreamHistory) -> None:
        streams = by_stream(facts)
        issue_streams = {s: g for s, g in streams.items() if g[0].record.stream_type == "issue"}
        negotiation_streams = {s: g for s, g in streams.items() if g[0].record.stream_type == "negotiation"}
        touched: set[uuid.UUID] = set()

        if issue_streams:
            stored = {
                r["stream_id"]: r["version"] for r in await conn.fetch(_STORED_ISSUE_VERSIONS, list(issue_streams))
            }
            rows = []
            for stream_id, group in issue_streams.items():
                folded = await self.issue_folds.advance(
                    stream_id, stored.get(stream_id, 0), [f.record for f in group], history
                )
                if folded is None:
                    continue
                negotiation_id = group[0].negotiation_id
                rows.append(issue_row(stream_id, negotiation_id, folded.fold))
                touched.add(negotiation_id)
            if rows:
                await conn.executemany(_UPSERT_ISSUE, rows)

        touched.update(negotiation_streams)
        if not touched:
            return
        stored = {
            r["negotiation_id"]: r["version"] for r in await conn.fetch(_STORED_NEGOTIATION_VERSIONS, list(touched))
        }
        briefs: dict[uuid.UUID, list[StoredBrief]] = {}
        for row in await conn.fetch(_ISSUE_BRIEFS, list(touched)):
            briefs.setdefault(row["negotiation_id"], []).append(stored_brief(row["brief_json"]))

        rows = []
        for negotiation_id in sorted(touched):
            stored_version = stored.get(negotiation_id, 0)
            group = negotiation_streams.get(negotiation_id)
            folded = None
            if group is not None:
                folded = await self.negotiation_folds.advance(
                    negotiation_id, stored_version, [f.record for f in group], history
                )
            if folded is None:
                # Only its issues changed (or the negotiation events were seen
                # before): the negotiation itself stays at its stored version.
                folded = await self.negotiation_folds.at(negotiation_id, stored_version, history)
            row = negotiation_row(negotiation_id, folded, briefs.get(negotiation_id, []))
            if row is not None:
                rows.append(row)
        if rows:
            await conn.executemany(_UPSERT_NEGOTIATION, rows)


# --- queries for the API ---------------------------------------------------------


async def fetch(conn: asyncpg.Connection | asyncpg.Pool, negotiation_id: uuid.UUID) -> bytes | None:
    """The negotiation's summary (`NegotiationSummary`) as JSON bytes; None if unknown."""
    return await conn.fetchval("SELECT view_json FROM negotiation_summary WHERE negotiation_id = $1", negotiation_id)


async def fetch_version(conn: asyncpg.Connection | asyncpg.Pool, negotiation_id: uuid.UUID) -> int | None:
    """The negotiation stream's version the summary reflects (cheap, for ETags)."""
    return await conn.fetchval("SELECT version FROM negotiation_summary WHERE negotiation_id = $1", negotiation_id)


async def resolve_ref(conn: asyncpg.Connection | asyncpg.Pool, ref: str) -> uuid.UUID | None:
    """A negotiation's id from its id or its slug; None if neither is known."""
    try:
        as_id = uuid.UUID(ref)
    except ValueError:
        as_id = None
    if as_id is not None:
        found = await conn.fetchval(
            "SELECT negotiation_id FROM negotiation_summary WHERE negotiation_id = $1", as_id
        )
        if found is not None:
            return found
    return await conn.fetchval("SELECT negotiation_id FROM negotiation_summary WHERE slug = $1", ref)


_LIST_CURSOR = "negotiations.v1"


async def list_negotiations(
    conn: asyncpg.Connection | asyncpg.Pool,
    after_cursor: str | None = None,
    limit: int = 50,
    status: str | None = None,
    party: str | None = None,
) -> NegotiationPage:
    """Negotiations in the order they were opened, `limit` per page.

    `after_cursor` is the `next` of the previous page (raises
    `projections.cursors.InvalidCursor` for anything else); `status` filters on
    active|suspended|concluded, `party` on a party or mediator code.
    """
    after = list_cursor_position(after_cursor)
    rows = await conn.fetch(
        """
        SELECT created_position, list_item_json FROM negotiation_summary
        WHERE created_position > $1
          AND ($3::text IS NULL OR status = $3)
          AND ($4::text IS NULL OR parties @> ARRAY[$4::text])
        ORDER BY created_position
        LIMIT $2
        """,
        after,
        limit + 1,
        status,
        party,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return NegotiationPage(
        items=[msgspec.Raw(r["list_item_json"]) for r in rows],
        next=cursors.encode(_LIST_CURSOR, rows[-1]["created_position"]) if more else None,
    )


def list_cursor_position(after_cursor: str | None) -> int:
    """The creation position a list cursor names (0 for the first page)."""
    if after_cursor is None:
        return 0
    (position,) = cursors.decode(_LIST_CURSOR, after_cursor, 1)
    return cursors.number(position, 2**63 - 1)


def list_cursor(created_position: int) -> str:
    return cursors.encode(_LIST_CURSOR, created_position)


async def negotiations_after(
    conn: asyncpg.Connection | asyncpg.Pool, after: int, limit: int
) -> list[tuple[uuid.UUID, int]]:
    """(id, creation position) of the negotiations opened after `after`, in that
    order: the list's order, for the reads that fold each one from the log."""
    rows = await conn.fetch(
        "SELECT negotiation_id, created_position FROM negotiation_summary WHERE created_position > $1"
        " ORDER BY created_position LIMIT $2",
        after,
        limit,
    )
    return [(r["negotiation_id"], r["created_position"]) for r in rows]
