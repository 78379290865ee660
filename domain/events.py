"""THE event vocabulary: one msgspec Struct per stored event type, in one union.

Over 300 lines on purpose: this is the ONE vocabulary (issue 13 item 7), every
stored payload in one tagged union with its version and upcasters; one module is
what keeps it one.

A payload is the fact's own fields (``data`` in an envelope); when, who, source
and claims live in the envelope (:class:`domain.records.Recorded`). Each
payload class declares, on the class itself:

* ``TYPE`` -- the stored type string, which is the union's tag. The tag lives in
  the envelope (``type``), not inside ``data``: the data bytes are hashed, and
  version 1 bytes must keep their spelling;
* ``STREAM`` -- where the fact is recorded: ``"negotiation"``, ``"issue"``, or
  ``"either"`` (the stream of what it is about: statements, corrections);
* ``class_version`` and ``upcast_vN_vN+1(state)`` static methods that rewrite a
  stored JSON object of version N into version N+1 in place (the eventsourcing
  library's convention, here on the payload class).

Defining a subclass registers it (:data:`EVENT_TYPES`); the folds dispatch on
the payload class (:mod:`domain.dispatch`), so a new event type is: its
payload here, its command and rule (:mod:`domain.commands` and a rules
module), and its fold handler.

Stored payloads never forbid unknown fields (a newer writer may have added
some) and every field added after a type's first version has a default, so
older bytes still decode. They carry no validation constraints either: what
was accepted once must stay readable even if the command rules tighten later.
Validation lives on the commands.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Literal, Union

import msgspec

StreamKind = Literal["negotiation", "issue", "either"]

EVENT_TYPES: dict[str, type[Payload]] = {}
"""Every payload class by its stored type, in definition order."""


class Payload(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    """Base of every stored payload (``omit_defaults``: one spelling per value)."""

    TYPE: ClassVar[str] = ""
    STREAM: ClassVar[StreamKind] = "issue"
    class_version: ClassVar[int] = 1
    # What the fact is about, as (kind, field holding its id), and the other
    # subjects it refers to: disputes flag the subject, retractions check that
    # nothing live still refers to a subject they would remove.
    SUBJECT: ClassVar[tuple[str, str] | None] = None
    REFERS: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TYPE" not in cls.__dict__:
            raise TypeError(f"{cls.__name__} must declare its stored TYPE")
        if cls.TYPE in EVENT_TYPES:
            raise TypeError(f"two payload classes for {cls.TYPE!r}")
        EVENT_TYPES[cls.TYPE] = cls


class PartyRef(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    code: str
    name: str


# --- negotiation stream ------------------------------------------------------


class NegotiationOpened(Payload):
    TYPE = "negotiation.opened"
    STREAM = "negotiation"
    title: str
    slug: str
    parties: list[PartyRef]
    mediators: list[PartyRef] = []


class PartyJoined(Payload):
    TYPE = "party.joined"
    SUBJECT = ("party", "party.code")
    STREAM = "negotiation"
    party: PartyRef
    role: str = "party"


class PartyLeft(Payload):
    TYPE = "party.left"
    SUBJECT = ("party", "party")
    STREAM = "negotiation"
    party: str
    role: str | None = None
    reason: str | None = None


class _RoundDetails(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    round_id: str
    venue: str | None = None
    ends_on: str | None = None  # v2: a round spanning days (added with a default)
    country: str | None = None
    level: str | None = None
    format: str | None = None
    participants: list[str] = []
    mediator: str | None = None
    issues: list[str] = []
    summary: str | None = None


class RoundScheduled(Payload, _RoundDetails):
    TYPE = "round.scheduled"
    SUBJECT = ("round", "round_id")
    STREAM = "negotiation"


class RoundHeld(Payload, _RoundDetails):
    TYPE = "round.held"
    SUBJECT = ("round", "round_id")
    STREAM = "negotiation"


class RoundCancelled(Payload):
    TYPE = "round.cancelled"
    SUBJECT = ("round", "round_id")
    STREAM = "negotiation"
    round_id: str
    reason: str | None = None


class NegotiationSuspended(Payload):
    TYPE = "negotiation.suspended"
    STREAM = "negotiation"
    reason: str | None = None


class NegotiationResumed(Payload):
    TYPE = "negotiation.resumed"
    STREAM = "negotiation"
    reason: str | None = None


class NegotiationConcluded(Payload):
    TYPE = "negotiation.concluded"
    STREAM = "negotiation"
    outcome: str | None = None


class NegotiationReopened(Payload):
    """v2: a concluded negotiation becomes active again (renegotiation)."""

    TYPE = "negotiation.reopened"
    STREAM = "negotiation"
    reason: str | None = None


# --- either stream -------------------------------------------------------------


class StatementMade(Payload):
    TYPE = "statement.made"
    STREAM = "either"
    speaker: str
    summary: str
    party: str | None = None
    issue: str | None = None
    assessment: str | None = None


class RecordRetracted(Payload):
    TYPE = "record.retracted"
    STREAM = "either"
    event_id: uuid.UUID
    reason: str


class ClaimDisputed(Payload):
    TYPE = "claim.disputed"
    STREAM = "either"
    event_id: uuid.UUID
    by: str
    summary: str


# Corrections of the record, not facts of the world: they name another event
# (`event_id`) and act in record time whatever their occurred_on.
CORRECTIONS = (RecordRetracted, ClaimDisputed)


# --- issue stream --------------------------------------------------------------


class IssueRaised(Payload):
    TYPE = "issue.raised"
    issue: str
    title: str
    category: str
    raised_by: str | None = None


class IssuesLinked(Payload):
    TYPE = "issues.linked"
    issue: str
    related_issue: str
    relation: str


class IssueDiscussed(Payload):
    TYPE = "issue.discussed"
    issue: str
    round_id: str | None = None
    summary: str | None = None
    assessment: str | None = None


class PositionStated(Payload):
    """v2: ``conditions`` is a list (v1 had a single optional ``condition``)."""

    TYPE = "position.stated"
    SUBJECT = ("position", "party")
    class_version = 2
    issue: str
    party: str
    stance: str
    summary: str
    conditions: list[str] = []

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        condition = state.pop("condition", None)
        state["conditions"] = [condition] if condition else []


class _ProposalDetails(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    issue: str
    proposal_id: str
    by: str
    summary: str
    to: list[str] = []
    terms: str | None = None


class ProposalMade(Payload, _ProposalDetails):
    TYPE = "proposal.made"
    SUBJECT = ("proposal", "proposal_id")


class ProposalCountered(Payload, _ProposalDetails, kw_only=True):
    TYPE = "proposal.countered"
    SUBJECT = ("proposal", "proposal_id")
    REFERS = (("proposal", "counters"),)
    counters: str


class _ProposalAnswer(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    issue: str
    proposal_id: str
    by: str
    reason: str | None = None


class ProposalAccepted(Payload, _ProposalAnswer):
    TYPE = "proposal.accepted"
    SUBJECT = ("proposal", "proposal_id")


class ProposalRejected(Payload, _ProposalAnswer):
    TYPE = "proposal.rejected"
    SUBJECT = ("proposal", "proposal_id")


class ProposalWithdrawn(Payload, _ProposalAnswer):
    TYPE = "proposal.withdrawn"
    SUBJECT = ("proposal", "proposal_id")


class AgreementReached(Payload):
    """v2 adds ``issues``: every issue the agreement covers (left out for one
    issue, so version 1 bytes keep their spelling). A multi-issue agreement's
    facts are recorded once on each issue it covers, ``issue`` naming that
    stream, so each issue's fold sees the whole agreement."""

    TYPE = "agreement.reached"
    SUBJECT = ("agreement", "agreement_id")
    REFERS = (("proposal", "proposal_id"),)
    issue: str
    agreement_id: str
    level: str
    parties: list[str]
    summary: str
    proposal_id: str | None = None
    issues: list[str] = []


