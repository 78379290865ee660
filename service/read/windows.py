"""The views of a bitemporal window, folded from a negotiation's streams.

One pure code path (no I/O) behind the server's time-travel reads
(service.read.queries) and the auditor's offline replay (service.audit.offline,
`parley audit replay`): the negotiation's summary, its issues' views and its
timeline, over the facts inside the window (`as_of` world time, `known_at`
record time; neither: every fact, which equals what the projections serve).
Streams come in version order, the negotiation's first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from domain import errors, world_time
from domain.records import Recorded
from domain.status import IssueView, fold_issue, fold_negotiation, select_known
from projections.negotiation_summary import (
    NegotiationListItem,
    NegotiationSummary,
    StoredBrief,
    summarise,
)
from projections.timeline import TimelineEntry, TimelinePage
from service.read.past_timeline import past_timeline


class InvalidTimeParameter(ValueError):
    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(detail)
        self.parameter = parameter


@dataclass(frozen=True)
class TimeTravel:
    """A bitemporal view: world time `as_of`, record time `known_at` (either may be None)."""

    as_of: dt.date | dt.datetime | None = None
    known_at: dt.datetime | None = None

    @property
    def requested(self) -> bool:
        return self.as_of is not None or self.known_at is not None

    @classmethod
    def parse(cls, as_of: str | None, known_at: str | None) -> "TimeTravel":
        return cls(
            as_of=_parse_time("as_of", as_of),
            known_at=_end_of(_parse_time("known_at", known_at)),
        )


def _parse_time(name: str, value: str | None) -> dt.date | dt.datetime | None:
    if value is None:
        return None
    # A "+02:00" offset left unencoded in a query string arrives as " 02:00".
    value = value.strip().replace(" ", "+")
    try:
        moment = world_time.parse(value, "/" + name)
    except errors.InvalidDate as error:
        raise InvalidTimeParameter(name, error.detail) from None
    # Views compare with the end of a day, and as_of as an instant in UTC: both
    # must exist in the calendar (9999-12-31 has no next day).
    try:
        if isinstance(moment, dt.datetime):
            if name == "as_of":
                moment.astimezone(dt.timezone.utc)
        else:
            dt.datetime(moment.year, moment.month, moment.day) + dt.timedelta(days=1)
    except OverflowError:
        raise InvalidTimeParameter(name, f"{value!r} is out of the range of times this API can compare") from None
    return moment


def _end_of(moment: dt.date | dt.datetime | None) -> dt.datetime | None:
    """known_at as an instant: a day means "as recorded by the end of that day (UTC)"."""
    if moment is None or isinstance(moment, dt.datetime):
        return moment
    next_day = dt.datetime(moment.year, moment.month, moment.day, tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
    return next_day - dt.timedelta(microseconds=1)


def issue_views(issue_streams: list[list[Recorded]], travel: TimeTravel) -> list[IssueView]:
    """Each issue's view over the window (in the order of the streams given)."""
    views = []
    for records in issue_streams:
        selected = select_known(records, as_of=travel.as_of, known_at=travel.known_at)
        # An issue exists in a view only once it was raised within it.
        if selected and selected[0].type == "issue.raised":
            views.append(fold_issue(selected))
    return views


def negotiation_summary(
    negotiation_records: list[Recorded], issue_streams: list[list[Recorded]], travel: TimeTravel
) -> tuple[NegotiationSummary, NegotiationListItem] | None:
    """The negotiation's summary and list entry over the window; None when it was
    not yet opened within it."""
    selected = select_known(negotiation_records, as_of=travel.as_of, known_at=travel.known_at)
    if not selected or selected[0].type != "negotiation.opened":
        return None
    briefs = [StoredBrief.of(view) for view in issue_views(issue_streams, travel)]
    return summarise(fold_negotiation(selected), sorted(briefs, key=lambda b: b.key))


def timeline_page(
    negotiation_id: uuid.UUID,
    negotiation_records: list[Recorded],
    issue_streams: list[list[Recorded]],
    travel: TimeTravel,
    *,
    after: str | None = None,
    limit: int,
) -> TimelinePage:
    """One page of the window's timeline (the projection's order and cursors)."""
    return past_timeline(
        negotiation_id, [negotiation_records, *issue_streams], as_of=travel.as_of, known_at=travel.known_at,
        after=after, limit=limit,
    )  # fmt: skip


def timeline(
    negotiation_id: uuid.UUID, negotiation_records: list[Recorded], issue_streams: list[list[Recorded]], travel: TimeTravel
) -> list[TimelineEntry]:
    """The window's whole timeline."""
    total = len(negotiation_records) + sum(len(records) for records in issue_streams)
    return timeline_page(negotiation_id, negotiation_records, issue_streams, travel, limit=total + 1).items
