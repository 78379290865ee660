"""The negotiation tally: parties and their roles, rounds, the lifecycle.

Folds the negotiation stream's own facts (issue statuses come from the issue
tallies). The write side reads the same tally (:mod:`domain.negotiation`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain import events as e
from domain.dispatch import handles
from domain.records import Recorded
from domain.stream_tally import StreamTally
from domain.views import NegotiationView, PartyView, RoundView

_ROUND_DETAILS = ("venue", "country", "level", "format", "mediator", "summary", "ends_on")


class NegotiationTally(StreamTally):
    STREAM_TYPE = "negotiation"

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

    @handles(e.NegotiationOpened)
    def _opened(self, r: Recorded, d: e.NegotiationOpened) -> None:
        self.id, self.slug, self.title = str(r.stream_id), d.slug, d.title
        for p in d.parties:
            self.parties[p.code] = PartyView(code=p.code, name=p.name, role="party", roles=["party"])
        for p in d.mediators:
            self.parties[p.code] = PartyView(code=p.code, name=p.name, role="mediator", roles=["mediator"])

    @handles(e.PartyJoined)
    def _joined(self, r: Recorded, d: e.PartyJoined) -> None:
        known = self.parties.get(d.party.code)
        if known is not None and known.active:
            # v2: a party already at the table takes on another role.
            if d.role not in known.roles:
                known.roles = [*known.roles, d.role]  # type: ignore[list-item]
            return
        self.parties[d.party.code] = PartyView(
            code=d.party.code, name=d.party.name, role=d.role, roles=[d.role]  # type: ignore[arg-type,list-item]
        )

    @handles(e.PartyLeft)
    def _left(self, r: Recorded, d: e.PartyLeft) -> None:
        known = self.parties.get(d.party)
        if known is None:
            return
        if d.role is not None and d.role in known.roles and len(known.roles) > 1:
            # Leaving one of several roles: the party stays in its others.
            known.roles = [role for role in known.roles if role != d.role]
            if known.role == d.role:
                known.role = known.roles[0]
            return
        known.active = False

    @handles(e.RoundScheduled, e.RoundHeld)
    def _round(self, r: Recorded, d: Any) -> None:
        state = "held" if isinstance(d, e.RoundHeld) else "scheduled"
        fields: dict[str, Any] = {name: getattr(d, name) for name in _ROUND_DETAILS if getattr(d, name) is not None}
        if d.participants:
            fields["participants"] = list(d.participants)
        if d.issues:
            fields["issues"] = list(d.issues)
        known = self.rounds.get(d.round_id)
        if known is None:
            self.rounds[d.round_id] = RoundView(round_id=d.round_id, state=state, occurred_on=r.occurred_on, **fields)
            return
        # Holding a scheduled round: what was known ahead is kept, what the
        # held round reports overrides it.
        for name, value in fields.items():
            setattr(known, name, value)
        known.state, known.occurred_on = state, r.occurred_on  # type: ignore[assignment]

    @handles(e.RoundCancelled)
    def _round_cancelled(self, r: Recorded, d: e.RoundCancelled) -> None:
        if d.round_id in self.rounds:
            self.rounds[d.round_id].state = "cancelled"

    @handles(e.NegotiationSuspended)
    def _suspended(self, r: Recorded, d: e.NegotiationSuspended) -> None:
        if self.status != "concluded":
            self.status = "suspended"

    @handles(e.NegotiationResumed)
    def _resumed(self, r: Recorded, d: e.NegotiationResumed) -> None:
        if self.status != "concluded":
            self.status = "active"

    @handles(e.NegotiationConcluded)
    def _concluded(self, r: Recorded, d: e.NegotiationConcluded) -> None:
        self.status, self.concluded_on, self.outcome = "concluded", r.occurred_on, d.outcome

    @handles(e.NegotiationReopened)
    def _reopened(self, r: Recorded, d: e.NegotiationReopened) -> None:
        if self.status == "concluded":
            self.status, self.concluded_on, self.outcome = "active", None, None

    def view(self) -> NegotiationView:
        parties = [msgspec.structs.replace(p, disputed=("party", p.code) in self.disputed) for p in self.parties.values()]
        return NegotiationView(
            id=self.id,
            slug=self.slug,
            title=self.title,
            status=self.status,  # type: ignore[arg-type]
            parties=[p for p in parties if p.role != "mediator"],
            mediators=[p for p in parties if p.role == "mediator"],
            rounds=[msgspec.structs.replace(r, disputed=("round", r.round_id) in self.disputed) for r in self.rounds.values()],
            outcome=self.outcome,
            concluded_on=self.concluded_on,
            disputes=list(self.disputes),
            retracted=list(self.retracted),
            last_activity_on=self.last_activity_on,
            events=self.events,
            version=self.version,
        )
