"""What clients send: one Struct per command, a tagged union on ``type``.

Over 300 lines on purpose: one tagged union of every command a client may send,
with the constraints the OpenAPI document shows; split, the union and the
shapes it names would drift apart.

Tags are the event type each command records ("proposal.made", ...). Every
command forbids unknown fields (a typo must not silently drop a fact) and
carries its constraints in ``msgspec.Meta`` so they reach the OpenAPI
document. msgspec checks shape and formats; :mod:`domain.decide` checks what
needs state (known parties, open proposals) or calendars (2022-02-30).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal, Union

import msgspec

from domain.records import Source
from domain.vocabulary import (
    CEASEFIRE_ISSUE,
    CORRIDOR_ISSUE,
    AgreementLevel,
    Assessment,
    Body,
    Category,
    CeasefireEndReason,
    CeasefireScope,
    Code,
    Codes,
    Extent,
    ItemId,
    Key,
    Lines,
    Name,
    Percentage,
    Place,
    RatificationMethod,
    Reason,
    Relation,
    Role,
    RoundFormat,
    RoundLevel,
    Slug,
    Stance,
    Summary,
    Title,
)
from domain.world_time import WorldTime

Note = Annotated[str, msgspec.Meta(min_length=1, max_length=4000, description="Recorder's note")]
Speaker = Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["Sergey Lavrov"])]
Window = Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["09:00-21:00 daily"])]


class CitedSource(Source, forbid_unknown_fields=True, frozen=True):
    """``source`` as a client sends it (unknown fields refused)."""


class Party(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: Code
    name: Name


COMMAND_CLASSES: list[type[CommonFields]] = []
"""Every command, in definition order (the union's order in the OpenAPI document)."""


class CommonFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="type"):
    """Fields common to every command (the base of each union member).

    Defining a subclass with a ``tag`` (the event type it records) adds it to
    the union.
    """

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        COMMAND_CLASSES.append(cls)

    occurred_on: WorldTime
    source: CitedSource | None = None
    note: Note | None = None
    claimed_by: Annotated[Codes, msgspec.Meta(description="Parties asserting this fact")] = []
    expected_version: Annotated[int, msgspec.Meta(ge=0, description="Version of the target stream")] | None = None


