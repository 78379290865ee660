"""Reads for client apps (over 300 lines: one method per read route, each with
its time-travel path beside its fast path, reads best read together): from the projections' stored JSON (the fast path), or
from the log with the domain fold when the view asked for is in the past.

Every function returns the exact bytes to serve, so the HTTP layer never
re-encodes a view and an ETag is simply a digest of what is sent.

Time travel (`as_of`, `known_at`) reads the streams of the negotiation from the
store, narrowed with `domain.status.select_known` and folded with `fold_issue` /
`fold_negotiation`, the same functions the projections use, so with no filter
the answer equals the projection's bytes. One exception: an issue (or the
issues) `as_of` a world time with no `known_at` is first looked up in the issue
projection's snapshots (projections/issue_snapshots.py: the same fold's bytes at
each world time of the stream's facts), used only when they are valid through
the stream's version in the store now and not stale; otherwise the log is folded.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from prometheus_client import Counter

from domain import errors, world_time
from domain.issue import issue_stream_id
from domain.records import Recorded
from domain.status import (
    IssueView,
    fold_issue,
    negotiation_agreements,
    select_known,
)
from domain.views import AgreementView
from projections import cursors, issue_snapshots, issue_status, negotiation_summary, timeline
from projections.negotiation_summary import (
    NegotiationListItem,
    NegotiationSummary,
)
from projections.records import recorded_from_stored
from service.projection.watch import ProjectionWatch
from service.read import windows
from service.read.served_views import ServedViews
from service.read.windows import InvalidTimeParameter, TimeTravel  # noqa: F401  (re-exported: service.http)
from service.store.consistency import ConsistencyToken
from service.store.envelope import EventEnvelope, envelope
from service.store.event_store import EventStore
from service.read import lineage

_encoder = msgspec.json.Encoder()


class ProjectionsBehind(Exception):
    """The projections had not reached a consistency token within the wait."""

    def __init__(self, token: str, waited: float) -> None:
        super().__init__(f"the read models have not yet reached {token} after {waited:.1f} s")
        self.token = token
        self.waited = waited


class UnknownWrite(ValueError):
    """A consistency token that names no event of this log (forged, or from
    another database): waiting for it would only ever time out."""


class EventPage(msgspec.Struct):
    items: list[EventEnvelope]
    next: str | None


_HISTORY_CURSOR = "history.v1"
# Issue views served in the past, by where they came from (operators see how
# often snapshots answer; tests see that they did).
TIME_TRAVEL_ISSUE_VIEWS = Counter(
    "parley_time_travel_issue_views",
    "Issue views served with as_of/known_at: from the projection's snapshots, or folded from the log.",
    ["source"],
)
# Resolved refs held per process (dropped all at once beyond this: cheap to refill).
_REFS_HELD = 100_000


# -- negotiations and issues ----------------------------------------------------------


class Queries:
    """Every read a client makes, over the store and the projections' tables."""

    def __init__(self, store: EventStore, watch: ProjectionWatch, views: ServedViews | None = None) -> None:
        self.store = store
        self.pool = store.pool
        self.watch = watch
        # The primary's issue views held in memory (service.read.served_views); None
        # for a standby.
        self.views = views
        # Resolved refs (id or slug -> id). A negotiation is never removed and a slug
        # never renamed or reused, so a ref that resolved once resolves the same way
        # for good; a ref that did not resolve is asked again next time.
        self._refs: dict[str, uuid.UUID] = {}

    async def wait_until_reflected(self, token: ConsistencyToken, wait: float) -> None:
        """Read-your-writes: return once every projection has passed the write
        that returned `token`; ProjectionsBehind after `wait` seconds, UnknownWrite
        at once for a token that names no write."""
        checkpoint = token.checkpoint
        if token.in_range and await self.watch.wait_for(checkpoint, 0):
            return
        # A token names the last event of a write; refuse one that names none.
        if not token.in_range or not await self.store.has_event_at(checkpoint):
            raise UnknownWrite(token.text())
        await self.watch.check_reachable(checkpoint)  # a stuck projection never gets there
        if not await self.watch.wait_for(checkpoint, wait):
            raise ProjectionsBehind(token.text(), wait)

    async def resolve_negotiation(self, ref: str) -> uuid.UUID:
        """The id of the negotiation named by its id or slug, from the command side's
        tables (never behind the log), then the projection (negotiations recorded by
        other means, e.g. an import)."""
        known = self._refs.get(ref)
        if known is not None:
            return known
        found = await self._resolve(ref)
        if len(self._refs) >= _REFS_HELD:
            self._refs.clear()
        self._refs[ref] = found
        return found

    async def _resolve(self, ref: str) -> uuid.UUID:
        try:
            as_id = uuid.UUID(ref)
        except ValueError:
            as_id = None
        if as_id is not None:
            found = as_id if await self.store.is_negotiation(as_id) else None
        else:
            found = await self.pool.fetchval("SELECT negotiation_id FROM negotiation_slugs WHERE slug = $1", ref)
        if found is None:
            found = await negotiation_summary.resolve_ref(self.pool, ref)
        if found is None:
            raise errors.UnknownNegotiation(f"no negotiation {ref!r}")
        return found


    async def list_negotiations(
        self,
        *,
        cursor: str | None,
        limit: int,
        status: str | None,
        party: str | None,
        travel: TimeTravel = TimeTravel(),
    ) -> tuple[bytes, str | None]:
        if not travel.requested:
            page = await negotiation_summary.list_negotiations(self.pool, cursor, limit, status=status, party=party)
            return _encoder.encode({"items": page.items, "next": page.next}), page.next
        return await self._past_list(cursor=cursor, limit=limit, status=status, party=party, travel=travel)

    async def _past_list(
        self, *, cursor: str | None, limit: int, status: str | None, party: str | None, travel: TimeTravel
    ) -> tuple[bytes, str | None]:
        """The list in the past: the negotiations in the order they were opened (the
        same cursor as the projected list), each folded from the log over the window;
        one not yet opened in it is left out, and the filters apply to the past view.
        Cost: the log of every negotiation the page reads or skips past."""
        after = negotiation_summary.list_cursor_position(cursor)
        items: list[NegotiationListItem] = []
        more = False
        last = after
        while not more:
            batch = await negotiation_summary.negotiations_after(self.pool, after, limit + 1)
            for negotiation_id, created_position in batch:
                after = created_position
                found = await self._past_summary(negotiation_id, travel)
                if found is None:
                    continue
                item = found[1]
                if status is not None and item.status != status:
                    continue
                if party is not None and party not in item.parties and party not in item.mediators:
                    continue
                if len(items) == limit:
                    more = True
                    break
                items.append(item)
                last = created_position
            if len(batch) <= limit:
                break
        next_cursor = negotiation_summary.list_cursor(last) if more else None
        return _encoder.encode({"items": items, "next": next_cursor}), next_cursor

    async def _past_summary(
        self, negotiation_id: uuid.UUID, travel: TimeTravel
    ) -> tuple[NegotiationSummary, NegotiationListItem] | None:
        """The negotiation's summary and list entry folded from the log over the
        window; None when it was not yet opened within it."""
        negotiation_records, issues = await _negotiation_records(self.store, negotiation_id)
        return windows.negotiation_summary(negotiation_records, issues, travel)

    async def negotiation(self, negotiation_id: uuid.UUID, travel: TimeTravel) -> bytes:
        if not travel.requested:
            await self.watch.check_not_stuck(negotiation_summary.NegotiationSummaryProjection.name, negotiation_id)
            served = await negotiation_summary.fetch(self.pool, negotiation_id)
            if served is not None:
                return served
        # In the past, or not projected yet (a read right after the write): fold the log.
        found = await self._past_summary(negotiation_id, travel)
        if found is None:
            raise errors.UnknownNegotiation(f"negotiation {negotiation_id} was not yet recorded at that time")
        return _encoder.encode(found[0])


    # -- issues

    async def issues(
        self,
        negotiation_id: uuid.UUID,
        travel: TimeTravel,
        *,
        status: str | None,
        category: str | None,
        party: str | None,
        cursor: str | None = None,
        limit: int = 500,
    ) -> tuple[bytes, str | None]:
        """A page of the issues' status views, by key; the cursor names the last key
        of the page before. Before the negotiation existed (time travel): 404, as
        the negotiation itself."""
        after = cursors.decode(cursors.ISSUES, cursor, 1)[0] if cursor else None
        if not travel.requested:
            await self.watch.check_not_stuck(issue_status.IssueStatusProjection.name, negotiation_id)
            projected = await issue_status.fetch_for_negotiation(
                self.pool, negotiation_id, status=status, category=category, party=party
            )
            if len(projected) == await self.store.count_issue_streams(negotiation_id) or status or category or party:
                keyed = [(_KEY.decode(raw).key, raw) for raw in projected]
                return _issue_page(keyed, after, limit)
        if travel.as_of is not None and travel.known_at is None and await self._opened_by(negotiation_id, travel.as_of):
            return await self._past_issues(negotiation_id, travel, status, category, party, after, limit)
        negotiation_records, records = await _negotiation_records(self.store, negotiation_id)
        if travel.requested:
            selected = select_known(negotiation_records, as_of=travel.as_of, known_at=travel.known_at)
            if not selected or selected[0].type != "negotiation.opened":
                raise errors.UnknownNegotiation(f"negotiation {negotiation_id} was not yet recorded at that time")
            TIME_TRAVEL_ISSUE_VIEWS.labels("log").inc(len(records))
        views = [view for view in windows.issue_views(records, travel) if _wanted(view, status, category, party)]
        return _issue_page([(view.key, view) for view in sorted(views, key=lambda v: v.key)], after, limit)

    async def _opened_by(self, negotiation_id: uuid.UUID, as_of: Any) -> bool:
        """True when the negotiation's first event is its opening and had occurred
        by `as_of`: then it is the first of the window (select_known keeps stream
        order), so the negotiation existed then. False: decide from the whole log."""
        first = await self.store.read_stream(negotiation_id, 1, 1)
        return (
            bool(first)
            and first[0].type == "negotiation.opened"
            and world_time.occurred_by(first[0].occurred_on, as_of)
        )

    async def _past_issues(
        self, negotiation_id: uuid.UUID, travel: TimeTravel, status: str | None, category: str | None,
        party: str | None, after: str | None, limit: int,
    ) -> tuple[bytes, str | None]:
        """The issues `as_of` (no known_at): each from its snapshot when exact,
        else folded from its stream (the same bytes either way)."""
        versions = await self.store.issue_stream_versions(negotiation_id)
        snapshots = await issue_snapshots.snapshots_at(self.pool, versions, travel.as_of)
        keyed: list[tuple[str, Any]] = []
        for stream_id in versions:
            found = snapshots.get(stream_id)
            if found is not None:
                TIME_TRAVEL_ISSUE_VIEWS.labels("snapshot").inc()
                if found.view_json is None:
                    continue
                view, item = _issue_view.decode(found.view_json), msgspec.Raw(found.view_json)
            else:
                records = await _stream_records(self.store, stream_id)
                folded = windows.issue_views([records], travel) if records else []
                TIME_TRAVEL_ISSUE_VIEWS.labels("log").inc()
                if not folded:
                    continue
                view = item = folded[0]
            if _wanted(view, status, category, party):
                keyed.append((view.key, item))
        return _issue_page(sorted(keyed, key=lambda pair: pair[0]), after, limit)


    async def issue(
        self, negotiation_id: uuid.UUID, key: str, travel: TimeTravel, *, from_memory: bool = False
    ) -> bytes:
        """`from_memory`: the view may come from `views` (a read without a consistency
        token: see service.read.served_views)."""
        if not travel.requested:
            await self.watch.check_not_stuck(issue_status.IssueStatusProjection.name, negotiation_id)
            views = self.views if from_memory else None
            if views is not None and (held := views.get(negotiation_id, key)) is not None:
                return held
            generation = views.generation() if views is not None else 0
            served = await issue_status.fetch_one(self.pool, negotiation_id, key)
            if served is not None:
                if views is not None:
                    views.keep(generation, negotiation_id, key, served)
                return served
        stream_id = issue_stream_id(negotiation_id, key)
        if travel.as_of is not None and travel.known_at is None:
            version = await self.store.stream_version(stream_id)
            found = (await issue_snapshots.snapshots_at(self.pool, {stream_id: version}, travel.as_of)).get(stream_id)
            if found is not None:
                TIME_TRAVEL_ISSUE_VIEWS.labels("snapshot").inc()
                if found.view_json is None:
                    raise errors.UnknownIssue(f"issue {key!r} had not been raised at that time")
                return found.view_json
        records = await _stream_records(self.store, stream_id)
        if not records:
            raise errors.UnknownIssue(f"issue {key!r} has not been raised in this negotiation")
        if travel.requested:
            TIME_TRAVEL_ISSUE_VIEWS.labels("log").inc()
        selected = select_known(records, as_of=travel.as_of, known_at=travel.known_at)
        if not selected or selected[0].type != "issue.raised":
            raise errors.UnknownIssue(f"issue {key!r} had not been raised at that time")
        return _encoder.encode(fold_issue(selected))


    async def issue_history(
        self, negotiation_id: uuid.UUID, key: str, *, cursor: str | None, limit: int, travel: TimeTravel = TimeTravel()
    ) -> tuple[bytes, str | None]:
        """The issue's events as served envelopes, in stream (version) order
        (only those of the window, with ``as_of`` / ``known_at``)."""
        stream_id = issue_stream_id(negotiation_id, key)
        if travel.requested:
            return await self._past_history(stream_id, key, cursor=cursor, limit=limit, travel=travel)
        after = 0
        if cursor is not None:
            (version,) = cursors.decode(_HISTORY_CURSOR, cursor, 1)
            # Versions are int4: the page's last version must fit too.
            after = cursors.number(version, 2**31 - 1 - (limit + 1))
        events = await self.store.read_stream(stream_id, after + 1, after + limit + 1)
        if not events and after == 0:
            raise errors.UnknownIssue(f"issue {key!r} has not been raised in this negotiation")
        more = len(events) > limit
        events = events[:limit]
        next_cursor = cursors.encode(_HISTORY_CURSOR, events[-1].version) if more else None
        return _encoder.encode(EventPage(items=[envelope(e) for e in events], next=next_cursor)), next_cursor


    async def timeline_page(
        self, negotiation_id: uuid.UUID, *, cursor: str | None, limit: int, travel: TimeTravel = TimeTravel()
    ) -> tuple[bytes, str | None]:
        if not travel.requested:
            await self.watch.check_not_stuck(timeline.TimelineProjection.name, negotiation_id)
            page = await timeline.fetch(self.pool, negotiation_id, cursor, limit)
            return _encoder.encode(page), page.next
        negotiation_records, issues = await _negotiation_records(self.store, negotiation_id)
        page = windows.timeline_page(negotiation_id, negotiation_records, issues, travel, after=cursor, limit=limit)
        return _encoder.encode(page), page.next

    async def lineage_page(
        self, negotiation_id: uuid.UUID, key: str | None, *, cursor: str | None, limit: int, travel: TimeTravel
    ) -> tuple[bytes, str | None]:
        """The live events behind the negotiation's view (key None) or an issue's,
        paged from the log (service.read.lineage)."""
        if key is None:
            records = await _stream_records(self.store, negotiation_id)
            stream_type, first = "negotiation", "negotiation.opened"
            missing: errors.DomainError = errors.UnknownNegotiation(
                f"negotiation {negotiation_id} was not yet recorded at that time")
        else:
            records = await _stream_records(self.store, issue_stream_id(negotiation_id, key))
            stream_type, first = "issue", "issue.raised"
            missing = errors.UnknownIssue(f"issue {key!r} has not been raised in this negotiation" + (
                " at that time" if travel.requested and records else ""))
        return lineage.page(records, stream_type, cursor=cursor, limit=limit, as_of=travel.as_of,
                            known_at=travel.known_at, first_type=first, missing=missing)  # fmt: skip

    # -- agreements

    async def agreements(self, negotiation_id: uuid.UUID, travel: TimeTravel) -> list[AgreementView]:
        """Every agreement of the negotiation once (from the issues it covers)."""
        read = await self.issues(negotiation_id, travel, status=None, category=None, party=None)
        body = read[0] if isinstance(read, tuple) else read  # (bytes, tag) since the ETag change
        return negotiation_agreements(_issue_list.decode(body).items)

    async def agreements_page(self, negotiation_id: uuid.UUID, travel: TimeTravel) -> bytes:
        return _encoder.encode({"items": await self.agreements(negotiation_id, travel), "next": None})

    async def agreement(self, negotiation_id: uuid.UUID, agreement_id: str, travel: TimeTravel) -> bytes:
        found = [a for a in await self.agreements(negotiation_id, travel) if a.agreement_id == agreement_id]
        if not found:
            raise errors.NoSuchAgreement(f"no agreement {agreement_id!r} in this negotiation" + (
                " at that time" if travel.requested else ""))
        if len(found) > 1:  # version 1 allowed one id on several issues: the earliest
            found.sort(key=lambda a: world_time.sort_key(a.occurred_on))
        return _encoder.encode(found[0])


    async def _past_history(
        self, stream_id: uuid.UUID, key: str, *, cursor: str | None, limit: int, travel: TimeTravel
    ) -> tuple[bytes, str | None]:
        after = 0
        if cursor is not None:
            (version,) = cursors.decode(_HISTORY_CURSOR, cursor, 1)
            after = cursors.number(version, 2**31 - 1)
        events = await self.store.read_stream(stream_id)
        if not events:
            raise errors.UnknownIssue(f"issue {key!r} has not been raised in this negotiation")
        inside = {r.id for r in select_known([recorded_from_stored(e) for e in events], as_of=travel.as_of,
                                             known_at=travel.known_at)}  # fmt: skip
        events = [e for e in events if e.id in inside and e.version > after]
        more = len(events) > limit
        events = events[:limit]
        next_cursor = cursors.encode(_HISTORY_CURSOR, events[-1].version) if more else None
        return _encoder.encode(EventPage(items=[envelope(e) for e in events], next=next_cursor)), next_cursor


