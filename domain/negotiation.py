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
from collections.abc import Iterable
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate

from domain.records import Recorded
from domain.status import NegotiationFold, NegotiationTally


class Negotiation(Aggregate):
    class Event(Aggregate.Event):
        TYPE: ClassVar[str] = ""
        record: Recorded

        def apply(self, aggregate: Any) -> None:
            aggregate.fold.apply(self.record)

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

    EVENT_CLASSES: ClassVar[dict[str, type[Any]]]

    def __init__(self, record: Recorded) -> None:
        # The library then calls Opened.apply (inherited from Event), which
        # folds the opening record.
        self.fold = NegotiationFold()

    # -- building from the log -------------------------------------------------

    @classmethod
    def from_events(cls, records: Iterable[Recorded]) -> Negotiation:
        records = iter(records)
        first = next(records, None)
        if first is None or first.type != "negotiation.opened":
            raise ValueError("a negotiation stream starts with negotiation.opened")
        negotiation: Negotiation = cls.Opened(
            originator_id=first.stream_id,
            originator_version=first.version,
            timestamp=first.recorded_at,
            originator_topic=f"{cls.__module__}:{cls.__qualname__}",
            record=first,
        ).mutate(None)
        for record in records:
            negotiation.apply(record)
        return negotiation

    def apply(self, record: Recorded) -> None:
        """Evolve by one stored record (the library checks id and version order)."""
        event_class = self.EVENT_CLASSES.get(record.type)
        if event_class is None or event_class is Negotiation.Opened:
            raise ValueError(f"{record.type!r} cannot be applied to a negotiation")
        event_class(
            originator_id=record.stream_id,
            originator_version=record.version,
            timestamp=record.recorded_at,
            record=record,
        ).mutate(self)

    # -- what the rules read ------------------------------------------------------

    @property
    def state(self) -> NegotiationTally:
        return self.fold.tally

    @property
    def stream_id(self) -> uuid.UUID:
        return self.id


Negotiation.EVENT_CLASSES = {
    cls.TYPE: cls
    for cls in vars(Negotiation).values()
    if isinstance(cls, type) and getattr(cls, "TYPE", "")
}
