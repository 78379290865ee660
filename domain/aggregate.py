"""What the Negotiation and Issue aggregates share: being evolved by stored records.

Both are ``eventsourcing.domain.Aggregate`` subclasses. They need no event
class per fact: the meaning of each fact is the payload class's fold handler
(:mod:`domain.dispatch`), so one library event class, :class:`RecordedAggregate.Fact`,
carries any stored :class:`~domain.records.Recorded` and folds it into the
aggregate's ``fold``; the library still checks ids and version order. A
subclass names its opening fact (``CREATED_TYPE``), how its stream is spoken
of in errors (``KIND``), and sets its ``fold`` in ``__init__(self, record)``
(the library generates an ``__init__`` for a class that declares none).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Self

from eventsourcing.domain import Aggregate

from domain.records import Recorded


class RecordedAggregate(Aggregate):
    KIND: ClassVar[str] = ""
    """How errors name the stream: ``"an issue"``, ``"a negotiation"``."""
    CREATED_TYPE: ClassVar[str] = ""
    """The stored type of the fact that opens the stream."""

    class Fact(Aggregate.Event):
        """Any stored fact after the first."""

        record: Recorded

        def apply(self, aggregate: Any) -> None:
            aggregate.fold.apply(self.record)

    class Opened(Aggregate.Created):
        """The stream's first fact."""

        record: Recorded

        def apply(self, aggregate: Any) -> None:
            aggregate.fold.apply(self.record)

    @classmethod
    def from_events(cls, records: Iterable[Recorded]) -> Self:
        records = iter(records)
        first = next(records, None)
        if first is None or first.type != cls.CREATED_TYPE:
            raise ValueError(f"{cls.KIND} stream starts with {cls.CREATED_TYPE}")
        aggregate: Self = cls.Opened(
            originator_id=first.stream_id,
            originator_version=first.version,
            timestamp=first.recorded_at,
            originator_topic=f"{cls.__module__}:{cls.__qualname__}",
            record=first,
        ).mutate(None)
        for record in records:
            aggregate.apply(record)
        return aggregate

    def apply(self, record: Recorded) -> None:
        """Evolve by one stored record (the library checks id and version order)."""
        if record.type == self.CREATED_TYPE or record.stream_type != self.fold.tally_class.STREAM_TYPE:
            raise ValueError(f"{record.type!r} cannot be applied to {self.KIND}")
        self.Fact(
            originator_id=record.stream_id,
            originator_version=record.version,
            timestamp=record.recorded_at,
            record=record,
        ).mutate(self)
