"""Recording commands: the application service between the HTTP API and the log.

One request is one PostgreSQL transaction (service.write.transaction):

1. claim the Idempotency-Key, if any (service.write.idempotency), and replay a stored
   answer instead of deciding again;
2. load the state of every stream the commands touch (service.write.working_set);
3. `domain.decide.decide` each command in order against that working set, so that a
   batch sees its own earlier commands;
4. append all new events in ONE `EventStore.append`, with the version of every
   written stream as read in step 2, so a concurrent writer makes it fail with
   ConcurrencyError rather than interleave. Steps 2-4 run in a savepoint and are
   retried on fresh state, holding the written streams' heads after a lost race;
5. store the answer under the Idempotency-Key, and commit everything at once.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import asyncpg
import msgspec

from domain import errors
from domain.commands import CommonFields, OpenNegotiation, RetractRecord, command_type
from domain.decide import AGREEMENT_TYPES, CommandMeta, decide, open_negotiation, recorded
from domain.issue import issue_stream_id
from service import tracing
from service.store.event_store import AppendResult, ConcurrencyError, EventStore, PendingEvent
from domain.records import Recorded
from service.write.aggregate_cache import AggregateCache, Turns
from service.write.requests import (
    OpenRequest,
    Outcome,
    PreconditionNotApplicable,
    RecordRequest,
    SlugTaken,
)
from service.write.encoding import outcome_of, pending_event
from service.write.transaction import RaceStats, in_transaction, until_not_overtaken
from service.write.working_set import WorkingSet


def _item_id(command: CommonFields | OpenNegotiation) -> str:
    # Used by the domain only when the command names no item id of its own:
    # "proposal-3f9c2a1b" reads well in URLs and timelines.
    kind = command_type(command) if isinstance(command, CommonFields) else "negotiation"
    return f"{kind.split('.')[0]}-{secrets.token_hex(4)}"


class CommandService:
    def __init__(self, store: EventStore, cache: AggregateCache | None = None, receipts: Any = None) -> None:
        self.store = store
        # The ledger key that signs each event's receipt (None: no receipts).
        self.receipts = receipts
        self.pool = store.pool
        # Folded aggregates kept between requests (service.write.aggregate_cache); per process.
        self.cache = cache
        # Lost races retried, in this process (for metrics).
        self.stats = RaceStats()

    # -- opening a negotiation ------------------------------------------------------

    async def open(self, request: OpenRequest) -> Outcome:
        return await in_transaction(self.store, request.idempotency, lambda conn: self._open(conn, request))

    async def _open(self, conn: asyncpg.Connection, request: OpenRequest) -> Outcome:
        restoring = request.restoring
        negotiation_id = restoring.hashed.stream_id if restoring else uuid.uuid4()
        meta = CommandMeta(
            recorded_by=request.recorded_by, recorded_at=await self.store.clock(conn), item_id=_item_id(request.command)
        )
        with tracing.span("parley.decide", {"parley.command": "negotiation.open", "parley.index": 0}):
            decided = open_negotiation(request.command, meta)
        if restoring is not None:
            restoring.check(decided, negotiation_id, 1)
        [opened] = decided
        slug = opened.data.slug  # type: ignore[attr-defined]
        reserved = await conn.fetchval(
            """
            INSERT INTO negotiation_slugs (slug, negotiation_id) VALUES ($1, $2)
            ON CONFLICT (slug) DO NOTHING RETURNING slug
            """,
            slug,
            negotiation_id,
        )
        if reserved is None:
            raise SlugTaken(slug)
        pending = pending_event(
            opened,
            event_id=restoring.event_id if restoring else uuid.uuid4(),
            stream_id=negotiation_id,
            negotiation_id=negotiation_id,
            meta=meta,
            import_claim=restoring.claim if restoring else None,
            correlation_id=request.correlation_id,
        )
        result = await self.store.append([pending], {negotiation_id: 0}, conn=conn, wake_readers=False)
        return outcome_of(negotiation_id, result, f"/negotiations/{negotiation_id}", self.receipts)

    # -- recording commands -------------------------------------------------------------

    async def record(self, request: RecordRequest) -> Outcome:
        """Record the request's commands atomically on its negotiation (all or nothing)."""
        committed: list[tuple[WorkingSet, AppendResult]] = []
        # Requests on one issue take turns on its cached state (aggregate_cache.Turns).
        turns = self.cache.turns() if self.cache is not None else None

        async def work(conn: asyncpg.Connection) -> Outcome:
            async def attempt(number: int, written: set[uuid.UUID]) -> tuple[WorkingSet, AppendResult]:
                # A retry starts from the cache too: a failed attempt put back what
                # it had not evolved (service.write.working_set.put_back_untouched).
                return await self._attempt(conn, request, self.cache, written, turns)

            working, result = await until_not_overtaken(conn, self.store, attempt, self.stats)
            committed.append((working, result))
            return outcome_of(request.negotiation_id, result, receipts=self.receipts)

        try:
            outcome = await in_transaction(self.store, request.idempotency, work)
            if committed and not outcome.replayed:
                # Committed: the evolved states are folds of the committed streams.
                working, result = committed[0]
                working.keep(self.cache, result)
        finally:
            if turns is not None:
                turns.release()
        return outcome

    async def _attempt(
        self,
        conn: asyncpg.Connection,
        request: RecordRequest,
        cache: AggregateCache | None,
        written: set[uuid.UUID],
        turns: Turns | None = None,
    ) -> tuple[WorkingSet, AppendResult]:
        """One try at deciding and appending; fills `written` with the streams it
        writes (locked before the next try if this one loses a race). What it took
        from the cache goes back if it fails before evolving it."""
        working = WorkingSet(self.store, conn, request.negotiation_id, cache, turns)
        try:
            return await self._decide_and_append(working, request, written)
        except (ConcurrencyError, asyncpg.DeadlockDetectedError):
            # Lost a race: what it took and had not evolved is still a fold of the
            # committed stream, for the retry. (After any other failure it is
            # dropped, as a request that fails caches nothing.)
            working.put_back_untouched()
            raise

    async def _decide_and_append(
        self, working: WorkingSet, request: RecordRequest, written: set[uuid.UUID]
    ) -> tuple[WorkingSet, AppendResult]:
        conn = working.conn
        negotiation_id, restoring = request.negotiation_id, request.restoring
        await working.load_negotiation()
        # PostgreSQL's clock, the same for the whole transaction (and every attempt).
        recorded_at = await self.store.clock(conn)
        pending: list[PendingEvent] = []
        restored: set[uuid.UUID] = set()  # the exported events re-recorded (an import)
        # The last command's records evolve the states only once appended: an
        # attempt that loses the race leaves them as committed (put back for the retry).
        deferred: list[tuple[Recorded, str]] = []
        last = len(request.commands) - 1
        if request.if_match is not None:
            # Preconditions come before the commands' own rules (RFC 9110 13.2.2).
            await _check_preconditions(working, request)
        for index, command, copy in await _with_copies(working, request):
            try:
                issue = await working.issue_for(command)
                if request.if_match is not None and not request.if_match.streams and not copy:
                    # Preconditions come before the command's own rules (RFC 9110 13.2.2).
                    failed = working.precondition_failure(command, issue, request.if_match)
                    if failed is not None:
                        raise failed
                meta = CommandMeta(recorded_by=request.recorded_by, recorded_at=recorded_at, item_id=_item_id(command))
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
        expected = {stream_id: working.read_versions[stream_id] for stream_id in written}
        result = await self.store.append(pending, expected, conn=conn, wake_readers=False)
        for record, stream_type in deferred:
            working.evolve(record, stream_type)
        return working, result


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


async def _check_preconditions(working: WorkingSet, request: RecordRequest) -> None:
    """ETags name their streams: checked here, whatever the request writes. A bare
    version (`"7"`, `*`) names the one stream the request is about, so a request
    about several streams is refused with it (400) before any version is compared,
    rather than answered with a 412 about whichever stream came first."""
    if_match = request.if_match
    assert if_match is not None
    if if_match.streams:
        failed = await working.named_precondition_failure(if_match)
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


__all__ = ["CommandService", "pending_event"]