class AgreementSigned(Payload):
    TYPE = "agreement.signed"
    SUBJECT = ("agreement", "agreement_id")
    issue: str
    agreement_id: str
    parties: list[str]
    venue: str | None = None
    summary: str | None = None


class RatificationResult(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    """Percentages, as reported."""

    yes: float | None = None
    no: float | None = None
    turnout: float | None = None


class _Ratification(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    issue: str
    agreement_id: str
    by: str
    method: str
    body: str | None = None
    result: RatificationResult | None = None
    summary: str | None = None


class AgreementRatified(Payload, _Ratification):
    TYPE = "agreement.ratified"
    SUBJECT = ("agreement", "agreement_id")


class AgreementRejected(Payload, _Ratification):
    TYPE = "agreement.rejected"
    SUBJECT = ("agreement", "agreement_id")


class AgreementImplemented(Payload):
    """v2 adds ``extent`` (minimal | intermediate | full; full when left out, as
    every version 1 implementation was)."""

    TYPE = "agreement.implemented"
    SUBJECT = ("agreement", "agreement_id")
    issue: str
    agreement_id: str
    summary: str | None = None
    extent: str = "full"


class AgreementViolated(Payload):
    TYPE = "agreement.violated"
    SUBJECT = ("agreement", "agreement_id")
    issue: str
    agreement_id: str
    alleged_by: str
    against: list[str] = []
    summary: str | None = None


class AgreementWithdrawn(Payload):
    TYPE = "agreement.withdrawn"
    SUBJECT = ("agreement", "agreement_id")
    issue: str
    agreement_id: str
    by: str
    reason: str | None = None


class AgreementSuperseded(Payload):
    TYPE = "agreement.superseded"
    SUBJECT = ("agreement", "agreement_id")
    REFERS = (("agreement", "by_agreement"),)
    issue: str
    agreement_id: str
    by_agreement: str
    summary: str | None = None


class IssueDropped(Payload):
    TYPE = "issue.dropped"
    issue: str
    reason: str | None = None


class IssueReopened(Payload):
    TYPE = "issue.reopened"
    issue: str
    reason: str | None = None


class CeasefireProposed(Payload):
    TYPE = "ceasefire.proposed"
    SUBJECT = ("item", "ceasefire_id")
    issue: str
    ceasefire_id: str
    by: str
    scope: str
    area: str | None = None
    starts_at: str | None = None
    ends_at: str | None = None
    summary: str | None = None


class CeasefireDeclared(Payload):
    """v2: a unilateral ceasefire, declared by one party."""

    TYPE = "ceasefire.declared"
    SUBJECT = ("item", "ceasefire_id")
    issue: str
    ceasefire_id: str
    by: str
    scope: str
    area: str | None = None
    starts_at: str | None = None
    ends_at: str | None = None
    summary: str | None = None


class CeasefireAgreed(Payload):
    TYPE = "ceasefire.agreed"
    SUBJECT = ("item", "ceasefire_id")
    issue: str
    ceasefire_id: str
    parties: list[str] = []
    scope: str | None = None
    area: str | None = None
    starts_at: str | None = None
    ends_at: str | None = None
    summary: str | None = None


class CeasefireRejected(Payload):
    TYPE = "ceasefire.rejected"
    SUBJECT = ("item", "ceasefire_id")
    issue: str
    ceasefire_id: str
    by: str
    reason: str | None = None


class CeasefireViolated(Payload):
    TYPE = "ceasefire.violated"
    SUBJECT = ("item", "ceasefire_id")
    issue: str
    ceasefire_id: str
    alleged_by: str
    against: list[str] = []
    summary: str | None = None


class CeasefireEnded(Payload):
    TYPE = "ceasefire.ended"
    SUBJECT = ("item", "ceasefire_id")
    issue: str
    ceasefire_id: str
    reason: str
    summary: str | None = None


class CorridorProposed(Payload):
    TYPE = "corridor.proposed"
    SUBJECT = ("item", "corridor_id")
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
    TYPE = "corridor.agreed"
    SUBJECT = ("item", "corridor_id")
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
    TYPE = "corridor.rejected"
    SUBJECT = ("item", "corridor_id")
    issue: str
    corridor_id: str
    by: str
    reason: str | None = None


class CorridorOpened(Payload):
    TYPE = "corridor.opened"
    SUBJECT = ("item", "corridor_id")
    issue: str
    corridor_id: str
    summary: str | None = None


class CorridorViolated(Payload):
    TYPE = "corridor.violated"
    SUBJECT = ("item", "corridor_id")
    issue: str
    corridor_id: str
    alleged_by: str
    against: list[str] = []
    summary: str | None = None


class CorridorClosed(Payload):
    TYPE = "corridor.closed"
    SUBJECT = ("item", "corridor_id")
    issue: str
    corridor_id: str
    reason: str | None = None


# --- the union and what is derived from it -------------------------------------------

Event = Union[tuple(EVENT_TYPES.values())]  # type: ignore[valid-type]  # noqa: UP007
"""Every stored payload; the envelope's ``type`` is the tag."""

NEGOTIATION_TYPES = frozenset(t for t, cls in EVENT_TYPES.items() if cls.STREAM == "negotiation")
EITHER_STREAM_TYPES = frozenset(t for t, cls in EVENT_TYPES.items() if cls.STREAM == "either")
ISSUE_TYPES = frozenset(t for t, cls in EVENT_TYPES.items() if cls.STREAM == "issue")
SCHEMA_VERSIONS: dict[str, int] = {t: cls.class_version for t, cls in EVENT_TYPES.items()}

_encoder = msgspec.json.Encoder(order="sorted")
_decoders = {t: msgspec.json.Decoder(cls) for t, cls in EVENT_TYPES.items()}


class UnknownEventType(ValueError):
    """Stored bytes of a type this code does not know: a deployment error, not a client's."""


def encode_data(data: msgspec.Struct) -> bytes:
    """Canonical JSON: keys sorted, no whitespace, defaults omitted.

    The store hashes exactly these bytes, so one payload always has one spelling.
    """
    return _encoder.encode(data)


def decode_data(type: str, schema_version: int, raw: bytes) -> Payload:  # noqa: A002
    """Decode stored bytes of any past schema version into the current payload."""
    cls = EVENT_TYPES.get(type)
    if cls is None:
        raise UnknownEventType(f"unknown event type {type!r}")
    current = cls.class_version
    if schema_version == current:
        return _decoders[type].decode(raw)
    if not 1 <= schema_version < current:
        raise UnknownEventType(f"{type!r} has no schema version {schema_version} (current {current})")
    state = msgspec.json.decode(raw)
    for version in range(schema_version, current):
        getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
    return msgspec.convert(state, cls)
