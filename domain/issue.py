"""The Issue aggregate: one stream per issue on the table.

Positions, proposals and counter-proposals, agreements, ceasefire and
corridor items, links, retractions and disputes. Like
:mod:`domain.negotiation`, its state is the status tally of
:mod:`domain.status`, so what the write side refuses and what the read side
shows can never disagree.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate

from domain.aggregate import RecordedAggregate, index_event_classes
from domain.records import Recorded
from domain.status import IssueFold, IssueTally


def issue_stream_id(negotiation_id: uuid.UUID, key: str) -> uuid.UUID:
    """Deterministic, so the service finds an issue's stream from its key."""
    return uuid.uuid5(negotiation_id, "issue:" + key)


class Issue(RecordedAggregate):
    KIND = "an issue"
    CREATED_TYPE = "issue.raised"

    class Event(RecordedAggregate.Event):
        """Every issue event carries one stored record and folds it."""

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

    def __init__(self, record: Recorded) -> None:
        # Raised.apply (inherited from Event) then folds the raising record.
        self.fold = IssueFold()

    @property
    def state(self) -> IssueTally:
        return self.fold.tally

    @property
    def key(self) -> str:
        return self.fold.tally.key


Issue.EVENT_CLASSES = index_event_classes(Issue)
