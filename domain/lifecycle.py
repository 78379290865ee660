"""A negotiation's lifecycle: active, suspended, concluded (and, v2, reopened)."""

from __future__ import annotations

from domain import commands as c
from domain import errors, world_time
from domain import events as e
from domain.context import Context, rule


def _not_concluded(ctx: Context) -> None:
    # Even a late report of an earlier suspension would read as if the
    # concluded negotiation were suspended again; the conclusion is final.
    if ctx.negotiation.status == "concluded":
        raise errors.NegotiationConcluded(f"the negotiation was concluded on {ctx.negotiation.concluded_on}")


@rule(c.SuspendNegotiation)
def suspended(cmd: c.SuspendNegotiation, ctx: Context) -> e.NegotiationSuspended:
    _not_concluded(ctx)
    if ctx.negotiation.status == "suspended":
        raise errors.NegotiationSuspended("the negotiation is already suspended")
    return e.NegotiationSuspended(reason=cmd.reason)


@rule(c.ResumeNegotiation)
def resumed(cmd: c.ResumeNegotiation, ctx: Context) -> e.NegotiationResumed:
    _not_concluded(ctx)
    if ctx.negotiation.status != "suspended":
        raise errors.NegotiationNotSuspended(f"the negotiation is {ctx.negotiation.status}, not suspended")
    return e.NegotiationResumed(reason=cmd.reason)


@rule(c.ConcludeNegotiation)
def concluded(cmd: c.ConcludeNegotiation, ctx: Context) -> e.NegotiationConcluded:
    if ctx.negotiation.status == "concluded":
        raise errors.NegotiationConcluded(f"the negotiation was concluded on {ctx.negotiation.concluded_on}")
    return e.NegotiationConcluded(outcome=cmd.outcome)


@rule(c.ReopenNegotiation)
def reopened(cmd: c.ReopenNegotiation, ctx: Context) -> e.NegotiationReopened:
    n = ctx.negotiation
    if n.status != "concluded":
        raise errors.NegotiationNotConcluded(f"the negotiation is {n.status}; only a concluded one can be reopened")
    occurred_on = world_time.normalise(cmd.occurred_on)
    if n.concluded_on and world_time.sort_key(occurred_on) < world_time.sort_key(n.concluded_on):
        raise errors.InvalidDateRange(
            f"the negotiation was concluded on {n.concluded_on}; it cannot be reopened before that", "/occurred_on"
        )
    return e.NegotiationReopened(reason=cmd.reason)
