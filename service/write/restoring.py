"""Re-recording an event of another Parley log (`parley import` of an export).

An imported event is not copied in: it is turned back into the command that
states it (`command_for`), decided by the domain against this log's state like any
command, and kept only if the decision gives exactly that event
(`Restoring.check`). It is then a new event of this log: its id, stream and version
as exported (corrections still name it), this log's own `recorded_at` and chain,
and what the source log said about it (hash, record time, recorder) as an
`import_claim` in the hashed body. A line the rules refuse, or whose decision
differs in any field, is refused: nothing the API would refuse gets in this way,
so nothing imported can stall a projection.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from domain.commands import Command, CommonFields, OpenNegotiation
from domain.decide import NewEvent
from domain.events import decode_data, encode_data
from service.store.canonical import CanonicalEvent, ImportClaim


class RestoreRefused(Exception):
    """The decision does not give the exported event (or gives more than it)."""


def command_for(hashed: CanonicalEvent) -> CommonFields | OpenNegotiation:
    """The command that states `hashed` (raises msgspec.ValidationError when its
    data is nothing a client could have sent, e.g. a field no command has)."""
    payload = decode_data(hashed.type, hashed.schema_version, bytes(hashed.data))
    fields: dict[str, Any] = msgspec.to_builtins(payload)
    fields["occurred_on"] = hashed.occurred_on
    if hashed.claimed_by:
        fields["claimed_by"] = list(hashed.claimed_by)
    if hashed.source is not None:
        fields["source"] = hashed.source
    if hashed.note is not None:
        fields["note"] = hashed.note
    if hashed.type == "negotiation.opened":
        return msgspec.convert(fields, OpenNegotiation)
    return msgspec.convert({"type": hashed.type, **fields}, Command)


@dataclass(frozen=True)
class Copy:
    """One exported event and the claim its re-recorded twin keeps."""

    hashed: CanonicalEvent
    claim: ImportClaim


@dataclass(frozen=True)
class Restoring:
    """The exported events one command is decided for, and the claims they keep.

    Usually one event. A command about an agreement covering several issues is
    recorded once on each of them (domain.decide), so its export is several
    events, one per covered issue stream, identical but for `issue`: they are
    restored together, by one command, or not at all. A retraction of one copy
    of such a step is written with a retraction of each other live copy, in the
    same write (service.write.commands): the retractions of one write are
    restored together too, each decided on its own (one event each) by the
    command naming its copy."""

    copies: tuple[Copy, ...]

    @classmethod
    def of(cls, hashed: CanonicalEvent, exported_hash: str) -> Restoring:
        return cls.group([(hashed, exported_hash)])

    @classmethod
    def group(cls, events: list[tuple[CanonicalEvent, str]]) -> Restoring:
        return cls(tuple(
            Copy(hashed, ImportClaim(hash=exported_hash, recorded_at=hashed.recorded_at, recorded_by=hashed.recorded_by))
            for hashed, exported_hash in events
        ))  # fmt: skip

    @property
    def hashed(self) -> CanonicalEvent:
        return self.copies[0].hashed

    @property
    def event_id(self) -> uuid.UUID:
        return self.hashed.id

    @property
    def claim(self) -> ImportClaim:
        return self.copies[0].claim

    @property
    def retractions(self) -> bool:
        return all(c.hashed.type == "record.retracted" for c in self.copies)

    def retracted(self) -> set[uuid.UUID]:
        """The events the exported retractions name."""
        named = set()
        for copy in self.copies:
            if copy.hashed.type == "record.retracted":
                named.add(uuid.UUID(msgspec.json.decode(bytes(copy.hashed.data))["event_id"]))
        return named

    def all_matched(self, written: set[uuid.UUID]) -> None:
        """Raises RestoreRefused unless every exported copy was re-recorded."""
        missing = [c.hashed for c in self.copies if c.hashed.id not in written]
        if missing:
            hashed = self.hashed
            raise RestoreRefused(
                f"event {hashed.id} ({hashed.type}): the rules decide its write without "
                f"{', '.join(str(m.id) for m in missing)}, which the file holds: a write is restored whole or not at all"
            )

    def check(self, decided: list[NewEvent], stream_id: uuid.UUID, version: int) -> None:
        """Raises RestoreRefused unless `decided` is exactly the one exported event,
        written at its stream and version."""
        self.match(decided, decided[0] if len(decided) == 1 else None, stream_id, version)

    def match(self, decided: list[NewEvent], event: NewEvent | None, stream_id: uuid.UUID, version: int) -> Copy:
        """The exported copy that `event` (one of `decided`) re-records at
        `stream_id` and `version`; RestoreRefused unless the decision gives
        exactly the exported events, one each."""
        hashed = self.hashed
        # A retraction's copies are each decided by a command of their own.
        expected = 1 if self.retractions else len(self.copies)
        if len(decided) != expected or event is None:
            types = ", ".join(f"{e.type} on {e.issue_key or 'the negotiation'}" for e in decided)
            held = ", ".join(c.hashed.stream_type if c.hashed.stream_type == "negotiation" else
                             _issue_of(c.hashed) for c in self.copies)  # fmt: skip
            raise RestoreRefused(
                f"event {hashed.id} ({hashed.type}): the rules decide [{types}] for its command; the file gives "
                f"{len(self.copies)} event(s) of it ({held}): a command is restored whole or not at all"
            )
        mine = [c for c in self.copies if c.hashed.stream_id == stream_id]
        if len(mine) != 1:
            raise RestoreRefused(
                f"event {hashed.id} ({hashed.type}): the rules record it on stream {stream_id}, where the file "
                "holds no copy of it"
            )
        [copy] = mine
        _compare(copy.hashed, event, stream_id, version)
        return copy


def _issue_of(hashed: CanonicalEvent) -> str:
    try:
        return str(msgspec.json.decode(bytes(hashed.data)).get("issue", "?"))
    except (msgspec.DecodeError, AttributeError):
        return "?"


def _compare(hashed: CanonicalEvent, event: NewEvent, stream_id: uuid.UUID, version: int) -> None:
    # An event stored under an older schema is compared upcast, as the rules read it.
    exported_data = bytes(hashed.data)
    if event.schema_version != hashed.schema_version:
        exported_data = encode_data(decode_data(hashed.type, hashed.schema_version, exported_data))
    differing = [
        name
        for name, mine, theirs in (
            ("type", event.type, hashed.type),
            ("stream_type", event.stream, hashed.stream_type),
            ("stream_id", stream_id, hashed.stream_id),
            ("version", version, hashed.version),
            ("data", encode_data(event.data), exported_data),
            ("occurred_on", event.occurred_on, hashed.occurred_on),
            ("claimed_by", tuple(event.claimed_by), tuple(hashed.claimed_by)),
            ("source", msgspec.to_builtins(event.source) if event.source is not None else None, hashed.source),
            ("note", event.note, hashed.note),
        )
        if mine != theirs
    ]
    if differing:
        raise RestoreRefused(f"event {hashed.id}: the rules decide its command differently ({', '.join(differing)})")