class OpenNegotiation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /negotiations``."""

    title: Title
    parties: Annotated[list[Party], msgspec.Meta(min_length=1, max_length=50)]
    occurred_on: WorldTime
    type: Literal["negotiation.opened"] = "negotiation.opened"
    slug: Slug | None = None
    mediators: Annotated[list[Party], msgspec.Meta(max_length=20)] = []
    source: CitedSource | None = None
    note: Note | None = None
    claimed_by: Codes = []


# --- negotiation ----------------------------------------------------------------------


class JoinParty(CommonFields, tag="party.joined"):
    party: Party
    role: Role = "party"


class LeaveParty(CommonFields, tag="party.left"):
    party: Code
    role: Role | None = None
    reason: Reason | None = None


class ScheduleRound(CommonFields, tag="round.scheduled"):
    """``venue`` and ``level`` are required unless holding an already scheduled round."""

    round_id: ItemId | None = None
    venue: Place | None = None
    country: Place | None = None
    level: RoundLevel | None = None
    format: RoundFormat | None = None
    participants: Codes = []
    mediator: Code | None = None
    issues: Annotated[list[Key], msgspec.Meta(max_length=50)] = []
    summary: Summary | None = None
    ends_on: Annotated[WorldTime, msgspec.Meta(description="Last day of a round spanning days")] | None = None


class HoldRound(ScheduleRound, tag="round.held"):
    pass


class CancelRound(CommonFields, tag="round.cancelled"):
    round_id: ItemId
    reason: Reason | None = None


class SuspendNegotiation(CommonFields, tag="negotiation.suspended"):
    reason: Reason | None = None


class ResumeNegotiation(CommonFields, tag="negotiation.resumed"):
    reason: Reason | None = None


class ConcludeNegotiation(CommonFields, tag="negotiation.concluded"):
    outcome: Summary | None = None


class ReopenNegotiation(CommonFields, tag="negotiation.reopened"):
    """A concluded negotiation becomes active again (renegotiation)."""

    reason: Reason | None = None


class MakeStatement(CommonFields, tag="statement.made"):
    """On the issue's stream when ``issue`` is given, else the negotiation's."""

    speaker: Speaker
    summary: Summary
    party: Code | None = None
    issue: Key | None = None
    assessment: Assessment | None = None


class RetractRecord(CommonFields, tag="record.retracted"):
    event_id: uuid.UUID
    reason: Reason


class DisputeClaim(CommonFields, tag="claim.disputed"):
    event_id: uuid.UUID
    by: Code
    summary: Summary


# --- issues -------------------------------------------------------------------------------


class RaiseIssue(CommonFields, tag="issue.raised"):
    issue: Key
    title: Title
    category: Category
    raised_by: Code | None = None


class LinkIssues(CommonFields, tag="issues.linked"):
    issue: Key
    related_issue: Key
    relation: Relation


class DiscussIssue(CommonFields, tag="issue.discussed"):
    issue: Key
    round_id: ItemId | None = None
    summary: Summary | None = None
    assessment: Assessment | None = None


class StatePosition(CommonFields, tag="position.stated"):
    issue: Key
    party: Code
    stance: Stance
    summary: Summary
    conditions: Lines = []


class MakeProposal(CommonFields, tag="proposal.made"):
    issue: Key
    by: Code
    summary: Summary
    proposal_id: ItemId | None = None
    to: Annotated[Codes, msgspec.Meta(description="Parties whose answer is awaited")] = []
    terms: Summary | None = None


class CounterProposal(MakeProposal, tag="proposal.countered", kw_only=True):
    counters: Annotated[ItemId, msgspec.Meta(description="The proposal this one answers")]


class AcceptProposal(CommonFields, tag="proposal.accepted"):
    issue: Key
    proposal_id: ItemId
    by: Code
    reason: Reason | None = None


class RejectProposal(AcceptProposal, tag="proposal.rejected"):
    pass


class WithdrawProposal(AcceptProposal, tag="proposal.withdrawn"):
    pass


class ReachAgreement(CommonFields, tag="agreement.reached"):
    """``issue`` for one issue, or ``issues`` for an agreement covering several
    (it is then recorded on, and shown by, each of them)."""

    level: AgreementLevel
    parties: Annotated[list[Code], msgspec.Meta(min_length=1, max_length=50)]
    summary: Summary
    issue: Key | None = None
    issues: Annotated[list[Key], msgspec.Meta(max_length=50, description="Every issue the agreement covers")] = []
    agreement_id: ItemId | None = None
    proposal_id: ItemId | None = None


_AgreementIssue = Annotated[
    Key, msgspec.Meta(description="Optional: the agreement id alone names the agreement in the negotiation")
]


class SignAgreement(CommonFields, tag="agreement.signed"):
    agreement_id: ItemId
    parties: Annotated[list[Code], msgspec.Meta(min_length=1, max_length=50, description="Parties that signed")]
    issue: _AgreementIssue | None = None
    venue: Place | None = None
    summary: Summary | None = None


class Result(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Percentages, as reported (e.g. 49.8 yes, 50.2 no, turnout 37.4)."""

    yes: Percentage | None = None
    no: Percentage | None = None
    turnout: Percentage | None = None


class RatifyAgreement(CommonFields, tag="agreement.ratified"):
    agreement_id: ItemId
    by: Annotated[Code, msgspec.Meta(description="The party whose ratification it is")]
    method: RatificationMethod
    issue: _AgreementIssue | None = None
    body: Body | None = None
    result: Result | None = None
    summary: Summary | None = None


class RejectAgreement(RatifyAgreement, tag="agreement.rejected"):
    pass


class ImplementAgreement(CommonFields, tag="agreement.implemented"):
    """May be recorded again as implementation moves, up or down."""

    agreement_id: ItemId
    issue: _AgreementIssue | None = None
    extent: Extent = "full"
    summary: Summary | None = None


class ReportAgreementViolation(CommonFields, tag="agreement.violated"):
    agreement_id: ItemId
    alleged_by: Code
    issue: _AgreementIssue | None = None
    against: Codes = []
    summary: Summary | None = None


class WithdrawFromAgreement(CommonFields, tag="agreement.withdrawn"):
    agreement_id: ItemId
    by: Annotated[Code, msgspec.Meta(description="The party leaving the agreement")]
    issue: _AgreementIssue | None = None
    reason: Reason | None = None


class SupersedeAgreement(CommonFields, tag="agreement.superseded"):
    agreement_id: ItemId
    by_agreement: Annotated[ItemId, msgspec.Meta(description="The agreement that replaces it")]
    issue: _AgreementIssue | None = None
    summary: Summary | None = None


class DropIssue(CommonFields, tag="issue.dropped"):
    issue: Key
    reason: Reason | None = None


