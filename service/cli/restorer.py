"""Restoring an export's lines (`parley import` of `parley audit export`): each
event re-decided by the domain's rules as its command (service.write.restoring),
the copies of a multi-issue agreement step together, and the retractions of
those copies that one write made together (`Restorer`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import msgspec

from domain.commands import OpenNegotiation
from domain.decide import AGREEMENT_TYPES
from domain.errors import DomainError
from domain.events import UnknownEventType
from service.audit.served import disagreements
from service.bootstrap import Runtime
from service.store.canonical import (
    ZERO_HASH,
    CanonicalEvent,
    canonical_decoder,
    canonical_encoder,
    chain_hash,
)
from service.store.envelope import ExportedEvent
from service.write.requests import OpenRequest, RecordRequest, SlugTaken
from service.write.restoring import RestoreRefused, Restoring, command_for


class ImportFailed(Exception):
    def __init__(self, line: int, detail: str) -> None:
        super().__init__(f"line {line}: {detail}")
        self.line = line


_Signature = tuple[object, ...]


def _shared(hashed: CanonicalEvent, without: str) -> _Signature | None:
    """What the events one write stored for one command share: everything of
    their bodies but `without` in the data, their stream and version."""
    try:
        data = msgspec.json.decode(bytes(hashed.data))
    except msgspec.DecodeError:
        return None
    if not isinstance(data, dict):
        return None
    data.pop(without, None)
    return (
        hashed.negotiation_id, hashed.type, hashed.schema_version, hashed.occurred_on, hashed.recorded_at,
        hashed.recorded_by, hashed.claimed_by, canonical_encoder.encode(hashed.source), hashed.note,
        canonical_encoder.encode(data),
    )  # fmt: skip


def _signature(hashed: CanonicalEvent) -> _Signature | None:
    """What the copies of one agreement command share (all but their issue and
    stream): the key that finds the other copies of a multi-issue step."""
    if hashed.type not in AGREEMENT_TYPES:
        return None
    return _shared(hashed, "issue")


@dataclass
class Copies:
    """The export's lines that one command wrote as several events, found before
    the first line is restored: the copies of a multi-issue agreement step (one
    per covered issue), and the retractions of such a step's copies that one
    write recorded together (the write side retracts every live copy at once:
    service.write.commands). `of` is each such line's signature, `lines` the
    lines of each signature."""

    of: dict[uuid.UUID, _Signature] = field(default_factory=dict)
    lines: dict[_Signature, list[tuple[int, ExportedEvent]]] = field(default_factory=dict)


class Restorer:
    """Export lines re-recorded one by one through the domain's rules
    (service.write.restoring). Each line is checked first on its own terms: its
    served fields equal its hashed body, and its hash chains from the previous
    event of its stream (in the file, or already imported here). A stream's lines
    are taken in version order (an export is in leaf order, which can put a
    version before its predecessor); a line waits until its predecessor is in.

    A step of an agreement covering several issues is one command recorded once
    per covered issue: its copies (same step, same source transaction, another
    issue) are found in the file (`copies`, built before the first line) and
    restored together by one command once each is next on its stream; a step
    whose copies are not all in the file is refused at its line. The retractions
    one write recorded of such a step's copies are restored together in the same
    way (one write here too, so no instant of this log has one covered issue
    keep the step while another has it retracted)."""

    def __init__(self, runtime: Runtime, recorded_by: str, copies: Copies) -> None:
        self.runtime = runtime
        self.recorded_by = recorded_by
        self.copies = copies
        self.waiting: dict[tuple[uuid.UUID, int], tuple[int, ExportedEvent]] = {}
        # Lines whose other copies are not yet next on their streams.
        self.parked: dict[uuid.UUID, tuple[int, ExportedEvent]] = {}
        self.restored: set[uuid.UUID] = set()  # written here as a copy of another line's command
        self.report_written = 0
        self.report_replayed = 0

    async def line(self, number: int, line: ExportedEvent) -> None:
        if line.id in self.restored:
            return
        existing = await self.runtime.store.get_event(line.id)
        if existing is not None:  # imported before (an interrupted or repeated import)
            if existing.import_claim is None or existing.import_claim.hash != line.hash:
                raise ImportFailed(number, f"event {line.id} is already recorded here with other content")
            self.report_replayed += 1
            return
        self.waiting[(line.stream_id, line.version)] = (number, line)
        await self._drain(line.stream_id)

    async def _next_version(self, stream_id: uuid.UUID) -> int:
        return await self.runtime.store.stream_version(stream_id) + 1

    async def _drain(self, stream_id: uuid.UUID) -> None:
        streams = [stream_id]
        while streams:
            stream = streams.pop()
            while True:
                ready = self.waiting.pop((stream, await self._next_version(stream)), None)
                if ready is None:
                    break
                written = await self._restore(*ready)
                if written is None:
                    break  # parked until its copies are next on theirs
                streams.extend(written)
                for event_id, (number, parked) in list(self.parked.items()):
                    if event_id in self.restored:
                        del self.parked[event_id]
                    elif await self._next_version(parked.stream_id) == parked.version:
                        del self.parked[event_id]
                        self.waiting[(parked.stream_id, parked.version)] = (number, parked)
                        streams.append(parked.stream_id)

    def finish(self) -> None:
        left = [*self.waiting.values(), *self.parked.values()]
        if left:
            number, line = min(left, key=lambda pair: pair[0])
            raise ImportFailed(number, f"event {line.id} follows a version of its stream that is not in the file")

    async def _verified(self, number: int, line: ExportedEvent) -> CanonicalEvent:
        body = line.body.encode()
        try:
            hashed = canonical_decoder.decode(body)
        except msgspec.DecodeError as error:
            raise ImportFailed(number, f"the body is not an event: {error}") from None
        wrong = disagreements(line, hashed)
        if wrong:
            raise ImportFailed(number, f"the served fields disagree with the hashed body: {', '.join(wrong)}")
        previous = ZERO_HASH
        if line.version > 1:
            [before] = await self.runtime.store.read_stream(line.stream_id, line.version - 1, line.version - 1)
            if before.import_claim is None:
                raise ImportFailed(number, f"stream {line.stream_id} holds events of this log, not of the export")
            previous = bytes.fromhex(before.import_claim.hash)
        if chain_hash(previous, body).hex() != line.hash:
            raise ImportFailed(number, "the hash is not sha256(previous hash || body): the line was altered")
        return hashed

    async def _other_copies(self, line: ExportedEvent, hashed: CanonicalEvent) -> list[tuple[int, ExportedEvent]] | None:
        """The other copies of this line's command, one per other stream (the
        lowest version not yet in); None when one is not yet next on its stream."""
        signature = self.copies.of.get(line.id)
        if signature is None:
            return []
        chosen: dict[uuid.UUID, tuple[int, ExportedEvent]] = {}
        for number, other in self.copies.lines.get(signature, []):
            if other.stream_id == line.stream_id or other.id in self.restored:
                continue
            earlier = other.stream_id not in chosen or other.version < chosen[other.stream_id][1].version
            if earlier and await self.runtime.store.get_event(other.id) is None:
                chosen[other.stream_id] = (number, other)
        for number, other in chosen.values():
            if await self._next_version(other.stream_id) != other.version:
                return None
        return sorted(chosen.values(), key=lambda pair: pair[0])

    async def _restore(self, number: int, line: ExportedEvent) -> list[uuid.UUID] | None:
        """Restore the line (with its other copies, if any); the streams written,
        or None when it must wait for its copies."""
        hashed = await self._verified(number, line)
        others = await self._other_copies(line, hashed)
        if others is None:
            self.parked[line.id] = (number, line)
            return None
        group = [(hashed, line.hash)]
        for other_number, other in others:
            group.append((await self._verified(other_number, other), other.hash))
        try:
            command = command_for(hashed)
            restoring = Restoring.group(group)
            commands = self.runtime.commands
            if isinstance(command, OpenNegotiation):
                outcome = await commands.open(OpenRequest(command, self.recorded_by, restoring=restoring))
            else:
                outcome = await commands.record(
                    RecordRequest(line.negotiation_id or line.stream_id, [command], self.recorded_by, restoring=restoring)
                )
        except (msgspec.ValidationError, UnknownEventType) as error:
            raise ImportFailed(number, f"event {line.id} states no command the rules accept: {error}") from None
        except DomainError as error:
            raise ImportFailed(
                number, f"event {line.id} ({line.type}) is refused by the rules: {error.code}: {error.detail}"
            ) from None
        except (RestoreRefused, SlugTaken) as error:
            raise ImportFailed(number, str(error)) from None
        self.report_written += outcome.events_written
        for _, other in others:
            self.restored.add(other.id)
            self.waiting.pop((other.stream_id, other.version), None)
            self.parked.pop(other.id, None)
        return [other.stream_id for _, other in others]


def copies_in(lines: list[bytes]) -> Copies:
    """Every agreement step of an export by what its copies share, then every
    retraction of such a copy by what the retractions of one write share (lines
    that do not decode are left to be refused at their turn)."""
    steps: dict[uuid.UUID, _Signature] = {}
    retractions: list[tuple[int, ExportedEvent, CanonicalEvent]] = []
    copies = Copies()
    for number, raw in enumerate(lines, start=1):
        if b'"agreement.' not in raw and b'"record.retracted"' not in raw:
            continue
        try:
            line = msgspec.json.decode(raw, type=ExportedEvent)
            hashed = canonical_decoder.decode(line.body.encode())
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            continue
        if hashed.type == "record.retracted":
            retractions.append((number, line, hashed))
        elif (signature := _signature(hashed)) is not None:
            steps[line.id] = signature
            copies.of[line.id] = signature
            copies.lines.setdefault(signature, []).append((number, line))
    for number, line, hashed in retractions:
        shared = _shared(hashed, "event_id")
        try:
            step = steps.get(uuid.UUID(msgspec.json.decode(bytes(hashed.data))["event_id"]))
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            continue
        if shared is not None and step is not None:
            signature = (*shared, step)
            copies.of[line.id] = signature
            copies.lines.setdefault(signature, []).append((number, line))
    return copies
