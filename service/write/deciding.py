"""Deciding one request's commands against a working set (service.write.working_set):
each command in order, so that a batch sees its own earlier commands, the
request's If-Match checked first, and its new events as the store records them.

Used by a request's own transaction (service.write.commands) and by a group
commit, which decides several requests one after the other against one working
set (service.write.group_commit).
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Mapping, Sequence

import msgspec

from domain import errors
from domain.commands import CommonFields, OpenNegotiation, RetractRecord, command_type
from domain.decide import AGREEMENT_TYPES, CommandMeta, decide, recorded, target_of
from domain.issue import issue_stream_id
from domain.records import Recorded
from service import tracing
from service.store.event_store import PendingEvent
from service.write.encoding import pending_event
from service.write.requests import PreconditionNotApplicable, RecordRequest
from service.write.working_set import WorkingSet


def named_issues(commands: Sequence[CommonFields]) -> list[str]:
    """The keys of the issues these commands name as their target, once each (read
    with the negotiation: one round trip for the common command)."""
    keys = [target[1] for target in map(target_of, commands) if target != "negotiation" and target[0] == "issue"]
    return list(dict.fromkeys(key for key in keys if key))


def item_id(command: CommonFields | OpenNegotiation) -> str:
    # Used by the domain only when the command names no item id of its own:
    # "proposal-3f9c2a1b" reads well in URLs and timelines.
    kind = command_type(command) if isinstance(command, CommonFields) else "negotiation"
    return f"{kind.split('.')[0]}-{secrets.token_hex(4)}"


async def decide_request(
    working: WorkingSet,
    request: RecordRequest,
    recorded_at: dt.datetime,
    written: set[uuid.UUID],
    before: Mapping[uuid.UUID, int] | None = None,
) -> tuple[list[PendingEvent], list[tuple[Recorded, str]]]:
    """The request's new events, and the records of its LAST command, which the
    caller evolves the working set with once it wants them there (after the
    append, so that an attempt that loses a race leaves them as committed).
    Records of earlier commands are evolved at once. Fills `written` with the
    streams the request writes. `before`: the stream versions its If-Match is
    compared with, the versions before this request (default: as read from the
    store)."""
    negotiation_id, restoring = request.negotiation_id, request.restoring
    before = working.read_versions if before is None else before
    pending: list[PendingEvent] = []
    restored: set[uuid.UUID] = set()  # the exported events re-recorded (an import)
    deferred: list[tuple[Recorded, str]] = []
    last = len(request.commands) - 1
    if request.if_match is not None:
        # Preconditions come before the commands' own rules (RFC 9110 13.2.2).
        await _check_preconditions(working, request, before)
    for index, command, copy in await _with_copies(working, request):
        try:
            issue = await working.issue_for(command)
            if request.if_match is not None and not request.if_match.streams and not copy:
                # Preconditions come before the command's own rules (RFC 9110 13.2.2).
                failed = working.precondition_failure(command, issue, request.if_match, before)
                if failed is not None:
                    raise failed
            meta = CommandMeta(recorded_by=request.recorded_by, recorded_at=recorded_at, item_id=item_id(command))
            issues = await working.all_issues() if command_type(command) in AGREEMENT_TYPES else None
            with tracing.span("parley.decide", {"parley.command": command_type(command), "parley.index": index}):
                decided = decide(
                    command,
                    negotiation=working.negotiation,
                    issue=issue,
                    known_issues=frozenset(working.known_issues),
                    meta=meta,
                    issues=issues,
                )
        except errors.DomainError as error:
            raise error.at(f"/commands/{index}") if request.batch else error
        for event in decided:
            stream_id = negotiation_id if event.stream == "negotiation" else issue_stream_id(
                negotiation_id, event.issue_key or ""
            )
            event_id, claim = uuid.uuid4(), None
            if restoring is not None:
                # The exported copy this event re-records (one per covered issue for
                # a multi-issue agreement step): its id, and the source's claim.
                copy = restoring.match(decided, event, stream_id, working.versions.get(stream_id, 0) + 1)
                event_id, claim = copy.hashed.id, copy.claim
                restored.add(event_id)
            version = working.next_version(stream_id)
            record = recorded(event, id=event_id, stream_id=stream_id, version=version, meta=meta)
            if index == last:
                deferred.append((record, event.stream))
            else:
                working.evolve(record, event.stream)
            pending.append(
                pending_event(
                    event, event_id=event_id, stream_id=stream_id, negotiation_id=negotiation_id, meta=meta,
                    import_claim=claim, correlation_id=request.correlation_id,
                )
            )  # fmt: skip
            written.add(stream_id)
    if restoring is not None:
        restoring.all_matched(restored)
    if request.if_match is not None and not request.if_match.streams and len(written) > 1:
        raise PreconditionNotApplicable("If-Match applies to a request that writes to one stream")
    return pending, deferred


async def _with_copies(working: WorkingSet, request: RecordRequest) -> list[tuple[int, CommonFields, bool]]:
    """(index in the request, command, is an added copy): the request's commands,
    each retraction of one copy of a multi-issue agreement step followed by the
    retraction of every other live copy (the same fact, stored on each covered
    issue: retracting it is retracting all of them, in the same write). An
    import adds the retractions of the copies the exported write retracted, no
    other (an export of a log from before this rule retracted one copy alone)."""
    restoring = request.restoring
    expanded: list[tuple[int, CommonFields, bool]] = []
    for index, command in enumerate(request.commands):
        expanded.append((index, command, False))
        if isinstance(command, RetractRecord):
            copies = await working.store.live_copies(command.event_id, working.negotiation_id, conn=working.conn)
            if restoring is not None:
                named = restoring.retracted()
                copies = [copy_id for copy_id in copies if copy_id in named]
            for copy_id in copies:
                expanded.append(
                    (index, msgspec.structs.replace(command, event_id=copy_id, expected_version=None), True)
                )
    return expanded


async def _check_preconditions(
    working: WorkingSet, request: RecordRequest, before: Mapping[uuid.UUID, int]
) -> None:
    """ETags name their streams: checked here, whatever the request writes. A bare
    version (`"7"`, `*`) names the one stream the request is about, so a request
    about several streams is refused with it (400) before any version is compared,
    rather than answered with a 412 about whichever stream came first."""
    if_match = request.if_match
    assert if_match is not None
    if if_match.streams:
        failed = await working.named_precondition_failure(if_match, before)
        if failed is not None:
            raise failed
        return
    targets = set()
    for command in request.commands:
        try:
            target = working.target_stream(command, await working.issue_for(command))
        except errors.DomainError:
            return  # refused in the loop, with its pointer
        if target is not None:
            targets.add(target)
    if len(targets) > 1:
        raise PreconditionNotApplicable("If-Match with a bare version applies to a request about one stream")
