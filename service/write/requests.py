"""What the command path takes and gives: one request per call, its outcome, and
the refusals the command service makes itself (the domain's are domain.errors).

HTTP concerns stay in service.http: the If-Match header is parsed there into an
`IfMatch`, and an `Outcome` becomes a 201 response there.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

import msgspec

from domain.commands import CommonFields, OpenNegotiation
from service.store.consistency import ConsistencyToken
from service.store.envelope import EventEnvelope
from service.store.event_store import Checkpoint
from service.write.restoring import Restoring

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Idempotency:
    """An Idempotency-Key and what it protects: scoped to the API key that sent it."""

    scope: str  # the API key's id
    key: str
    request_digest: bytes


class IfMatch(msgspec.Struct, frozen=True):
    """A precondition: on the version of the one stream a request writes (any
    version of an existing stream, or one of `versions`), or, from the ETags of
    status views, on named streams (`streams`: (issue key, or None for the
    negotiation's stream; version)), each of which must be at a version named
    for it, whichever streams the request writes."""

    any_version: bool = False
    versions: frozenset[int] = frozenset()
    streams: tuple[tuple[str | None, int], ...] = ()
    # The header as sent, for the 412's detail.
    text: str = ""

    def matches(self, version: int) -> bool:
        return version > 0 if self.any_version else version in self.versions

    def versions_for(self, stream: str | None) -> frozenset[int]:
        return frozenset(v for name, v in self.streams if name == stream)

    def __str__(self) -> str:
        if self.text:
            return self.text
        return "*" if self.any_version else ", ".join(f'"{v}"' for v in sorted(self.versions))


@dataclass(frozen=True)
class OpenRequest:
    """Open a negotiation (`negotiation.opened`)."""

    command: OpenNegotiation
    recorded_by: str
    idempotency: Idempotency | None = None
    # The exported event this re-records (service.write.restoring), for `parley import`.
    restoring: Restoring | None = None
    # Stored as the event's correlation_id: the HTTP request's id (service.http.request_id).
    correlation_id: uuid.UUID | None = None


@dataclass(frozen=True)
class RecordRequest:
    """Record commands on one negotiation, atomically (all or nothing)."""

    negotiation_id: uuid.UUID
    commands: Sequence[CommonFields]
    recorded_by: str
    # Whether they came as {"commands": [...]}: errors then point into the list
    # (`/commands/3/party`).
    batch: bool = False
    if_match: IfMatch | None = None
    idempotency: Idempotency | None = None
    # The exported event the one command re-records (service.write.restoring).
    restoring: Restoring | None = None
    # Stored as every written event's correlation_id: the HTTP request's id.
    correlation_id: uuid.UUID | None = None


class CommandResult(msgspec.Struct, kw_only=True):
    """The response to a recorded command (or batch, or a newly opened negotiation)."""

    negotiation_id: uuid.UUID
    # The stored events, in the order written; generated item ids are in their data.
    events: list[EventEnvelope]
    # Pass as `consistency_token` to a read to see at least this write.
    consistency_token: str


@dataclass(frozen=True)
class Outcome:
    """What a request produced: the exact bytes of its CommandResult (replayed
    byte for byte on a retry with the same Idempotency-Key)."""

    body: bytes
    # Where the created resource lives (a newly opened negotiation), if anywhere.
    location: str | None = None
    replayed: bool = False
    events_written: int = 0
    # What the body was encoded from, while its consistency token can still gain the
    # commit's LSN (known only once the transaction has committed).
    response: CommandResult | None = None
    checkpoint: Checkpoint | None = None

    def with_lsn(self, lsn: int) -> "Outcome":
        """The body again, its token now carrying the commit's LSN."""
        if self.response is None or self.checkpoint is None:
            return self
        token = ConsistencyToken(self.checkpoint, lsn).text()
        body = _encoder.encode(msgspec.structs.replace(self.response, consistency_token=token))
        return replace(self, body=body, response=None)


class SlugTaken(Exception):
    def __init__(self, slug: str) -> None:
        super().__init__(f"the slug {slug!r} is taken by another negotiation")
        self.slug = slug


class PreconditionFailed(Exception):
    """If-Match named another version of the stream than the current one."""

    def __init__(self, stream_id: uuid.UUID, expected: str, current: int) -> None:
        super().__init__(f"If-Match {expected} does not match: the stream is at version {current}")
        self.stream_id = stream_id
        self.expected = expected
        self.current = current


class PreconditionNotApplicable(ValueError):
    """If-Match on a request that writes to more than one stream."""


__all__ = [
    "CommandResult",
    "Idempotency",
    "IfMatch",
    "OpenRequest",
    "Outcome",
    "PreconditionFailed",
    "PreconditionNotApplicable",
    "RecordRequest",
    "SlugTaken",
]