class _IssueList(msgspec.Struct):
    items: list[IssueView]


_issue_list = msgspec.json.Decoder(_IssueList)
_issue_view = msgspec.json.Decoder(IssueView)


# -- the log --------------------------------------------------------------------------


async def _stream_records(store: EventStore, stream_id: uuid.UUID) -> list[Recorded]:
    return [recorded_from_stored(e) for e in await store.read_stream(stream_id)]


class _Keyed(msgspec.Struct):
    key: str


_KEY = msgspec.json.Decoder(_Keyed)


def _wanted(view: IssueView, status: str | None, category: str | None, party: str | None) -> bool:
    """The list filters of GET …/issues, applied to a view folded here (the
    projection applies the same ones in SQL: issue_status.fetch_for_negotiation)."""
    return (
        (status is None or view.status == status)
        and (category is None or view.category == category)
        and (party is None or party in issue_status.parties_named(view))
    )


def _issue_page(keyed: list[tuple[str, Any]], after: str | None, limit: int) -> tuple[bytes, str | None]:
    rest = [(key, item) for key, item in keyed if after is None or key > after]
    page = rest[:limit]
    next_cursor = cursors.encode(cursors.ISSUES, page[-1][0]) if len(rest) > limit else None
    return _encoder.encode({"items": [item for _, item in page], "next": next_cursor}), next_cursor


async def _negotiation_records(
    store: EventStore, negotiation_id: uuid.UUID
) -> tuple[list[Recorded], list[list[Recorded]]]:
    """The negotiation stream's records and each issue stream's, in version order."""
    issue_streams = await store.issue_streams(negotiation_id)
    negotiation_records = await _stream_records(store, negotiation_id)
    issue_records = [await _stream_records(store, stream_id) for stream_id in issue_streams]
    return negotiation_records, [records for records in issue_records if records]
