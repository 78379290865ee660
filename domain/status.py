"""THE status fold: from a stream's recorded facts to its status view.

This is the only implementation of what the facts mean. The write side
(:mod:`domain.issue`, :mod:`domain.negotiation`) checks its rules against the
same tallies, the projections serve these views, time travel and offline
replay call :func:`fold_issue` / :func:`fold_negotiation` on a selection of the
log (:func:`select_known`).

Corrections:

* ``record.retracted`` removes the retracted fact's effect. A fold cannot undo
  an arbitrary effect in place, so :class:`IssueFold` / :class:`NegotiationFold`
  keep the records they have seen and, on a retraction, refold them (the
  batch form first collects every retracted id, then skips those facts). Both
  paths are checked equal by a property test. Streams are small (one issue),
  so the refold is cheap; a projection that does not keep its fold in memory
  can always rebuild it from the stream.
* ``claim.disputed`` keeps the fact's effect and flags ``disputed: true`` on
  the proposal, agreement, item, position, party or round the disputed fact
  is about, and lists the dispute.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import msgspec

from domain import world_time
from domain.records import Recorded
from domain.timeline import describe  # re-exported: the timeline's sentences live beside the fold

# --- views ----------------------------------------------------------------------


class PositionView(msgspec.Struct, kw_only=True):
    stance: str
    summary: str
    occurred_on: str
    conditions: list[str] = []
    event_id: str = ""
    disputed: bool = False


class ProposalView(msgspec.Struct, kw_only=True):
    proposal_id: str
    by: str
    to: list[str]
    summary: str
    status: str  # open | accepted | rejected | withdrawn | countered
    awaiting: list[str]
    disputed: bool = False
    terms: str | None = None
    counters: str | None = None
    countered_by: str | None = None
    accepted_by: list[str] = []
    rejected_by: list[str] = []
    occurred_on: str = ""


class AgreementView(msgspec.Struct, kw_only=True):
    agreement_id: str
    level: str  # in_principle | final
    parties: list[str]
    summary: str
    state: str  # reached | implemented | violated
    disputed: bool = False
    proposal_id: str | None = None
    violations: int = 0
    occurred_on: str = ""


class ItemView(msgspec.Struct, kw_only=True):
    kind: str  # ceasefire | corridor
    id: str
    state: str  # proposed | agreed | rejected | opened | violated | closed | ended
    disputed: bool = False
    agreed: bool = False  # was ever agreed (an ended/closed item then is history)
    by: str | None = None
    parties: list[str] = []
    scope: str | None = None
    area: str | None = None
    starts_at: str | None = None
    ends_at: str | None = None
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    via: str | None = None
    window: str | None = None
    purpose: str | None = None
    summary: str | None = None
    violations: int = 0
    end_reason: str | None = None
    occurred_on: str = ""
    updated_on: str = ""


class LinkView(msgspec.Struct):
    issue: str
    relation: str


class DisputeView(msgspec.Struct, kw_only=True):
    event_id: str  # the disputed fact
    by: str
    summary: str
    occurred_on: str
    dispute_id: str  # the claim.disputed event itself


class IssueView(msgspec.Struct, kw_only=True):
    key: str
    title: str
    category: str
    status: str
    positions: dict[str, PositionView]
    proposals: list[ProposalView]
    agreements: list[AgreementView]
    items: list[ItemView]
    item_counts: dict[str, int]
    linked: list[LinkView]
    disputes: list[DisputeView]
    retracted: list[str]
    last_activity_on: str | None
    events: int
    version: int
    lineage: list[str]


class PartyView(msgspec.Struct, kw_only=True):
    code: str
    name: str
    role: str
    active: bool = True
    disputed: bool = False


class RoundView(msgspec.Struct, kw_only=True):
    round_id: str
    state: str  # scheduled | held | cancelled
    venue: str | None = None
    country: str | None = None
    level: str | None = None
    format: str | None = None
    participants: list[str] = []
    mediator: str | None = None
    issues: list[str] = []
    summary: str | None = None
    occurred_on: str = ""
    disputed: bool = False


class NegotiationView(msgspec.Struct, kw_only=True):
    id: str
    slug: str
    title: str
    status: str  # active | suspended | concluded
    parties: list[PartyView]
    mediators: list[PartyView]
    rounds: list[RoundView]
    outcome: str | None
    disputes: list[DisputeView]
    retracted: list[str]
    last_activity_on: str | None
    events: int
    version: int
    lineage: list[str]


# --- what each fact is about (disputes flag it, retractions check dependants) ----

Subject = tuple[str, str]  # ("proposal", id) | ("agreement", id) | ("item", id) | ...


def subjects_of(record: Recorded) -> tuple[Subject | None, tuple[Subject, ...]]:
    """(the subject a fact is about, other subjects it refers to)."""
    data: Any = record.data
    kind = record.type.split(".")[0]
    if kind == "proposal":
        refs = (("proposal", data.counters),) if record.type == "proposal.countered" else ()
        return ("proposal", data.proposal_id), refs
    if kind == "agreement":
        refs = (("proposal", data.proposal_id),) if getattr(data, "proposal_id", None) else ()
        return ("agreement", data.agreement_id), refs
    if kind == "ceasefire":
        return ("item", data.ceasefire_id), ()
    if kind == "corridor":
        return ("item", data.corridor_id), ()
    if kind == "position":
        return ("position", data.party), ()
    if kind == "round":
        return ("round", data.round_id), ()
    if record.type == "party.joined":
        return ("party", data.party.code), ()
    if record.type == "party.left":
        return ("party", data.party), ()
    return None, ()


class EventRef(msgspec.Struct):
    """What the corrections rules need to know about a recorded fact."""

    type: str
    claimed_by: tuple[str, ...]
    retracted: bool = False
    disputed_by: list[str] = []


class StreamTally:
    """Bookkeeping common to both streams."""

    def __init__(self) -> None:
        self.events = 0
        self.version = 0
        self.lineage: list[str] = []
        self.retracted: list[str] = []
        self.disputes: list[DisputeView] = []
        self.last_activity_on: str | None = None
        self.index: dict[str, EventRef] = {}  # every event id of the stream
        self.about: dict[str, Subject] = {}  # event id -> subject of a live fact
        self.introduced: dict[Subject, str] = {}  # subject -> event id introducing it
        self.mentions: dict[Subject, list[str]] = {}  # subject -> live event ids naming it
        self.disputed: set[Subject] = set()

    def add(self, record: Recorded, retracted: bool = False) -> None:
        """One record of the stream; the stream's own facts go to :meth:`add_fact`."""
        self.count(record, retracted)
        if retracted:
            return
        if record.type == "record.retracted":
            self.retracted.append(str(record.data.event_id))  # type: ignore[attr-defined]
            return
        self.note_subjects(record)
        if record.type == "claim.disputed":
            self.dispute(record)
            return
        self.add_fact(record)

    def add_fact(self, record: Recorded) -> None:
        raise NotImplementedError

    def count(self, record: Recorded, retracted: bool) -> None:
        self.events += 1
        self.version = record.version
        event_id = str(record.id)
        self.index[event_id] = EventRef(record.type, record.claimed_by, retracted=retracted)
        if retracted:
            return
        self.lineage.append(event_id)
        if record.type == "record.retracted":
            return
        if self.last_activity_on is None or world_time.sort_key(record.occurred_on) > world_time.sort_key(
            self.last_activity_on
        ):
            self.last_activity_on = record.occurred_on

    def note_subjects(self, record: Recorded) -> None:
        subject, refs = subjects_of(record)
        event_id = str(record.id)
        if subject is not None:
            self.about[event_id] = subject
            self.introduced.setdefault(subject, event_id)
            self.mentions.setdefault(subject, []).append(event_id)
        for ref in refs:
            self.mentions.setdefault(ref, []).append(event_id)

    def dispute(self, record: Recorded) -> None:
        data: Any = record.data
        target = str(data.event_id)
        ref = self.index.get(target)
        if ref is None or ref.retracted:
            return  # the disputed fact is not part of this view
        ref.disputed_by = [*ref.disputed_by, data.by]
        self.disputes.append(
            DisputeView(
                event_id=target,
                by=data.by,
                summary=data.summary,
                occurred_on=record.occurred_on,
                dispute_id=str(record.id),
            )
        )
        subject = self.about.get(target)
        if subject is not None:
            self.disputed.add(subject)


