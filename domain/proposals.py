"""Proposals, counter-proposals and their answers (agreements: :mod:`domain.agreements`).

Proposal, agreement and item ids share one namespace per issue stream, so an
id names exactly one thing on the issue. (Unique per issue rather than per
negotiation: issues are separate streams precisely so that recording on
different issues never conflicts.)
"""

from __future__ import annotations

from domain import commands as c
from domain import errors
from domain import events as e
from domain.context import Context, rule
from domain.views import ProposalView


def _fresh_id(given: str | None, field: str, ctx: Context) -> str:
    item_id = ctx.new_id(given, f"/{field}")
    if item_id in ctx.on_issue.item_ids():
        raise errors.ItemIdReused(f"{item_id!r} is already used on issue {ctx.on_issue.key!r}", f"/{field}")
    return item_id


def _open_proposal(proposal_id: str, ctx: Context, pointer: str) -> ProposalView:
    p = ctx.on_issue.proposals.get(proposal_id)
    if p is None:
        raise errors.UnknownProposal(f"proposal {proposal_id!r} does not exist on issue {ctx.on_issue.key!r}", pointer)
    if p.status != "open":
        raise errors.ProposalClosed(f"proposal {proposal_id!r} is {p.status}", pointer)
    return p


def _answerable(p: ProposalView, by: str, ctx: Context) -> None:
    """Checks for a party answering (accepting, rejecting, countering) a proposal."""
    ctx.require_party(by, "/by")
    if by == p.by:
        raise errors.OwnProposal(f"{by} made proposal {p.proposal_id!r}; a party cannot answer its own proposal", "/by")
    if p.to and by not in p.to:
        raise errors.NotAddressed(
            f"proposal {p.proposal_id!r} is addressed to {', '.join(p.to)}, not {by}", "/by"
        )
    if by in p.accepted_by or by in p.rejected_by:
        raise errors.AlreadyResponded(f"{by} has already answered proposal {p.proposal_id!r}", "/by")


def _proposal_fields(cmd: c.MakeProposal, ctx: Context, to: list[str]) -> dict:
    ctx.require_party(cmd.by, "/by")
    ctx.require_parties(to, "/to")
    if cmd.by in to:
        raise errors.OwnProposal(f"{cmd.by} cannot address a proposal to itself", "/to")
    return dict(
        issue=cmd.issue,
        proposal_id=_fresh_id(cmd.proposal_id, "proposal_id", ctx),
        by=cmd.by,
        to=to,
        summary=cmd.summary,
        terms=cmd.terms,
    )


@rule(c.MakeProposal)
def proposal_made(cmd: c.MakeProposal, ctx: Context) -> e.ProposalMade:
    return e.ProposalMade(**_proposal_fields(cmd, ctx, list(cmd.to)))


@rule(c.CounterProposal)
def proposal_countered(cmd: c.CounterProposal, ctx: Context) -> e.ProposalCountered:
    earlier = _open_proposal(cmd.counters, ctx, "/counters")
    _answerable(earlier, cmd.by, ctx)
    # A counter-proposal awaits, by default, the party whose proposal it answers.
    to = list(cmd.to) or [earlier.by]
    return e.ProposalCountered(**_proposal_fields(cmd, ctx, to), counters=cmd.counters)


@rule(c.AcceptProposal)
def proposal_accepted(cmd: c.AcceptProposal, ctx: Context) -> e.ProposalAccepted:
    _answerable(_open_proposal(cmd.proposal_id, ctx, "/proposal_id"), cmd.by, ctx)
    return e.ProposalAccepted(issue=cmd.issue, proposal_id=cmd.proposal_id, by=cmd.by, reason=cmd.reason)


@rule(c.RejectProposal)
def proposal_rejected(cmd: c.RejectProposal, ctx: Context) -> e.ProposalRejected:
    _answerable(_open_proposal(cmd.proposal_id, ctx, "/proposal_id"), cmd.by, ctx)
    return e.ProposalRejected(issue=cmd.issue, proposal_id=cmd.proposal_id, by=cmd.by, reason=cmd.reason)


@rule(c.WithdrawProposal)
def proposal_withdrawn(cmd: c.WithdrawProposal, ctx: Context) -> e.ProposalWithdrawn:
    p = _open_proposal(cmd.proposal_id, ctx, "/proposal_id")
    ctx.require_party(cmd.by, "/by")
    if cmd.by != p.by:
        raise errors.NotProposer(f"only {p.by}, who made proposal {p.proposal_id!r}, can withdraw it", "/by")
    return e.ProposalWithdrawn(issue=cmd.issue, proposal_id=cmd.proposal_id, by=cmd.by, reason=cmd.reason)
