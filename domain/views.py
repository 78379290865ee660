"""What clients read: the status views the folds produce.

Plain msgspec Structs, encoded as they are by projections and time travel (the
HTTP layer never re-encodes a view). Every closed vocabulary is a ``Literal``
from :mod:`domain.vocabulary`, so the OpenAPI document lists its values.
"""

from __future__ import annotations

import msgspec

from domain.vocabulary import (
    AgreementLevel,
    Category,
    AgreementState,
    Extent,
    RatificationMethod,
    RatificationOutcome,
    IssueStatus,
    ItemKind,
    ItemState,
    NegotiationStatus,
    ProposalStatus,
    Relation,
    Role,
    RoundFormat,
    RoundLevel,
    RoundState,
    Stance,
)


class PositionView(msgspec.Struct, kw_only=True):
    stance: Stance
    summary: str
    occurred_on: str
    conditions: list[str] = []
    event_id: str = ""
    disputed: bool = False


class ProposalView(msgspec.Struct, kw_only=True):
    proposal_id: str
    by: str
    to: list[str]
    summary: str
    status: ProposalStatus
    awaiting: list[str]
    disputed: bool = False
    terms: str | None = None
    counters: str | None = None
    countered_by: str | None = None
    accepted_by: list[str] = []
    rejected_by: list[str] = []
    occurred_on: str = ""


class ResultView(msgspec.Struct, kw_only=True, omit_defaults=True):
    yes: float | None = None
    no: float | None = None
    turnout: float | None = None


class RatificationView(msgspec.Struct, kw_only=True):
    by: str
    method: RatificationMethod
    outcome: RatificationOutcome
    occurred_on: str
    body: str | None = None
    result: ResultView | None = None


class ImplementationView(msgspec.Struct, kw_only=True):
    extent: Extent
    occurred_on: str


class AgreementView(msgspec.Struct, kw_only=True):
    """An agreement and its life after the table (DESIGN v2).

    ``state`` is the latest step; ``in_force`` is false once it was rejected in
    a ratification, superseded, or withdrawn from by every party but one.
    """

    agreement_id: str
    level: AgreementLevel
    parties: list[str]
    summary: str
    state: AgreementState
    issues: list[str] = []
    in_force: bool = True
    disputed: bool = False
    proposal_id: str | None = None
    signed_by: list[str] = []
    ratifications: list[RatificationView] = []
    implementation: ImplementationView | None = None
    withdrawn_by: list[str] = []
    superseded_by: str | None = None
    violations: int = 0
    occurred_on: str = ""


class ItemView(msgspec.Struct, kw_only=True):
    kind: ItemKind
    id: str
    state: ItemState
    disputed: bool = False
    agreed: bool = False  # was ever agreed (an ended/closed item then is history)
    declared: bool = False  # declared unilaterally (a ceasefire.declared)
    by: str | None = None
    parties: list[str] = []
    scope: str | None = None
    area: str | None = None
    starts_at: str | None = None
    ends_at: str | None = None
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    via: str | None = None
    window: str | None = None
    purpose: str | None = None
    summary: str | None = None
    violations: int = 0
    end_reason: str | None = None
    occurred_on: str = ""
    updated_on: str = ""


class LinkView(msgspec.Struct):
    issue: str
    relation: Relation


class DisputeView(msgspec.Struct, kw_only=True):
    event_id: str  # the disputed fact
    by: str
    summary: str
    occurred_on: str
    dispute_id: str  # the claim.disputed event itself


class IssueView(msgspec.Struct, kw_only=True):
    key: str
    title: str
    category: Category
    status: IssueStatus
    positions: dict[str, PositionView]
    proposals: list[ProposalView]
    agreements: list[AgreementView]
    items: list[ItemView]
    item_counts: dict[str, int]
    linked: list[LinkView]
    disputes: list[DisputeView]
    retracted: list[str]
    last_activity_on: str | None
    events: int
    version: int


class PartyView(msgspec.Struct, kw_only=True):
    code: str
    name: str
    role: Role  # the first role it joined in (which list it is shown in)
    roles: list[Role] = []  # every role it holds (v2: a host may also be a guarantor)
    active: bool = True
    disputed: bool = False


class RoundView(msgspec.Struct, kw_only=True):
    round_id: str
    state: RoundState
    venue: str | None = None
    country: str | None = None
    level: RoundLevel | None = None
    format: RoundFormat | None = None
    participants: list[str] = []
    mediator: str | None = None
    issues: list[str] = []
    summary: str | None = None
    occurred_on: str = ""
    ends_on: str | None = None
    disputed: bool = False


class NegotiationView(msgspec.Struct, kw_only=True):
    id: str
    slug: str
    title: str
    status: NegotiationStatus
    parties: list[PartyView]
    mediators: list[PartyView]
    rounds: list[RoundView]
    outcome: str | None
    concluded_on: str | None
    disputes: list[DisputeView]
    retracted: list[str]
    last_activity_on: str | None
    events: int
    version: int
