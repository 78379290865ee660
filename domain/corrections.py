"""Corrections of the record: retractions and disputes.

Both act on the stream of the fact they name (the service looks the event up
by id and passes that stream's state). A retraction removes the fact's effect
on statuses and keeps it in history; a dispute keeps the effect and flags it.
"""

from __future__ import annotations

from domain import commands as c
from domain import errors
from domain import events as e
from domain.context import Context, rule
from domain.stream_tally import EventRef, StreamTally
from domain.timeline import article

# Retracting these would leave a stream without its subject; drop the issue
# (issue.dropped) or correct the details with a new fact instead.
UNRETRACTABLE = frozenset({"negotiation.opened", "issue.raised", "record.retracted"})
UNDISPUTABLE = frozenset({"record.retracted", "claim.disputed"})


def _stream(ctx: Context) -> StreamTally:
    return ctx.issue if ctx.issue is not None else ctx.negotiation


def _target(event_id: str, ctx: Context) -> EventRef:
    ref = _stream(ctx).index.get(event_id)
    if ref is None:
        raise errors.UnknownEvent(f"no event {event_id} in this stream", "/event_id")
    if ref.retracted:
        raise errors.AlreadyRetracted(f"event {event_id} has already been retracted", "/event_id")
    return ref


@rule(c.RetractRecord)
def record_retracted(cmd: c.RetractRecord, ctx: Context) -> e.RecordRetracted:
    event_id = str(cmd.event_id)
    ref = _target(event_id, ctx)
    if ref.type in UNRETRACTABLE:
        raise errors.NotRetractable(f"{article(ref.type)} {ref.type} event cannot be retracted", "/event_id")
    tally = _stream(ctx)
    # Facts that build on what this one introduced (an answer to a retracted
    # proposal) would be left dangling: they must be retracted first.
    subject = tally.about.get(event_id)
    if subject is not None and tally.introduced.get(subject) == event_id:
        dependants = [other for other in tally.mentions.get(subject, []) if other != event_id]
        if dependants:
            raise errors.RetractionBlocked(
                f"later facts depend on event {event_id}; retract them first: {', '.join(dependants)}",
                "/event_id",
                dependants=dependants,
            )
    return e.RecordRetracted(event_id=cmd.event_id, reason=cmd.reason)


@rule(c.DisputeClaim)
def claim_disputed(cmd: c.DisputeClaim, ctx: Context) -> e.ClaimDisputed:
    event_id = str(cmd.event_id)
    ref = _target(event_id, ctx)
    if ref.type in UNDISPUTABLE:
        raise errors.NotDisputable(f"{article(ref.type)} {ref.type} event is a correction, not a claim", "/event_id")
    ctx.require_party(cmd.by, "/by")
    if cmd.by in ref.claimed_by:
        raise errors.OwnClaim(f"{cmd.by} is among those claiming event {event_id}; retract it instead", "/by")
    if cmd.by in ref.disputed_by:
        raise errors.AlreadyDisputed(f"{cmd.by} already disputes event {event_id}", "/by")
    return e.ClaimDisputed(event_id=cmd.event_id, by=cmd.by, summary=cmd.summary)