class ReopenIssue(DropIssue, tag="issue.reopened"):
    pass


# --- ceasefires ---------------------------------------------------------------------------


class ProposeCeasefire(CommonFields, tag="ceasefire.proposed"):
    by: Code
    scope: CeasefireScope
    issue: Key = CEASEFIRE_ISSUE
    ceasefire_id: ItemId | None = None
    area: Place | None = None
    starts_at: WorldTime | None = None
    ends_at: WorldTime | None = None
    summary: Summary | None = None


class DeclareCeasefire(CommonFields, tag="ceasefire.declared"):
    """A unilateral ceasefire: one party declares it (it counts as discussion, not agreement)."""

    by: Code
    scope: CeasefireScope
    issue: Key = CEASEFIRE_ISSUE
    ceasefire_id: ItemId | None = None
    area: Place | None = None
    starts_at: WorldTime | None = None
    ends_at: WorldTime | None = None
    summary: Summary | None = None


class AgreeCeasefire(CommonFields, tag="ceasefire.agreed"):
    """Agreeing an unknown id introduces the item; ``scope`` is then required."""

    issue: Key = CEASEFIRE_ISSUE
    ceasefire_id: ItemId | None = None
    parties: Codes = []
    scope: CeasefireScope | None = None
    area: Place | None = None
    starts_at: WorldTime | None = None
    ends_at: WorldTime | None = None
    summary: Summary | None = None


class RejectCeasefire(CommonFields, tag="ceasefire.rejected"):
    ceasefire_id: ItemId
    by: Code
    issue: Key = CEASEFIRE_ISSUE
    reason: Reason | None = None


class ReportCeasefireViolation(CommonFields, tag="ceasefire.violated"):
    ceasefire_id: ItemId
    alleged_by: Code
    issue: Key = CEASEFIRE_ISSUE
    against: Codes = []
    summary: Summary | None = None


class EndCeasefire(CommonFields, tag="ceasefire.ended"):
    ceasefire_id: ItemId
    reason: CeasefireEndReason
    issue: Key = CEASEFIRE_ISSUE
    summary: Summary | None = None


# --- humanitarian corridors -------------------------------------------------------------


class ProposeCorridor(CommonFields, tag="corridor.proposed"):
    by: Code
    from_: Place = msgspec.field(name="from")
    to: Place
    issue: Key = CORRIDOR_ISSUE
    corridor_id: ItemId | None = None
    via: Place | None = None
    window: Window | None = None
    purpose: Summary | None = None
    summary: Summary | None = None


class AgreeCorridor(CommonFields, tag="corridor.agreed"):
    """Agreeing an unknown id introduces the item; ``from`` and ``to`` are then required."""

    issue: Key = CORRIDOR_ISSUE
    corridor_id: ItemId | None = None
    parties: Codes = []
    from_: Place | None = msgspec.field(default=None, name="from")
    to: Place | None = None
    via: Place | None = None
    window: Window | None = None
    purpose: Summary | None = None
    summary: Summary | None = None


class RejectCorridor(CommonFields, tag="corridor.rejected"):
    corridor_id: ItemId
    by: Code
    issue: Key = CORRIDOR_ISSUE
    reason: Reason | None = None


class OpenCorridor(CommonFields, tag="corridor.opened"):
    corridor_id: ItemId
    issue: Key = CORRIDOR_ISSUE
    summary: Summary | None = None


class ReportCorridorViolation(CommonFields, tag="corridor.violated"):
    corridor_id: ItemId
    alleged_by: Code
    issue: Key = CORRIDOR_ISSUE
    against: Codes = []
    summary: Summary | None = None


class CloseCorridor(CommonFields, tag="corridor.closed"):
    corridor_id: ItemId
    issue: Key = CORRIDOR_ISSUE
    reason: Reason | None = None



Command = Union[tuple(COMMAND_CLASSES)]  # type: ignore[valid-type]  # noqa: UP007
"""The tagged union clients send (``type`` selects the member)."""


class CommandBatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``{"commands": [...]}``: recorded atomically, in order."""

    commands: Annotated[list[Command], msgspec.Meta(min_length=1, max_length=100)]  # type: ignore[valid-type]


def command_type(command: CommonFields) -> str:
    """The event type a command records (its tag)."""
    return type(command).__struct_config__.tag  # type: ignore[return-value]


def parse_command(raw: bytes | str) -> CommonFields:
    return msgspec.json.decode(raw, type=Command)  # type: ignore[no-any-return]
