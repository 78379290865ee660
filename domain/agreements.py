"""Agreements, from the table to the ground (DESIGN v2).

An agreement is introduced by ``agreement.reached`` (on one issue, or on
several: ``issues``) and then lives through signing, ratification or
rejection, implementation (``extent``, repeatable, up or down), violations,
withdrawals and supersession. Its id is unique in the negotiation, so a
lifecycle command names only ``agreement_id``: :func:`domain.decide.decide`
finds the issues it covers, decides the step against the agreement as the
first of them holds it (``ctx.agreement``) and records the step once on each
covered issue, so every issue's own fold sees the whole agreement.
"""

from __future__ import annotations

from domain import commands as c
from domain import errors
from domain import events as e
from domain.context import Context, rule
from domain.status_rules import agreement_in_force
from domain.views import AgreementView

_POINTER = "/agreement_id"


def _agreement(ctx: Context) -> AgreementView:
    if ctx.agreement is None:  # decide resolves it first; a dispatch bug otherwise
        raise RuntimeError("agreement step without its agreement")
    return ctx.agreement


def _in_force(a: AgreementView, step: str) -> None:
    if not agreement_in_force(a):
        why = (
            f"superseded by {a.superseded_by!r}"
            if a.superseded_by
            else "rejected in ratification"
            if any(r.outcome == "rejected" for r in a.ratifications)
            else f"left by {', '.join(a.withdrawn_by)}"
        )
        raise errors.AgreementNotInForce(
            f"agreement {a.agreement_id!r} is no longer in force ({why}); it cannot be {step}", _POINTER
        )


def _party_of(a: AgreementView, code: str, ctx: Context, pointer: str = "/by") -> None:
    ctx.require_party(code, pointer)
    if code not in a.parties and code not in a.signed_by:
        raise errors.NotAgreementParty(
            f"{code} is not a party to agreement {a.agreement_id!r} (its parties: {', '.join(a.parties)})", pointer
        )


@rule(c.ReachAgreement)
def agreement_reached(cmd: c.ReachAgreement, ctx: Context) -> e.AgreementReached:
    agreement_id = ctx.new_id(cmd.agreement_id, _POINTER)
    for key, tally in ctx.issues.items():
        if agreement_id in tally.agreements:
            raise errors.ItemIdReused(f"agreement {agreement_id!r} already exists (on issue {key!r})", _POINTER)
    for key in ctx.covered:
        if agreement_id in ctx.issues[key].item_ids():
            raise errors.ItemIdReused(f"{agreement_id!r} is already used on issue {key!r}", _POINTER)
    ctx.require_parties(cmd.parties, "/parties")
    if cmd.proposal_id is not None:
        p = ctx.on_issue.proposals.get(cmd.proposal_id)
        if p is None:
            raise errors.UnknownProposal(f"proposal {cmd.proposal_id!r} does not exist", "/proposal_id")
        if p.status == "withdrawn":
            raise errors.ProposalClosed(f"proposal {cmd.proposal_id!r} was withdrawn", "/proposal_id")
    return e.AgreementReached(
        issue=ctx.on_issue.key,
        issues=list(ctx.covered) if len(ctx.covered) > 1 else [],
        agreement_id=agreement_id,
        level=cmd.level,
        parties=list(cmd.parties),
        summary=cmd.summary,
        proposal_id=cmd.proposal_id,
    )


@rule(c.SignAgreement)
def agreement_signed(cmd: c.SignAgreement, ctx: Context) -> e.AgreementSigned:
    a = _agreement(ctx)
    _in_force(a, "signed")
    if a.state not in ("reached", "signed"):
        raise errors.InvalidTransition(f"agreement {a.agreement_id!r} is {a.state}; it cannot be signed now", _POINTER)
    ctx.require_parties(cmd.parties, "/parties")
    for i, code in enumerate(cmd.parties):
        if code in a.signed_by:
            raise errors.AlreadyResponded(f"{code} has already signed agreement {a.agreement_id!r}", f"/parties/{i}")
    return e.AgreementSigned(
        issue=ctx.on_issue.key, agreement_id=a.agreement_id, parties=list(cmd.parties), venue=cmd.venue,
        summary=cmd.summary,
    )  # fmt: skip


