"""What the Negotiation and Issue aggregates share: being evolved by stored records.

Both are ``eventsourcing.domain.Aggregate`` subclasses whose events each carry
one stored :class:`~domain.records.Recorded` and fold it into the aggregate's
``fold``. A subclass names its opening fact (``CREATED_TYPE``), how its stream
is spoken of in errors (``KIND``), declares its event classes, and after the
class statement indexes them with :func:`index_event_classes`.
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
    EVENT_CLASSES: ClassVar[dict[str, type[Any]]]

    class Event(Aggregate.Event):
        TYPE: ClassVar[str] = ""
        record: Recorded

        def apply(self, aggregate: Any) -> None:
            aggregate.fold.apply(self.record)

    @classmethod
    def from_events(cls, records: Iterable[Recorded]) -> Self:
        records = iter(records)
        first = next(records, None)
        if first is None or first.type != cls.CREATED_TYPE:
            raise ValueError(f"{cls.KIND} stream starts with {cls.CREATED_TYPE}")
        aggregate: Self = cls.EVENT_CLASSES[cls.CREATED_TYPE](
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
        event_class = self.EVENT_CLASSES.get(record.type)
        if event_class is None or record.type == self.CREATED_TYPE:
            raise ValueError(f"{record.type!r} cannot be applied to {self.KIND}")
        event_class(
            originator_id=record.stream_id,
            originator_version=record.version,
            timestamp=record.recorded_at,
            record=record,
        ).mutate(self)


def index_event_classes(aggregate: type[RecordedAggregate]) -> dict[str, type[Any]]:
    """The aggregate's event classes by stored type.

    Called after the class statement: the library redefines the nested event
    classes then (the opening event becomes a subclass of ``Event``).
    """
    return {
        cls.TYPE: cls
        for cls in vars(aggregate).values()
        if isinstance(cls, type) and getattr(cls, "TYPE", "")
    }