# --- issue ------------------------------------------------------------------------------

# Item states reached by each step (transition legality is a write-side rule).
_ITEM_STEP = {
    "proposed": "proposed",
    "agreed": "agreed",
    "rejected": "rejected",
    "opened": "opened",
    "violated": "violated",
    "closed": "closed",
    "ended": "ended",
}
_ITEM_DETAILS = ("scope", "area", "starts_at", "ends_at", "from_", "to", "via", "window", "purpose", "summary")


class IssueTally(StreamTally):
    """The accumulated meaning of an issue's live (non-retracted) facts."""

    def __init__(self) -> None:
        super().__init__()
        self.key = ""
        self.title = ""
        self.category = ""
        self.raised = False
        self.dropped = False
        self.dropped_on: str | None = None
        self.discussed = False
        self.positions: dict[str, PositionView] = {}
        self.proposals: dict[str, ProposalView] = {}
        self.agreements: dict[str, AgreementView] = {}
        self.items: dict[str, ItemView] = {}
        self.links: dict[str, str] = {}

    def item_ids(self) -> set[str]:
        """Every id in the issue's one namespace of proposals, agreements and items."""
        return set(self.proposals) | set(self.agreements) | set(self.items)

    def add_fact(self, record: Recorded) -> None:
        handler = _ISSUE_HANDLERS.get(record.type)
        if handler is not None:
            handler(self, record, record.data)

    # handlers: one per fact type; facts whose subject is gone (its introducing
    # fact was retracted) are ignored, so a fold never fails on a valid log.

    def _raised(self, r: Recorded, d: Any) -> None:
        self.key, self.title, self.category, self.raised = d.issue, d.title, d.category, True

    def _linked(self, r: Recorded, d: Any) -> None:
        self.links[d.related_issue] = d.relation

    def _discussed(self, r: Recorded, d: Any) -> None:
        self.discussed = True

    def _position(self, r: Recorded, d: Any) -> None:
        current = self.positions.get(d.party)
        # The latest position in world time wins, so backfilling an older
        # statement does not overwrite a newer one.
        if current is None or world_time.sort_key(r.occurred_on) >= world_time.sort_key(current.occurred_on):
            self.positions[d.party] = PositionView(
                stance=d.stance,
                summary=d.summary,
                occurred_on=r.occurred_on,
                conditions=list(d.conditions),
                event_id=str(r.id),
            )

    def _proposal_made(self, r: Recorded, d: Any) -> None:
        counters = getattr(d, "counters", None)
        self.proposals[d.proposal_id] = ProposalView(
            proposal_id=d.proposal_id,
            by=d.by,
            to=list(d.to),
            summary=d.summary,
            terms=d.terms,
            status="open",
            awaiting=list(d.to),
            counters=counters,
            occurred_on=r.occurred_on,
        )
        earlier = self.proposals.get(counters) if counters else None
        if earlier is not None and earlier.status == "open":
            earlier.status, earlier.awaiting, earlier.countered_by = "countered", [], d.proposal_id

    def _proposal_accepted(self, r: Recorded, d: Any) -> None:
        p = self.proposals.get(d.proposal_id)
        if p is None or p.status != "open":
            return
        p.accepted_by = [*p.accepted_by, d.by]
        p.awaiting = [c for c in p.awaiting if c != d.by]
        # Accepted once every addressee has; an unaddressed proposal by any taker.
        if not p.to or not p.awaiting:
            p.status, p.awaiting = "accepted", []

    def _proposal_rejected(self, r: Recorded, d: Any) -> None:
        p = self.proposals.get(d.proposal_id)
        if p is None or p.status != "open":
            return
        p.rejected_by = [*p.rejected_by, d.by]
        p.status, p.awaiting = "rejected", []

    def _proposal_withdrawn(self, r: Recorded, d: Any) -> None:
        p = self.proposals.get(d.proposal_id)
        if p is None or p.status != "open":
            return
        p.status, p.awaiting = "withdrawn", []

    def _agreement_reached(self, r: Recorded, d: Any) -> None:
        self.agreements[d.agreement_id] = AgreementView(
            agreement_id=d.agreement_id,
            level=d.level,
            parties=list(d.parties),
            summary=d.summary,
            state="reached",
            proposal_id=d.proposal_id,
            occurred_on=r.occurred_on,
        )
        p = self.proposals.get(d.proposal_id) if d.proposal_id else None
        if p is not None and p.status == "open":
            # An agreement on an open proposal settles it.
            p.status, p.awaiting = "accepted", []

    def _agreement_implemented(self, r: Recorded, d: Any) -> None:
        a = self.agreements.get(d.agreement_id)
        if a is not None:
            a.state = "implemented"

    def _agreement_violated(self, r: Recorded, d: Any) -> None:
        a = self.agreements.get(d.agreement_id)
        if a is not None:
            a.state, a.violations = "violated", a.violations + 1

    def _dropped(self, r: Recorded, d: Any) -> None:
        self.dropped, self.dropped_on = True, r.occurred_on

    def _reopened(self, r: Recorded, d: Any) -> None:
        self.dropped, self.dropped_on = False, None

    def _item(self, r: Recorded, d: Any) -> None:
        kind, step = r.type.split(".")
        item_id = getattr(d, f"{kind}_id")
        item = self.items.get(item_id)
        if item is None:
            if step not in ("proposed", "agreed"):
                return  # only proposed/agreed introduce an item
            item = ItemView(kind=kind, id=item_id, state=step, occurred_on=r.occurred_on)
            self.items[item_id] = item
        item.state = _ITEM_STEP[step]
        item.updated_on = r.occurred_on
        for name in _ITEM_DETAILS:
            value = getattr(d, name, None)
            if value is not None and step in ("proposed", "agreed"):
                setattr(item, name, value)
        if step == "proposed":
            item.by = d.by
        elif step == "agreed":
            item.agreed = True
            if d.parties:
                item.parties = list(d.parties)
        elif step == "violated":
            item.violations += 1
        elif step == "ended":
            item.end_reason = d.reason
        elif step == "rejected":
            pass

    def view(self) -> IssueView:
        proposals = [msgspec.structs.replace(p, disputed=("proposal", p.proposal_id) in self.disputed) for p in self.proposals.values()]
        agreements = [
            msgspec.structs.replace(a, disputed=("agreement", a.agreement_id) in self.disputed)
            for a in self.agreements.values()
        ]
        items = [msgspec.structs.replace(i, disputed=("item", i.id) in self.disputed) for i in self.items.values()]
        positions = {
            party: msgspec.structs.replace(p, disputed=("position", party) in self.disputed)
            for party, p in sorted(self.positions.items())
        }
        counts: dict[str, int] = {}
        for item in items:
            counts[item.state] = counts.get(item.state, 0) + 1
        return IssueView(
            key=self.key,
            title=self.title,
            category=self.category,
            status=issue_status(
                dropped=self.dropped,
                discussed=self.discussed or bool(self.positions),
                proposals=proposals,
                agreements=agreements,
                items=items,
            ),
            positions=positions,
            proposals=proposals,
            agreements=agreements,
            items=items,
            item_counts=dict(sorted(counts.items())),
            linked=[LinkView(issue, relation) for issue, relation in self.links.items()],
            disputes=list(self.disputes),
            retracted=list(self.retracted),
            last_activity_on=self.last_activity_on,
            events=self.events,
            version=self.version,
            lineage=list(self.lineage),
        )