def _ratification(cmd: c.RatifyAgreement, ctx: Context, outcome: str) -> dict:
    a = _agreement(ctx)
    _in_force(a, outcome)
    _party_of(a, cmd.by, ctx)
    for earlier in a.ratifications:
        if earlier.by == cmd.by and earlier.body == cmd.body and earlier.method == cmd.method:
            raise errors.AlreadyRatified(
                f"{cmd.by} has already {earlier.outcome} agreement {a.agreement_id!r}"
                + (f" through {cmd.body}" if cmd.body else f" by {cmd.method}"),
                "/by",
            )
    result = None if cmd.result is None else e.RatificationResult(
        yes=cmd.result.yes, no=cmd.result.no, turnout=cmd.result.turnout
    )
    return dict(
        issue=ctx.on_issue.key, agreement_id=a.agreement_id, by=cmd.by, method=cmd.method, body=cmd.body,
        result=result, summary=cmd.summary,
    )  # fmt: skip


@rule(c.RatifyAgreement)
def agreement_ratified(cmd: c.RatifyAgreement, ctx: Context) -> e.AgreementRatified:
    return e.AgreementRatified(**_ratification(cmd, ctx, "ratified"))


@rule(c.RejectAgreement)
def agreement_rejected(cmd: c.RejectAgreement, ctx: Context) -> e.AgreementRejected:
    return e.AgreementRejected(**_ratification(cmd, ctx, "rejected"))


@rule(c.ImplementAgreement)
def agreement_implemented(cmd: c.ImplementAgreement, ctx: Context) -> e.AgreementImplemented:
    a = _agreement(ctx)
    if a.level != "final":
        raise errors.AgreementNotFinal(
            f"agreement {a.agreement_id!r} is in principle; record the final agreement before its implementation",
            _POINTER,
        )
    _in_force(a, "implemented")
    return e.AgreementImplemented(
        issue=ctx.on_issue.key, agreement_id=a.agreement_id, extent=cmd.extent, summary=cmd.summary
    )


@rule(c.ReportAgreementViolation)
def agreement_violated(cmd: c.ReportAgreementViolation, ctx: Context) -> e.AgreementViolated:
    a = _agreement(ctx)
    ctx.require_party(cmd.alleged_by, "/alleged_by")
    ctx.require_parties(cmd.against, "/against")
    return e.AgreementViolated(
        issue=ctx.on_issue.key,
        agreement_id=a.agreement_id,
        alleged_by=cmd.alleged_by,
        against=list(cmd.against),
        summary=cmd.summary,
    )


@rule(c.WithdrawFromAgreement)
def agreement_withdrawn(cmd: c.WithdrawFromAgreement, ctx: Context) -> e.AgreementWithdrawn:
    a = _agreement(ctx)
    _party_of(a, cmd.by, ctx)
    if cmd.by in a.withdrawn_by:
        raise errors.AlreadyWithdrawn(f"{cmd.by} has already withdrawn from agreement {a.agreement_id!r}", "/by")
    _in_force(a, "withdrawn from")
    return e.AgreementWithdrawn(issue=ctx.on_issue.key, agreement_id=a.agreement_id, by=cmd.by, reason=cmd.reason)


@rule(c.SupersedeAgreement)
def agreement_superseded(cmd: c.SupersedeAgreement, ctx: Context) -> e.AgreementSuperseded:
    a = _agreement(ctx)
    if a.superseded_by is not None:
        raise errors.AlreadySuperseded(
            f"agreement {a.agreement_id!r} was already superseded by {a.superseded_by!r}", _POINTER
        )
    if cmd.by_agreement == a.agreement_id:
        raise errors.InvalidTransition("an agreement cannot supersede itself", "/by_agreement")
    if not any(cmd.by_agreement in tally.agreements for tally in ctx.issues.values()):
        raise errors.UnknownAgreement(
            f"agreement {cmd.by_agreement!r} does not exist in this negotiation; record it first", "/by_agreement"
        )
    return e.AgreementSuperseded(
        issue=ctx.on_issue.key, agreement_id=a.agreement_id, by_agreement=cmd.by_agreement, summary=cmd.summary
    )
