"""Who is at the table: joining and leaving."""

from __future__ import annotations

from domain import commands as c
from domain import errors
from domain import events as e
from domain.context import Context, rule


@rule(c.JoinParty)
def party_joined(cmd: c.JoinParty, ctx: Context) -> e.PartyJoined:
    current = ctx.negotiation.parties.get(cmd.party.code)
    if current is not None and current.active:
        raise errors.PartyAlreadyJoined(
            f"party {cmd.party.code!r} is already in the negotiation as {current.role}", "/party/code"
        )
    return e.PartyJoined(party=e.PartyRef(code=cmd.party.code, name=cmd.party.name), role=cmd.role)


@rule(c.LeaveParty)
def party_left(cmd: c.LeaveParty, ctx: Context) -> e.PartyLeft:
    ctx.require_party(cmd.party, "/party")
    if not ctx.negotiation.parties[cmd.party].active:
        raise errors.PartyNotActive(f"party {cmd.party!r} has already left", "/party")
    return e.PartyLeft(party=cmd.party, role=cmd.role, reason=cmd.reason)
