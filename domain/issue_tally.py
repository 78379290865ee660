"""The issue tally: the accumulated meaning of one issue stream's live facts.

Over 300 lines on purpose: one fold, one module, with a handler per payload class
that touches an issue; split by fact, one fold would be scattered.

One handler per payload class (``@handles``). Facts whose subject is gone
(its introducing fact was retracted) are ignored, so a fold never fails on a
valid log. The write side reads the same tally (:mod:`domain.issue`), so what
it refuses and what the read side shows can never disagree.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain import events as e
from domain import world_time
from domain.dispatch import handles
from domain.records import Recorded
from domain.status_rules import agreement_in_force, issue_status
from domain.stream_tally import StreamTally
from domain.views import (
    AgreementView,
    ImplementationView,
    IssueView,
    ItemView,
    LinkView,
    PositionView,
    ProposalView,
    RatificationView,
    ResultView,
)

# What an item's introducing steps may set on it.
_ITEM_DETAILS = ("scope", "area", "starts_at", "ends_at", "from_", "to", "via", "window", "purpose", "summary")


class IssueTally(StreamTally):
    STREAM_TYPE = "issue"

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

    # -- the issue itself -----------------------------------------------------------

    @handles(e.IssueRaised)
    def _raised(self, r: Recorded, d: e.IssueRaised) -> None:
        self.key, self.title, self.category, self.raised = d.issue, d.title, d.category, True

    @handles(e.IssuesLinked)
    def _linked(self, r: Recorded, d: e.IssuesLinked) -> None:
        self.links[d.related_issue] = d.relation

    @handles(e.IssueDiscussed)
    def _discussed(self, r: Recorded, d: e.IssueDiscussed) -> None:
        self.discussed = True

    @handles(e.IssueDropped)
    def _dropped(self, r: Recorded, d: e.IssueDropped) -> None:
        self.dropped, self.dropped_on = True, r.occurred_on

    @handles(e.IssueReopened)
    def _reopened(self, r: Recorded, d: e.IssueReopened) -> None:
        self.dropped, self.dropped_on = False, None

    @handles(e.PositionStated)
    def _position(self, r: Recorded, d: e.PositionStated) -> None:
        current = self.positions.get(d.party)
        # The latest position in world time wins, so backfilling an older
        # statement does not overwrite a newer one.
        if current is None or world_time.sort_key(r.occurred_on) >= world_time.sort_key(current.occurred_on):
            self.positions[d.party] = PositionView(
                stance=d.stance,  # type: ignore[arg-type]
                summary=d.summary,
                occurred_on=r.occurred_on,
                conditions=list(d.conditions),
                event_id=str(r.id),
            )

    # -- proposals --------------------------------------------------------------------

    @handles(e.ProposalMade, e.ProposalCountered)
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

    def _open_proposal(self, proposal_id: str) -> ProposalView | None:
        p = self.proposals.get(proposal_id)
        return p if p is not None and p.status == "open" else None

    @handles(e.ProposalAccepted)
    def _proposal_accepted(self, r: Recorded, d: e.ProposalAccepted) -> None:
        p = self._open_proposal(d.proposal_id)
        if p is None:
            return
        p.accepted_by = [*p.accepted_by, d.by]
        p.awaiting = [c for c in p.awaiting if c != d.by]
        # Accepted once every addressee has; an unaddressed proposal by any taker.
        if not p.to or not p.awaiting:
            p.status, p.awaiting = "accepted", []

    @handles(e.ProposalRejected)
    def _proposal_rejected(self, r: Recorded, d: e.ProposalRejected) -> None:
        p = self._open_proposal(d.proposal_id)
        if p is not None:
            p.rejected_by = [*p.rejected_by, d.by]
            p.status, p.awaiting = "rejected", []

    @handles(e.ProposalWithdrawn)
    def _proposal_withdrawn(self, r: Recorded, d: e.ProposalWithdrawn) -> None:
        p = self._open_proposal(d.proposal_id)
        if p is not None:
            p.status, p.awaiting = "withdrawn", []

    # -- agreements -------------------------------------------------------------------

    @handles(e.AgreementReached)
    def _agreement_reached(self, r: Recorded, d: e.AgreementReached) -> None:
        self.agreements[d.agreement_id] = AgreementView(
            agreement_id=d.agreement_id,
            issues=list(d.issues) or [d.issue],
            level=d.level,  # type: ignore[arg-type]
            parties=list(d.parties),
            summary=d.summary,
            state="reached",
            proposal_id=d.proposal_id,
            occurred_on=r.occurred_on,
        )
        p = self._open_proposal(d.proposal_id) if d.proposal_id else None
        if p is not None:
            # An agreement on an open proposal settles it.
            p.status, p.awaiting = "accepted", []

    def _agreement_step(self, d: Any, state: str) -> AgreementView | None:
        a = self.agreements.get(d.agreement_id)
        if a is not None:
            a.state = state  # type: ignore[assignment]
        return a

    @handles(e.AgreementSigned)
    def _agreement_signed(self, r: Recorded, d: e.AgreementSigned) -> None:
        a = self._agreement_step(d, "signed")
        if a is not None:
            a.signed_by = [*a.signed_by, *(p for p in d.parties if p not in a.signed_by)]

    @handles(e.AgreementRatified, e.AgreementRejected)
    def _agreement_ratification(self, r: Recorded, d: Any) -> None:
        outcome = "ratified" if isinstance(d, e.AgreementRatified) else "rejected"
        a = self._agreement_step(d, outcome)
        if a is not None:
            result = None if d.result is None else ResultView(yes=d.result.yes, no=d.result.no, turnout=d.result.turnout)
            a.ratifications = [
                *a.ratifications,
                RatificationView(
                    by=d.by, method=d.method, body=d.body, result=result, outcome=outcome, occurred_on=r.occurred_on
                ),
            ]
            a.in_force = agreement_in_force(a)

    @handles(e.AgreementImplemented)
    def _agreement_implemented(self, r: Recorded, d: e.AgreementImplemented) -> None:
        a = self._agreement_step(d, "implemented")
        if a is not None:
            a.implementation = ImplementationView(extent=d.extent, occurred_on=r.occurred_on)  # type: ignore[arg-type]

    @handles(e.AgreementViolated)
    def _agreement_violated(self, r: Recorded, d: e.AgreementViolated) -> None:
        a = self._agreement_step(d, "violated")
        if a is not None:
            a.violations += 1

    @handles(e.AgreementWithdrawn)
    def _agreement_withdrawn(self, r: Recorded, d: e.AgreementWithdrawn) -> None:
        a = self._agreement_step(d, "withdrawn")
        if a is not None:
            a.withdrawn_by = [*a.withdrawn_by, d.by]
            a.in_force = agreement_in_force(a)

    @handles(e.AgreementSuperseded)
    def _agreement_superseded(self, r: Recorded, d: e.AgreementSuperseded) -> None:
        a = self._agreement_step(d, "superseded")
        if a is not None:
            a.superseded_by = d.by_agreement
            a.in_force = agreement_in_force(a)

    # -- ceasefires and corridors -------------------------------------------------------

    def _item_step(self, r: Recorded, d: Any, kind: str, step: str) -> ItemView | None:
        """The item a step is about, its state moved to the step; introduced by
        proposed/agreed only (any other step on an unknown item is ignored)."""
        item_id = getattr(d, f"{kind}_id")
        item = self.items.get(item_id)
        if item is None:
            if step not in ("proposed", "declared", "agreed"):
                return None
            item = ItemView(kind=kind, id=item_id, state=step, occurred_on=r.occurred_on)  # type: ignore[arg-type]
            self.items[item_id] = item
        item.state = step  # type: ignore[assignment]
        item.updated_on = r.occurred_on
        if step in ("proposed", "declared", "agreed"):
            for name in _ITEM_DETAILS:
                value = getattr(d, name, None)
                if value is not None:
                    setattr(item, name, value)
        return item

    @handles(e.CeasefireProposed, e.CorridorProposed)
    def _item_proposed(self, r: Recorded, d: Any) -> None:
        item = self._item_step(r, d, d.TYPE.split(".")[0], "proposed")
        if item is not None:
            item.by = d.by

    @handles(e.CeasefireDeclared)
    def _item_declared(self, r: Recorded, d: e.CeasefireDeclared) -> None:
        item = self._item_step(r, d, "ceasefire", "declared")
        if item is not None:
            item.by, item.declared = d.by, True

    @handles(e.CeasefireAgreed, e.CorridorAgreed)
    def _item_agreed(self, r: Recorded, d: Any) -> None:
        item = self._item_step(r, d, d.TYPE.split(".")[0], "agreed")
        if item is not None:
            item.agreed = True
            if d.parties:
                item.parties = list(d.parties)

    @handles(e.CeasefireViolated, e.CorridorViolated)
    def _item_violated(self, r: Recorded, d: Any) -> None:
        item = self._item_step(r, d, d.TYPE.split(".")[0], "violated")
        if item is not None:
            item.violations += 1

    @handles(e.CeasefireEnded)
    def _item_ended(self, r: Recorded, d: e.CeasefireEnded) -> None:
        item = self._item_step(r, d, "ceasefire", "ended")
        if item is not None:
            item.end_reason = d.reason

    @handles(e.CeasefireRejected, e.CorridorRejected, e.CorridorOpened, e.CorridorClosed)
    def _item_moved(self, r: Recorded, d: Any) -> None:
        kind, step = d.TYPE.split(".")
        self._item_step(r, d, kind, step)

    # -- the view -------------------------------------------------------------------------

    def view(self) -> IssueView:
        def flagged(kind: str, key: str) -> bool:
            return (kind, key) in self.disputed

        proposals = [msgspec.structs.replace(p, disputed=flagged("proposal", p.proposal_id)) for p in self.proposals.values()]
        agreements = [msgspec.structs.replace(a, disputed=flagged("agreement", a.agreement_id)) for a in self.agreements.values()]
        items = [msgspec.structs.replace(i, disputed=flagged("item", i.id)) for i in self.items.values()]
        positions = {
            party: msgspec.structs.replace(p, disputed=flagged("position", party))
            for party, p in sorted(self.positions.items())
        }
        counts: dict[str, int] = {}
        for item in items:
            counts[item.state] = counts.get(item.state, 0) + 1
        return IssueView(
            key=self.key,
            title=self.title,
            category=self.category,  # type: ignore[arg-type]
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
            linked=[LinkView(issue, relation) for issue, relation in self.links.items()],  # type: ignore[arg-type]
            disputes=list(self.disputes),
            retracted=list(self.retracted),
            last_activity_on=self.last_activity_on,
            events=self.events,
            version=self.version,
        )
