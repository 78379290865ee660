"""Who is at the table: joining and leaving."""

from __future__ import annotations

from domain import commands as c
from domain import errors
from domain import events as e
from domain.context import Context, rule


@rule(c.JoinParty)
def party_joined(cmd: c.JoinParty, ctx: Context) -> e.PartyJoined:
    current = ctx.negotiation.parties.get(cmd.party.code)
    # v2: a party already in the negotiation may join in another role (a host
    # that is also a guarantor); joining again in a role it holds is refused.
    if current is not None and current.active and cmd.role in current.roles:
        raise errors.PartyAlreadyJoined(
            f"party {cmd.party.code!r} is already in the negotiation as {', '.join(current.roles)}", "/party/code"
        )
    return e.PartyJoined(party=e.PartyRef(code=cmd.party.code, name=cmd.party.name), role=cmd.role)


@rule(c.LeaveParty)
def party_left(cmd: c.LeaveParty, ctx: Context) -> e.PartyLeft:
    ctx.require_party(cmd.party, "/party")
    current = ctx.negotiation.parties[cmd.party]
    if not current.active:
        raise errors.PartyNotActive(f"party {cmd.party!r} has already left", "/party")
    if cmd.role is not None and cmd.role not in current.roles:
        raise errors.PartyNotActive(f"party {cmd.party!r} is not in the negotiation as {cmd.role}", "/role")
    return e.PartyLeft(party=cmd.party, role=cmd.role, reason=cmd.reason)
