"""THE status fold: from a stream's recorded facts to its status view.

This is the only implementation of what the facts mean. The write side
(:mod:`domain.issue`, :mod:`domain.negotiation`) checks its rules against the
same tallies, the projections serve these views, time travel and offline
replay call :func:`fold_issue` / :func:`fold_negotiation` on a selection of the
log (:func:`select_known`). The parts:

* :mod:`domain.views`              -- the view Structs clients read
* :mod:`domain.stream_tally`       -- counts, lineage, corrections, subjects
* :mod:`domain.issue_tally`        -- the meaning of an issue's facts
* :mod:`domain.negotiation_tally`  -- parties, rounds, lifecycle
* :mod:`domain.status_rules`       -- the per-issue status table

Corrections:

* ``record.retracted`` removes the retracted fact's effect. A fold cannot undo
  an arbitrary effect in place, so :class:`IssueFold` / :class:`NegotiationFold`
  keep the records they have seen and, on a retraction, refold them (the
  batch form first collects every retracted id, then skips those facts). Both
  paths are checked equal by a property test.
* ``claim.disputed`` keeps the fact's effect and flags ``disputed: true`` on
  the proposal, agreement, item, position, party or round the disputed fact
  is about, and lists the dispute.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import msgspec

from domain import events as e
from domain import world_time
from domain.issue_tally import IssueTally
from domain.negotiation_tally import NegotiationTally
from domain.records import Recorded
from domain.status_rules import issue_status
from domain.stream_tally import EventRef, StreamTally, subjects_of
from domain.timeline import describe  # re-exported: the timeline's sentences live beside the fold
from domain.views import (
    AgreementView,
    DisputeView,
    IssueView,
    ItemView,
    LinkView,
    NegotiationView,
    PartyView,
    PositionView,
    ProposalView,
    RoundView,
)

_TallyT = TypeVar("_TallyT", IssueTally, NegotiationTally)


def _tally(tally_class: type[_TallyT], records: list[Recorded]) -> _TallyT:
    """One stream's records (in stream order) added to a new tally, the retracted ones as such."""
    retracted = {str(r.data.event_id) for r in records if isinstance(r.data, e.RecordRetracted)}
    tally = tally_class()
    for record in records:
        tally.add(record, retracted=str(record.id) in retracted)
    return tally


class _StreamFold(Generic[_TallyT]):
    """Incremental fold of one stream: ``apply`` one record at a time; ``view()``
    at any point equals the batch fold of the records applied so far. A
    retraction refolds the kept records (see the module docstring)."""

    tally_class: type[_TallyT]

    def __init__(self, records: Iterable[Recorded] = ()) -> None:
        self.records: list[Recorded] = []
        self.tally: _TallyT = self.tally_class()
        for record in records:
            self.apply(record)

    def apply(self, record: Recorded) -> None:
        self.records.append(record)
        if isinstance(record.data, e.RecordRetracted):
            self.tally = _tally(self.tally_class, self.records)
        else:
            self.tally.add(record)


def fold_issue(records: Iterable[Recorded]) -> IssueView:
    """An issue's status view from its stream's records (in stream order)."""
    return _tally(IssueTally, list(records)).view()


class IssueFold(_StreamFold[IssueTally]):
    """Incremental :func:`fold_issue` for projections and the write side."""

    tally_class = IssueTally

    def view(self) -> IssueView:
        return self.tally.view()


def fold_negotiation(records: Iterable[Recorded]) -> NegotiationView:
    """A negotiation's view from its own stream (issue statuses come from fold_issue)."""
    return _tally(NegotiationTally, list(records)).view()


def lineage(records: Iterable[Recorded], stream_type: str) -> list[str]:
    """The ids of the live (not retracted) events of one stream's records, in
    stream order: the facts behind its view. Served by its own paged route,
    not inside the view, so a view's size and a projection's write do not grow
    with every fact of the stream."""
    if stream_type == "issue":
        return list(_tally(IssueTally, list(records)).lineage)
    return list(_tally(NegotiationTally, list(records)).lineage)


class NegotiationFold(_StreamFold[NegotiationTally]):
    """Incremental :func:`fold_negotiation` (same contract as :class:`IssueFold`)."""

    tally_class = NegotiationTally

    def view(self) -> NegotiationView:
        return self.tally.view()


def negotiation_agreements(issues: Iterable[Any]) -> list[AgreementView]:
    """Every agreement of a negotiation once, from the views (anything with a
    ``key`` and ``agreements``: an IssueView, a stored brief) of the issues it
    covers (each holds the whole agreement: its facts are recorded on each),
    disputed when any copy is; in world-time order, then by id."""
    merged: dict[tuple[str, tuple[str, ...]], AgreementView] = {}
    for view in sorted(issues, key=lambda v: v.key):
        for a in view.agreements:
            key = (a.agreement_id, tuple(a.issues))
            known = merged.get(key)
            if known is None:
                merged[key] = a
            elif a.disputed and not known.disputed:
                merged[key] = msgspec.structs.replace(known, disputed=True)
    return sorted(merged.values(), key=lambda a: (world_time.sort_key(a.occurred_on), a.agreement_id, a.issues))


# --- bitemporal selection -------------------------------------------------------------


def select_known(
    records: Iterable[Recorded],
    *,
    as_of: str | dt.date | dt.datetime | None = None,
    known_at: dt.datetime | None = None,
) -> list[Recorded]:
    """The records a bitemporal view folds, in their original order.

    * ``known_at`` (record time): only records with ``recorded_at <= known_at``
      -- the record as it stood then, including facts retracted since.
    * ``as_of`` (world time): only facts that had occurred by then (see
      :func:`domain.world_time.occurred_by` for days versus instants).
      Retractions and disputes are corrections of the record, not events in
      the world: they are kept whatever their ``occurred_on``, subject only to
      ``known_at`` -- and only when the fact they correct is in the window.

    Every field of the view folded from the selection (counts, version, last
    activity, lineage, disputes) then comes from these records only; last
    activity is the latest world time of a fact that is not a correction, so a
    later dispute cannot date a past view.
    """
    if known_at is not None and known_at.tzinfo is None:
        raise ValueError("known_at must be timezone-aware")
    selected = []
    inside: set[uuid.UUID] = set()
    for record in records:
        if known_at is not None and record.recorded_at > known_at:
            continue
        if isinstance(record.data, e.CORRECTIONS):
            # A correction of a fact outside the window is not part of it
            # either: nothing of it (count, version, lineage) may leak in.
            if record.data.event_id not in inside:
                continue
        elif as_of is not None and not world_time.occurred_by(record.occurred_on, as_of):
            continue
        selected.append(record)
        inside.add(record.id)
    return selected


__all__ = [
    "AgreementView",
    "DisputeView",
    "EventRef",
    "IssueFold",
    "IssueTally",
    "IssueView",
    "ItemView",
    "LinkView",
    "NegotiationFold",
    "NegotiationTally",
    "NegotiationView",
    "PartyView",
    "PositionView",
    "ProposalView",
    "RoundView",
    "StreamTally",
    "describe",
    "fold_issue",
    "fold_negotiation",
    "lineage",
    "negotiation_agreements",
    "issue_status",
    "select_known",
    "subjects_of",
]
