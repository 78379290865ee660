"""The Negotiation aggregate: parties and roles, rounds, lifecycle.

Built on ``eventsourcing.domain.Aggregate``. Its state is the negotiation
tally (:mod:`domain.negotiation_tally`: one meaning for the facts, read and
write side). Decisions are not methods here: they are pure functions
(:mod:`domain.decide`) that read this state and return new facts; the service
appends them and feeds the stored records back through :meth:`Negotiation.apply`.
"""

from __future__ import annotations

import uuid

from domain.aggregate import RecordedAggregate
from domain.records import Recorded
from domain.negotiation_tally import NegotiationTally
from domain.status import NegotiationFold


class Negotiation(RecordedAggregate):
    KIND = "a negotiation"
    CREATED_TYPE = "negotiation.opened"

    def __init__(self, record: Recorded) -> None:
        # The library then calls Opened.apply, which folds the opening record.
        self.fold = NegotiationFold()

    @property
    def state(self) -> NegotiationTally:
        return self.fold.tally

    @property
    def stream_id(self) -> uuid.UUID:
        return self.id
