"""Read models: the log folded into tables the API serves from.

Each projection (one module each) names the event types it handles, holds its
SQL, applies a batch of the log inside the runner's transaction (the runner,
`service.projection.runner`, writes the checkpoint in the same transaction), carries
the DDL of its tables (`schema`, applied by service.migrate) and offers
the queries the API calls. Projections depend on `domain` only; every query
takes an asyncpg connection or pool as its first argument.

Queries for the API
-------------------

`projections.issue_status`
    fetch_one(conn, negotiation_id: UUID, key: str) -> bytes | None
        one issue's status view (domain.status.IssueView), exact JSON bytes.
    fetch_for_negotiation(conn, negotiation_id, *, status=None, category=None, party=None)
        -> list[msgspec.Raw]        the negotiation's issue views, by key.

`projections.issue_snapshots`
    snapshots_at(conn, versions: {stream_id: version in the store}, as_of: date | datetime)
        -> {stream_id: Snapshot(view_json: bytes | None)}   the issue views as of a
        world time, only for streams whose snapshots are exact at that version.

`projections.negotiation_summary`
    resolve_ref(conn, ref: str) -> UUID | None       ref: the id or the slug.
    fetch(conn, negotiation_id) -> bytes | None      NegotiationSummary JSON:
        the domain's NegotiationView + `issue_counts` {status: n} + `agreements` (each once) + `issues`
        [IssueBrief: key, title, category, status, version, last_activity_on].
    fetch_version(conn, negotiation_id) -> int | None
    list_negotiations(conn, after_cursor=None, limit=50, status=None, party=None)
        -> NegotiationPage(items: list[msgspec.Raw of NegotiationListItem], next: str | None)
    negotiations_after(conn, after: int, limit) -> [(id, created_position)]  the list's order.

`projections.timeline`
    fetch(conn, negotiation_id, after: str | None = None, limit=100)
        -> TimelinePage(items: list[TimelineEntry], next: str | None)

Cursors are opaque strings; one not issued by these functions raises
`projections.cursors.InvalidCursor` (a ValueError: answer 400).

The converter from a stored event to the domain's record is
`projections.records.recorded_from_stored(stored_event) -> domain.records.Recorded`.

Lineage
-------
Every row records the events behind it by naming its stream and version
(`issue_status.stream_id, version`; `negotiation_summary.negotiation_id,
version`): the lineage is that stream's live facts up to that version,
retracted ones excluded (`domain.status.lineage`). It is served from the log by
its own paged routes (`GET /negotiations/{ref}/lineage`,
`…/issues/{key}/lineage`), not stored in the rows or the views: a list of every
event id, rewritten on each fact, made a stream's projection writes O(n²)
(issue 15; migration 0034 dropped the columns). Each timeline row is one event
(`event_id`).
"""

from __future__ import annotations

from projections.issue_status import IssueStatusProjection
from projections.negotiation_summary import NegotiationSummaryProjection
from projections.projection import Projection
from projections.timeline import TimelineProjection

# Every projection, by name: the runner, `parley project` and `parley projections
# rebuild NAME` know no others (the names are also the only table lists used in
# rebuild DDL).
PROJECTIONS: dict[str, type[Projection]] = {
    IssueStatusProjection.name: IssueStatusProjection,
    NegotiationSummaryProjection.name: NegotiationSummaryProjection,
    TimelineProjection.name: TimelineProjection,
}

PROJECTION_NAMES: tuple[str, ...] = tuple(PROJECTIONS)

__all__ = ["PROJECTIONS", "PROJECTION_NAMES", "Projection"]
