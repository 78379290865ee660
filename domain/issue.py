"""The Issue aggregate: one stream per issue on the table.

Positions, proposals and counter-proposals, agreements, ceasefire and
corridor items, links, retractions and disputes. Like
:mod:`domain.negotiation`, its state is the status tally
(:mod:`domain.issue_tally`), so what the write side refuses and what the read
side shows can never disagree.
"""

from __future__ import annotations

import uuid

from domain.aggregate import RecordedAggregate
from domain.records import Recorded
from domain.issue_tally import IssueTally
from domain.status import IssueFold


def issue_stream_id(negotiation_id: uuid.UUID, key: str) -> uuid.UUID:
    """Deterministic, so the service finds an issue's stream from its key."""
    return uuid.uuid5(negotiation_id, "issue:" + key)


class Issue(RecordedAggregate):
    KIND = "an issue"
    CREATED_TYPE = "issue.raised"

    def __init__(self, record: Recorded) -> None:
        # The library then calls Opened.apply, which folds the opening record.
        self.fold = IssueFold()

    @property
    def state(self) -> IssueTally:
        return self.fold.tally

    @property
    def key(self) -> str:
        return self.fold.tally.key