_ISSUE_HANDLERS = {
    "issue.raised": IssueTally._raised,
    "issues.linked": IssueTally._linked,
    "issue.discussed": IssueTally._discussed,
    "position.stated": IssueTally._position,
    "proposal.made": IssueTally._proposal_made,
    "proposal.countered": IssueTally._proposal_made,
    "proposal.accepted": IssueTally._proposal_accepted,
    "proposal.rejected": IssueTally._proposal_rejected,
    "proposal.withdrawn": IssueTally._proposal_withdrawn,
    "agreement.reached": IssueTally._agreement_reached,
    "agreement.implemented": IssueTally._agreement_implemented,
    "agreement.violated": IssueTally._agreement_violated,
    "issue.dropped": IssueTally._dropped,
    "issue.reopened": IssueTally._reopened,
    **{f"ceasefire.{s}": IssueTally._item for s in ("proposed", "agreed", "rejected", "violated", "ended")},
    **{f"corridor.{s}": IssueTally._item for s in ("proposed", "agreed", "rejected", "opened", "violated", "closed")},
}

SETTLED_ITEM_STATES = frozenset({"agreed", "opened"})
CLOSED_PROPOSAL_STATES = frozenset({"rejected", "withdrawn", "countered"})


def issue_status(
    *,
    dropped: bool,
    discussed: bool,
    proposals: list[ProposalView],
    agreements: list[AgreementView],
    items: list[ItemView],
) -> str:
    """DESIGN.md "Per-issue status": the first matching rule wins.

    Interpretations of what the table leaves open:

    * an item that ended or closed *after* being agreed is history: it no
      longer counts for agreed / partially_agreed / deadlocked ("live" items);
      one closed without ever being agreed is "closed unagreed";
    * a proposal accepted by everyone it was addressed to is an agreement in
      principle on its terms (until an ``agreement.reached`` says more);
    * a countered proposal counts as answered (like rejected) for deadlock;
    * any proposal, item or agreement on the issue means it was discussed.
    """
    if dropped:
        return "dropped"
    if any(a.state == "violated" for a in agreements) or any(i.agreed and i.state == "violated" for i in items):
        return "violated"
    if any(a.state == "implemented" for a in agreements):
        return "implemented"
    live = [i for i in items if not (i.agreed and i.state in ("ended", "closed"))]
    settled = [i for i in live if i.state in SETTLED_ITEM_STATES]
    if any(a.level == "final" and a.state == "reached" for a in agreements) or (live and len(settled) == len(live)):
        return "agreed"
    if settled:
        return "partially_agreed"
    if any(a.level == "in_principle" and a.state == "reached" for a in agreements) or any(
        p.status == "accepted" for p in proposals
    ):
        return "agreed_in_principle"
    if any(p.status == "open" for p in proposals) or any(i.state == "proposed" for i in live):
        return "proposal_on_table"
    if (proposals or live) and all(p.status in CLOSED_PROPOSAL_STATES for p in proposals) and all(
        i.state == "rejected" for i in live
    ):
        return "deadlocked"
    if discussed or proposals or items or agreements:
        return "under_discussion"
    return "raised"


