"""Rounds of talks: scheduled, held, cancelled."""

from __future__ import annotations

from domain import commands as c
from domain import errors
from domain import events as e
from domain.context import Context, check_range, rule, when


def _round_details(cmd: c.ScheduleRound, ctx: Context, round_id: str, *, new: bool) -> dict:
    if new:
        # A round nobody scheduled must say where and at what level it met.
        if cmd.venue is None:
            raise errors.MissingDetail("venue is required for a round not scheduled before", "/venue")
        if cmd.level is None:
            raise errors.MissingDetail("level is required for a round not scheduled before", "/level")
    ctx.require_parties(cmd.participants, "/participants")
    ctx.require_party(cmd.mediator, "/mediator")
    for i, key in enumerate(cmd.issues):
        ctx.require_issue(key, f"/issues/{i}")
    ends_on = when(cmd.ends_on, "/ends_on")
    check_range(when(cmd.occurred_on, "/occurred_on"), ends_on, "/ends_on")
    return dict(
        ends_on=ends_on,
        round_id=round_id,
        venue=cmd.venue,
        country=cmd.country,
        level=cmd.level,
        format=cmd.format,
        participants=list(cmd.participants),
        mediator=cmd.mediator,
        issues=list(cmd.issues),
        summary=cmd.summary,
    )


@rule(c.ScheduleRound)
def round_scheduled(cmd: c.ScheduleRound, ctx: Context) -> e.RoundScheduled:
    round_id = ctx.new_id(cmd.round_id, "/round_id")
    if round_id in ctx.negotiation.rounds:
        raise errors.ItemIdReused(f"round {round_id!r} already exists", "/round_id")
    return e.RoundScheduled(**_round_details(cmd, ctx, round_id, new=True))


@rule(c.HoldRound)
def round_held(cmd: c.HoldRound, ctx: Context) -> e.RoundHeld:
    round_id = ctx.new_id(cmd.round_id, "/round_id")
    known = ctx.negotiation.rounds.get(round_id)
    if known is not None and known.state != "scheduled":
        raise errors.InvalidTransition(f"round {round_id!r} is {known.state}, not scheduled", "/round_id")
    return e.RoundHeld(**_round_details(cmd, ctx, round_id, new=known is None))


@rule(c.CancelRound)
def round_cancelled(cmd: c.CancelRound, ctx: Context) -> e.RoundCancelled:
    known = ctx.negotiation.rounds.get(cmd.round_id)
    if known is None:
        raise errors.UnknownRound(f"round {cmd.round_id!r} does not exist", "/round_id")
    if known.state != "scheduled":
        raise errors.InvalidTransition(f"round {cmd.round_id!r} is {known.state}; only a scheduled round can be cancelled", "/round_id")
    return e.RoundCancelled(round_id=cmd.round_id, reason=cmd.reason)
