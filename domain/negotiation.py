"""The Negotiation aggregate: parties and roles, rounds, lifecycle.

Built on ``eventsourcing.domain.Aggregate``. Its state is the negotiation
tally of :mod:`domain.status` (one meaning for the facts, read and write
side). Each fact type has an event class named as the past-tense fact, with
its stored ``TYPE`` string; ``class_version`` / ``upcast_vN_vN+1`` on these
classes version the stored payloads (see :func:`domain.events.decode_data`).

Decisions are not methods here: they are pure functions (:mod:`domain.decide`)
that read this state and return new facts; the service appends them and feeds
the stored records back through :meth:`Negotiation.apply`.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from eventsourcing.domain import Aggregate

from domain.aggregate import RecordedAggregate, index_event_classes
from domain.records import Recorded
from domain.status import NegotiationFold, NegotiationTally


class Negotiation(RecordedAggregate):
    KIND = "a negotiation"
    CREATED_TYPE = "negotiation.opened"

    class Event(RecordedAggregate.Event):
        """Every negotiation event carries one stored record and folds it."""

    class Opened(Aggregate.Created):
        TYPE: ClassVar[str] = "negotiation.opened"
        record: Recorded

    class PartyJoined(Event):
        TYPE = "party.joined"

    class PartyLeft(Event):
        TYPE = "party.left"

    class RoundScheduled(Event):
        TYPE = "round.scheduled"

    class RoundHeld(Event):
        TYPE = "round.held"

    class RoundCancelled(Event):
        TYPE = "round.cancelled"

    class Suspended(Event):
        TYPE = "negotiation.suspended"

    class Resumed(Event):
        TYPE = "negotiation.resumed"

    class Concluded(Event):
        TYPE = "negotiation.concluded"

    class StatementMade(Event):
        TYPE = "statement.made"

    class RecordRetracted(Event):
        TYPE = "record.retracted"

    class ClaimDisputed(Event):
        TYPE = "claim.disputed"

    def __init__(self, record: Recorded) -> None:
        # The library then calls Opened.apply (inherited from Event), which
        # folds the opening record.
        self.fold = NegotiationFold()

    # -- what the rules read ------------------------------------------------------

    @property
    def state(self) -> NegotiationTally:
        return self.fold.tally

    @property
    def stream_id(self) -> uuid.UUID:
        return self.id


Negotiation.EVENT_CLASSES = index_event_classes(Negotiation)
