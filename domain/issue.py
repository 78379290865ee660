"""The Issue aggregate: one stream per issue on the table.

Positions, proposals and counter-proposals, agreements, ceasefire and
corridor items, links, retractions and disputes. Like
:mod:`domain.negotiation`, its state is the status tally of
:mod:`domain.status`, so what the write side refuses and what the read side
shows can never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate

from domain.records import Recorded
from domain.status import IssueFold, IssueTally


def issue_stream_id(negotiation_id: uuid.UUID, key: str) -> uuid.UUID:
    """Deterministic, so the service finds an issue's stream from its key."""
    return uuid.uuid5(negotiation_id, "issue:" + key)


class Issue(Aggregate):
    class Event(Aggregate.Event):
        TYPE: ClassVar[str] = ""
        record: Recorded

        def apply(self, aggregate: Any) -> None:
            aggregate.fold.apply(self.record)

    class Raised(Aggregate.Created):
        TYPE: ClassVar[str] = "issue.raised"
        record: Recorded

    class Linked(Event):
        TYPE = "issues.linked"

    class Discussed(Event):
        TYPE = "issue.discussed"

    class PositionStated(Event):
        """v1 stored an optional single ``condition``; v2 a ``conditions`` list."""

        TYPE = "position.stated"
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            condition = state.pop("condition", None)
            state["conditions"] = [condition] if condition else []

    class ProposalMade(Event):
        TYPE = "proposal.made"

    class ProposalCountered(Event):
        TYPE = "proposal.countered"

    class ProposalAccepted(Event):
        TYPE = "proposal.accepted"

    class ProposalRejected(Event):
        TYPE = "proposal.rejected"

    class ProposalWithdrawn(Event):
        TYPE = "proposal.withdrawn"

    class AgreementReached(Event):
        TYPE = "agreement.reached"

    class AgreementImplemented(Event):
        TYPE = "agreement.implemented"

    class AgreementViolated(Event):
        TYPE = "agreement.violated"

    class Dropped(Event):
        TYPE = "issue.dropped"

    class Reopened(Event):
        TYPE = "issue.reopened"

    class CeasefireProposed(Event):
        TYPE = "ceasefire.proposed"

    class CeasefireAgreed(Event):
        TYPE = "ceasefire.agreed"

    class CeasefireRejected(Event):
        TYPE = "ceasefire.rejected"

    class CeasefireViolated(Event):
        TYPE = "ceasefire.violated"

    class CeasefireEnded(Event):
        TYPE = "ceasefire.ended"

    class CorridorProposed(Event):
        TYPE = "corridor.proposed"

    class CorridorAgreed(Event):
        TYPE = "corridor.agreed"

    class CorridorRejected(Event):
        TYPE = "corridor.rejected"

    class CorridorOpened(Event):
        TYPE = "corridor.opened"

    class CorridorViolated(Event):
        TYPE = "corridor.violated"

    class CorridorClosed(Event):
        TYPE = "corridor.closed"

    class StatementMade(Event):
        TYPE = "statement.made"

    class RecordRetracted(Event):
        TYPE = "record.retracted"

    class ClaimDisputed(Event):
        TYPE = "claim.disputed"

    EVENT_CLASSES: ClassVar[dict[str, type[Any]]]

    def __init__(self, record: Recorded) -> None:
        # Raised.apply (inherited from Event) then folds the raising record.
        self.fold = IssueFold()

    @classmethod
    def from_events(cls, records: Iterable[Recorded]) -> Issue:
        records = iter(records)
        first = next(records, None)
        if first is None or first.type != "issue.raised":
            raise ValueError("an issue stream starts with issue.raised")
        issue: Issue = cls.Raised(
            originator_id=first.stream_id,
            originator_version=first.version,
            timestamp=first.recorded_at,
            originator_topic=f"{cls.__module__}:{cls.__qualname__}",
            record=first,
        ).mutate(None)
        for record in records:
            issue.apply(record)
        return issue

    def apply(self, record: Recorded) -> None:
        """Evolve by one stored record (the library checks id and version order)."""
        event_class = self.EVENT_CLASSES.get(record.type)
        if event_class is None or event_class is Issue.Raised:
            raise ValueError(f"{record.type!r} cannot be applied to an issue")
        event_class(
            originator_id=record.stream_id,
            originator_version=record.version,
            timestamp=record.recorded_at,
            record=record,
        ).mutate(self)

    @property
    def state(self) -> IssueTally:
        return self.fold.tally

    @property
    def key(self) -> str:
        return self.fold.tally.key


Issue.EVENT_CLASSES = {
    cls.TYPE: cls for cls in vars(Issue).values() if isinstance(cls, type) and getattr(cls, "TYPE", "")
}