def _retracted_ids(records: list[Recorded]) -> set[str]:
    return {str(r.data.event_id) for r in records if r.type == "record.retracted"}  # type: ignore[attr-defined]


_TallyT = TypeVar("_TallyT", "IssueTally", "NegotiationTally")


def _tally(tally_class: type[_TallyT], records: list[Recorded]) -> _TallyT:
    """One stream's records (in stream order) added to a new tally, the retracted ones as such."""
    retracted = _retracted_ids(records)
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
        if record.type == "record.retracted":
            self.tally = _tally(self.tally_class, self.records)
        else:
            self.tally.add(record)


def fold_issue(records: Iterable[Recorded]) -> IssueView:
    """An issue's status view from its stream's records (in stream order)."""
    return _tally(IssueTally, list(records)).view()


class IssueFold(_StreamFold[IssueTally]):
    """Incremental :func:`fold_issue` for projections and the write side
    (``view()`` equals ``fold_issue`` of the records applied so far)."""

    tally_class = IssueTally

    def view(self) -> IssueView:
        return self.tally.view()


# --- negotiation ---------------------------------------------------------------------


class NegotiationTally(StreamTally):
    def __init__(self) -> None:
        super().__init__()
        self.id = ""
        self.slug = ""
        self.title = ""
        self.status = "active"
        self.concluded_on: str | None = None
        self.outcome: str | None = None
        self.parties: dict[str, PartyView] = {}
        self.rounds: dict[str, RoundView] = {}

    def active_parties(self) -> dict[str, PartyView]:
        return {code: p for code, p in self.parties.items() if p.active}

    def add_fact(self, record: Recorded) -> None:
        d: Any = record.data
        t = record.type
        if t == "negotiation.opened":
            self.id, self.slug, self.title = str(record.stream_id), d.slug, d.title
            for p in d.parties:
                self.parties[p.code] = PartyView(code=p.code, name=p.name, role="party")
            for p in d.mediators:
                self.parties[p.code] = PartyView(code=p.code, name=p.name, role="mediator")
        elif t == "party.joined":
            self.parties[d.party.code] = PartyView(code=d.party.code, name=d.party.name, role=d.role)
        elif t == "party.left":
            if d.party in self.parties:
                self.parties[d.party].active = False
        elif t in ("round.scheduled", "round.held"):
            state = "held" if t == "round.held" else "scheduled"
            known = self.rounds.get(d.round_id)
            fields = {
                name: getattr(d, name)
                for name in ("venue", "country", "level", "format", "mediator", "summary")
                if getattr(d, name) is not None
            }
            if d.participants:
                fields["participants"] = list(d.participants)
            if d.issues:
                fields["issues"] = list(d.issues)
            if known is None:
                self.rounds[d.round_id] = RoundView(round_id=d.round_id, state=state, occurred_on=record.occurred_on, **fields)
            else:
                # Holding a scheduled round: what was known ahead is kept, what
                # the held round reports overrides it.
                for name, value in fields.items():
                    setattr(known, name, value)
                known.state, known.occurred_on = state, record.occurred_on
        elif t == "round.cancelled":
            if d.round_id in self.rounds:
                self.rounds[d.round_id].state = "cancelled"
        elif t in ("negotiation.suspended", "negotiation.resumed") and self.status != "concluded":
            self.status = "suspended" if t == "negotiation.suspended" else "active"
        elif t == "negotiation.concluded":
            self.status, self.concluded_on, self.outcome = "concluded", record.occurred_on, d.outcome

    def view(self) -> NegotiationView:
        parties = [
            msgspec.structs.replace(p, disputed=("party", p.code) in self.disputed) for p in self.parties.values()
        ]
        return NegotiationView(
            id=self.id,
            slug=self.slug,
            title=self.title,
            status=self.status,
            parties=[p for p in parties if p.role != "mediator"],
            mediators=[p for p in parties if p.role == "mediator"],
            rounds=[
                msgspec.structs.replace(r, disputed=("round", r.round_id) in self.disputed) for r in self.rounds.values()
            ],
            outcome=self.outcome,
            disputes=list(self.disputes),
            retracted=list(self.retracted),
            last_activity_on=self.last_activity_on,
            events=self.events,
            version=self.version,
            lineage=list(self.lineage),
        )


def fold_negotiation(records: Iterable[Recorded]) -> NegotiationView:
    """A negotiation's view from its own stream (issue statuses come from fold_issue)."""
    return _tally(NegotiationTally, list(records)).view()


class NegotiationFold(_StreamFold[NegotiationTally]):
    """Incremental :func:`fold_negotiation` (same contract as :class:`IssueFold`)."""

    tally_class = NegotiationTally

    def view(self) -> NegotiationView:
        return self.tally.view()


# --- bitemporal selection -------------------------------------------------------------

_CORRECTIONS = frozenset({"record.retracted", "claim.disputed"})


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
      ``known_at``.
    """
    if known_at is not None and known_at.tzinfo is None:
        raise ValueError("known_at must be timezone-aware")
    selected = []
    for record in records:
        if known_at is not None and record.recorded_at > known_at:
            continue
        if as_of is not None and record.type not in _CORRECTIONS and not world_time.occurred_by(record.occurred_on, as_of):
            continue
        selected.append(record)
    return selected


__all__ = [
    "AgreementView",
    "DisputeView",
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
    "describe",
    "fold_issue",
    "fold_negotiation",
    "issue_status",
    "select_known",
    "subjects_of",
]
