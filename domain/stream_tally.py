"""What every stream's fold keeps besides the meaning of its facts.

Counts, version, lineage, last activity, the corrections (retractions and
disputes) and, for the corrections rules, an index of every event and of what
each live fact is about (:class:`~domain.events.Payload` ``SUBJECT`` /
``REFERS``). :class:`StreamTally` is the base of the issue and negotiation
tallies; a subclass folds its own facts with handlers marked
``@handles(PayloadClass)`` (:mod:`domain.dispatch`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from domain import events as e
from domain import world_time
from domain.dispatch import handlers_of
from domain.records import Recorded
from domain.views import DisputeView

Subject = tuple[str, str]  # ("proposal", id) | ("agreement", id) | ("item", id) | ...


def _field(data: Any, path: str) -> Any:
    for name in path.split("."):
        data = getattr(data, name, None)
    return data


def subjects_of(record: Recorded) -> tuple[Subject | None, tuple[Subject, ...]]:
    """(the subject a fact is about, other subjects it refers to)."""
    data: Any = record.data
    subject = None
    if data.SUBJECT is not None:
        kind, path = data.SUBJECT
        subject = (kind, _field(data, path))
    refs = tuple((kind, value) for kind, path in data.REFERS if (value := _field(data, path)))
    return subject, refs


class EventRef(msgspec.Struct):
    """What the corrections rules need to know about a recorded fact."""

    type: str
    claimed_by: tuple[str, ...]
    retracted: bool = False
    disputed_by: list[str] = []


class StreamTally:
    """Bookkeeping common to both streams; the stream's own facts go to its handlers."""

    STREAM_TYPE: ClassVar[str] = ""  # "issue" | "negotiation"
    HANDLERS: ClassVar[dict[type[e.Payload], Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.HANDLERS = handlers_of(cls)

    def __init__(self) -> None:
        self.events = 0
        self.version = 0
        self.lineage: list[str] = []
        self.retracted: list[str] = []
        self.disputes: list[DisputeView] = []
        self.last_activity_on: str | None = None
        self.index: dict[str, EventRef] = {}  # every event id of the stream
        self.about: dict[str, Subject] = {}  # event id -> subject of a live fact
        self.introduced: dict[Subject, str] = {}  # subject -> event id introducing it
        self.mentions: dict[Subject, list[str]] = {}  # subject -> live event ids naming it
        self.disputed: set[Subject] = set()

    def add(self, record: Recorded, retracted: bool = False) -> None:
        """One record of the stream (``retracted``: a fact a retraction removed)."""
        self._count(record, retracted)
        if retracted:
            return
        data = record.data
        if isinstance(data, e.RecordRetracted):
            self.retracted.append(str(data.event_id))
            return
        self._note_subjects(record)
        if isinstance(data, e.ClaimDisputed):
            self._dispute(record, data)
            return
        handler = self.HANDLERS.get(type(data))
        if handler is not None:
            handler(self, record, data)

    def _count(self, record: Recorded, retracted: bool) -> None:
        self.events += 1
        self.version = record.version
        event_id = str(record.id)
        self.index[event_id] = EventRef(record.type, record.claimed_by, retracted=retracted)
        if retracted:
            return
        self.lineage.append(event_id)
        if isinstance(record.data, e.CORRECTIONS):
            return  # corrections of the record, not activity in the world
        if self.last_activity_on is None or world_time.sort_key(record.occurred_on) > world_time.sort_key(
            self.last_activity_on
        ):
            self.last_activity_on = record.occurred_on

    def _note_subjects(self, record: Recorded) -> None:
        subject, refs = subjects_of(record)
        event_id = str(record.id)
        if subject is not None:
            self.about[event_id] = subject
            self.introduced.setdefault(subject, event_id)
            self.mentions.setdefault(subject, []).append(event_id)
        for ref in refs:
            self.mentions.setdefault(ref, []).append(event_id)

    def _dispute(self, record: Recorded, data: e.ClaimDisputed) -> None:
        target = str(data.event_id)
        ref = self.index.get(target)
        if ref is None or ref.retracted:
            return  # the disputed fact is not part of this view
        ref.disputed_by = [*ref.disputed_by, data.by]
        self.disputes.append(
            DisputeView(
                event_id=target,
                by=data.by,
                summary=data.summary,
                occurred_on=record.occurred_on,
                dispute_id=str(record.id),
            )
        )
        subject = self.about.get(target)
        if subject is not None:
            self.disputed.add(subject)
