"""Stored event payloads: one Struct per event type, and their canonical bytes.

A payload is the fact's own fields (``data`` in an envelope); when, who, source
and claims live in the envelope (:class:`domain.records.Recorded`).

Stored payloads never forbid unknown fields (a newer writer may have added
some) and every field added after a type's first version has a default, so
older bytes still decode. They carry no validation constraints either: what
was accepted once must stay readable even if the command rules tighten later.
Validation lives on the commands (:mod:`domain.commands`).

Versioning follows the eventsourcing library's convention on the aggregate
event classes (:mod:`domain.negotiation`, :mod:`domain.issue`): each class has
``class_version`` and ``upcast_vN_vN+1(state)`` static methods that rewrite the
stored JSON object in place, one step at a time. :func:`decode_data` applies
them to bytes of any past ``schema_version`` before converting to the current
Struct.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec


class Payload(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    """Base of every stored payload (``omit_defaults``: one spelling per value)."""


class PartyRef(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    code: str
    name: str


# --- negotiation stream ------------------------------------------------------


class NegotiationOpened(Payload):
    title: str
    slug: str
    parties: list[PartyRef]
    mediators: list[PartyRef] = []


class PartyJoined(Payload):
    party: PartyRef
    role: str = "party"


class PartyLeft(Payload):
    party: str
    role: str | None = None
    reason: str | None = None


class RoundScheduled(Payload):
    round_id: str
    venue: str | None = None
    country: str | None = None
    level: str | None = None
    format: str | None = None
    participants: list[str] = []
    mediator: str | None = None
    issues: list[str] = []
    summary: str | None = None


class RoundHeld(RoundScheduled):
    pass


class RoundCancelled(Payload):
    round_id: str
    reason: str | None = None


class NegotiationSuspended(Payload):
    reason: str | None = None


class NegotiationResumed(Payload):
    reason: str | None = None


class NegotiationConcluded(Payload):
    outcome: str | None = None


# --- either stream -------------------------------------------------------------


class StatementMade(Payload):
    speaker: str
    summary: str
    party: str | None = None
    issue: str | None = None
    assessment: str | None = None


class RecordRetracted(Payload):
    event_id: uuid.UUID
    reason: str


class ClaimDisputed(Payload):
    event_id: uuid.UUID
    by: str
    summary: str


# --- issue stream --------------------------------------------------------------


class IssueRaised(Payload):
    issue: str
    title: str
    category: str
    raised_by: str | None = None


class IssuesLinked(Payload):
    issue: str
    related_issue: str
    relation: str


class IssueDiscussed(Payload):
    issue: str
    round_id: str | None = None
    summary: str | None = None
    assessment: str | None = None


class PositionStated(Payload):
    """v2: ``conditions`` is a list (v1 had a single optional ``condition``)."""

    issue: str
    party: str
    stance: str
    summary: str
    conditions: list[str] = []


class ProposalMade(Payload):
    issue: str
    proposal_id: str
    by: str
    summary: str
    to: list[str] = []
    terms: str | None = None


class ProposalCountered(ProposalMade, kw_only=True):
    counters: str


class ProposalAccepted(Payload):
    issue: str
    proposal_id: str
    by: str
    reason: str | None = None


class ProposalRejected(ProposalAccepted):
    pass


class ProposalWithdrawn(ProposalAccepted):
    pass


class AgreementReached(Payload):
    issue: str
    agreement_id: str
    level: str
    parties: list[str]
    summary: str
    proposal_id: str | None = None


class AgreementImplemented(Payload):
    issue: str
    agreement_id: str
    summary: str | None = None


class AgreementViolated(Payload):
    issue: str
    agreement_id: str
    alleged_by: str
    against: list[str] = []
    summary: str | None = None


class IssueDropped(Payload):
    issue: str
    reason: str | None = None


class IssueReopened(IssueDropped):
    pass


class CeasefireProposed(Payload):
    issue: str
    ceasefire_id: str
    by: str
    scope: str
    area: str | None = None
    starts_at: str | None = None
    ends_at: str | None = None
    summary: str | None = None


class CeasefireAgreed(Payload):
    issue: str
    ceasefire_id: str
    parties: list[str] = []
    scope: str | None = None
    area: str | None = None
    starts_at: str | None = None
    ends_at: str | None = None
    summary: str | None = None


class CeasefireRejected(Payload):
    issue: str
    ceasefire_id: str
    by: str
    reason: str | None = None


class CeasefireViolated(Payload):
    issue: str
    ceasefire_id: str
    alleged_by: str
    against: list[str] = []
    summary: str | None = None


class CeasefireEnded(Payload):
    issue: str
    ceasefire_id: str
    reason: str
    summary: str | None = None


class CorridorProposed(Payload):
    issue: str
    corridor_id: str
    by: str
    from_: str = msgspec.field(name="from")
    to: str
    via: str | None = None
    window: str | None = None
    purpose: str | None = None
    summary: str | None = None


class CorridorAgreed(Payload):
    issue: str
    corridor_id: str
    parties: list[str] = []
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    via: str | None = None
    window: str | None = None
    purpose: str | None = None
    summary: str | None = None


class CorridorRejected(Payload):
    issue: str
    corridor_id: str
    by: str
    reason: str | None = None


class CorridorOpened(Payload):
    issue: str
    corridor_id: str
    summary: str | None = None


class CorridorViolated(Payload):
    issue: str
    corridor_id: str
    alleged_by: str
    against: list[str] = []
    summary: str | None = None


class CorridorClosed(Payload):
    issue: str
    corridor_id: str
    reason: str | None = None


EVENT_TYPES: dict[str, type[msgspec.Struct]] = {
    "negotiation.opened": NegotiationOpened,
    "party.joined": PartyJoined,
    "party.left": PartyLeft,
    "round.scheduled": RoundScheduled,
    "round.held": RoundHeld,
    "round.cancelled": RoundCancelled,
    "negotiation.suspended": NegotiationSuspended,
    "negotiation.resumed": NegotiationResumed,
    "negotiation.concluded": NegotiationConcluded,
    "statement.made": StatementMade,
    "record.retracted": RecordRetracted,
    "claim.disputed": ClaimDisputed,
    "issue.raised": IssueRaised,
    "issues.linked": IssuesLinked,
    "issue.discussed": IssueDiscussed,
    "position.stated": PositionStated,
    "proposal.made": ProposalMade,
    "proposal.countered": ProposalCountered,
    "proposal.accepted": ProposalAccepted,
    "proposal.rejected": ProposalRejected,
    "proposal.withdrawn": ProposalWithdrawn,
    "agreement.reached": AgreementReached,
    "agreement.implemented": AgreementImplemented,
    "agreement.violated": AgreementViolated,
    "issue.dropped": IssueDropped,
    "issue.reopened": IssueReopened,
    "ceasefire.proposed": CeasefireProposed,
    "ceasefire.agreed": CeasefireAgreed,
    "ceasefire.rejected": CeasefireRejected,
    "ceasefire.violated": CeasefireViolated,
    "ceasefire.ended": CeasefireEnded,
    "corridor.proposed": CorridorProposed,
    "corridor.agreed": CorridorAgreed,
    "corridor.rejected": CorridorRejected,
    "corridor.opened": CorridorOpened,
    "corridor.violated": CorridorViolated,
    "corridor.closed": CorridorClosed,
}

# Which stream a type lives on ("either": the stream of the thing it concerns).
NEGOTIATION_TYPES = frozenset(
    {
        "negotiation.opened",
        "party.joined",
        "party.left",
        "round.scheduled",
        "round.held",
        "round.cancelled",
        "negotiation.suspended",
        "negotiation.resumed",
        "negotiation.concluded",
    }
)
EITHER_STREAM_TYPES = frozenset({"statement.made", "record.retracted", "claim.disputed"})
ISSUE_TYPES = frozenset(EVENT_TYPES) - NEGOTIATION_TYPES - EITHER_STREAM_TYPES


def _event_classes() -> dict[str, Any]:
    # Imported here, not at the top: the aggregate modules define the event
    # classes (which carry the versions) and must not depend on this module's
    # payload classes at import time in the other direction.
    from domain.issue import Issue
    from domain.negotiation import Negotiation

    classes: dict[str, Any] = {}
    for aggregate in (Negotiation, Issue):
        classes.update(aggregate.EVENT_CLASSES)
    return classes


EVENT_CLASSES: dict[str, Any] = _event_classes()
SCHEMA_VERSIONS: dict[str, int] = {
    name: getattr(EVENT_CLASSES[name], "class_version", 1) for name in EVENT_TYPES
}

_encoder = msgspec.json.Encoder(order="sorted")
_decoders = {name: msgspec.json.Decoder(cls) for name, cls in EVENT_TYPES.items()}


class UnknownEventType(ValueError):
    """Stored bytes of a type this code does not know: a deployment error, not a client's."""


def encode_data(data: msgspec.Struct) -> bytes:
    """Canonical JSON: keys sorted, no whitespace, defaults omitted.

    The store hashes exactly these bytes, so one payload always has one spelling.
    """
    return _encoder.encode(data)


def decode_data(type: str, schema_version: int, raw: bytes) -> msgspec.Struct:  # noqa: A002
    """Decode stored bytes of any past schema version into the current Struct."""
    try:
        current = SCHEMA_VERSIONS[type]
    except KeyError:
        raise UnknownEventType(f"unknown event type {type!r}") from None
    if schema_version == current:
        return _decoders[type].decode(raw)
    if not 1 <= schema_version < current:
        raise UnknownEventType(f"{type!r} has no schema version {schema_version} (current {current})")
    state = msgspec.json.decode(raw)
    event_class = EVENT_CLASSES[type]
    version = schema_version
    while version < current:
        getattr(event_class, f"upcast_v{version}_v{version + 1}")(state)
        version += 1
    return msgspec.convert(state, EVENT_TYPES[type])
