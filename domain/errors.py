"""Typed refusals.

Every rule the domain enforces raises a subclass of :class:`DomainError`. The
service turns one into an RFC 9457 problem: ``code`` is the stable slug clients
match on (never reworded), ``detail`` is the human sentence, ``pointer`` is a
JSON pointer into the command that was refused, ``status`` is the HTTP hint.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "domain-rule"
    status: ClassVar[int] = 422

    def __init__(self, detail: str, pointer: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.pointer = pointer
        # Machine-readable context (e.g. the current version on a conflict),
        # merged into the problem document by the service.
        self.extra = extra

    def at(self, prefix: str) -> DomainError:
        """Prefix the pointer, e.g. with ``/commands/3`` inside a batch."""
        self.pointer = prefix + (self.pointer or "")
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.detail!r}, pointer={self.pointer!r})"


# --- 404: the command refers to something that does not exist -------------


class NotFound(DomainError):
    code = "not-found"
    status = 404


class UnknownNegotiation(NotFound):
    code = "unknown-negotiation"


class UnknownIssue(NotFound):
    code = "unknown-issue"


class UnknownEvent(NotFound):
    code = "unknown-event"


class NoSuchAgreement(NotFound):
    """``GET /negotiations/{ref}/agreements/{id}`` of an id the negotiation has no agreement under."""

    code = "unknown-agreement"


# Unknown parties and item ids are rule violations about the command's content
# (the URL resolved fine), hence 422 rather than 404.
class UnknownParty(DomainError):
    code = "unknown-party"


class UnknownItem(DomainError):
    code = "unknown-item"


class UnknownProposal(UnknownItem):
    code = "unknown-proposal"


class UnknownAgreement(UnknownItem):
    code = "unknown-agreement"


class UnknownRound(UnknownItem):
    code = "unknown-round"


# --- 422: the command is malformed or breaks a rule -------------------------


class InvalidDate(DomainError):
    code = "invalid-date"


class InvalidDateRange(DomainError):
    code = "invalid-date-range"


class DuplicateParty(DomainError):
    code = "duplicate-party"


class ItemIdReused(DomainError):
    code = "item-id-reused"


class ItemIdRequired(DomainError):
    code = "item-id-required"


class OwnProposal(DomainError):
    code = "own-proposal"


class NotAddressed(DomainError):
    code = "not-addressed"


class NotProposer(DomainError):
    code = "not-proposer"


class SelfLink(DomainError):
    code = "self-link"


class NotRetractable(DomainError):
    code = "not-retractable"


class NotDisputable(DomainError):
    code = "not-disputable"


class OwnClaim(DomainError):
    code = "own-claim"


class WrongStream(DomainError):
    code = "wrong-stream"


# --- 409: the command conflicts with the current state ----------------------


class Conflict(DomainError):
    code = "conflict"
    status = 409


class VersionConflict(Conflict):
    code = "version-conflict"


class NegotiationConcluded(Conflict):
    code = "negotiation-concluded"


class NegotiationSuspended(Conflict):
    code = "negotiation-suspended"


class NegotiationNotSuspended(Conflict):
    code = "negotiation-not-suspended"


class PartyAlreadyJoined(Conflict):
    code = "party-already-joined"


class IssueAlreadyRaised(Conflict):
    code = "issue-already-raised"


class IssueDropped(Conflict):
    code = "issue-dropped"


class IssueNotDropped(Conflict):
    code = "issue-not-dropped"


class ProposalClosed(Conflict):
    code = "proposal-closed"


class AlreadyResponded(Conflict):
    code = "already-responded"


class AgreementNotFinal(Conflict):
    code = "agreement-not-final"


class InvalidTransition(Conflict):
    """An item or round cannot take this step from the state it is in."""

    code = "invalid-transition"


class LinkExists(Conflict):
    code = "link-exists"


class AlreadyRetracted(Conflict):
    code = "already-retracted"


class RetractionBlocked(Conflict):
    code = "retraction-blocked"


class AlreadyDisputed(Conflict):
    code = "already-disputed"


class MissingDetail(DomainError):
    """A field optional in general is needed in this case (e.g. a new round's venue)."""

    code = "missing-detail"


class PartyNotActive(Conflict):
    code = "party-not-active"


class NegotiationNotConcluded(Conflict):
    code = "negotiation-not-concluded"


class AgreementNotInForce(Conflict):
    """The agreement was rejected, superseded, or left by every party but one."""

    code = "agreement-not-in-force"


class AlreadyWithdrawn(Conflict):
    code = "already-withdrawn"


class AlreadySuperseded(Conflict):
    code = "already-superseded"


class AlreadyRatified(Conflict):
    code = "already-ratified"


class NotAgreementParty(DomainError):
    """A party acting on an agreement (ratifying, withdrawing) must be one of its parties."""

    code = "not-agreement-party"


class AmbiguousAgreement(DomainError):
    """Version 1 allowed one agreement id on several issues: name the issue."""

    code = "ambiguous-agreement"


class DuplicateIssue(DomainError):
    code = "duplicate-issue"
