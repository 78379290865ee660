"""Recording commands: the application service between the HTTP API and the log.

One request is one PostgreSQL transaction (service.write.transaction), except
that requests of one command on a long issue stream that arrive together share
one (service.write.group_commit: the same steps, each request decided, refused
or answered on its own):

1. claim the Idempotency-Key, if any (service.write.idempotency), and replay a stored
   answer instead of deciding again;
2. load the state of every stream the commands touch (service.write.working_set);
3. `domain.decide.decide` each command in order against that working set, so that a
   batch sees its own earlier commands (service.write.deciding);
4. append all new events in ONE `EventStore.append`, with the version of every
   written stream as read in step 2, so a concurrent writer makes it fail with
   ConcurrencyError rather than interleave. After a lost race steps 2-4 are
   retried on fresh state, holding the written streams' heads, each retry in a
   savepoint (the first attempt needs none: when it loses, the transaction is
   rolled back and begun again, the key still claimed);
5. store the answer under the Idempotency-Key, and commit everything at once.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from domain.decide import CommandMeta, open_negotiation
from service import tracing
from service.store.event_store import AppendResult, ConcurrencyError, EventStore
from service.write.aggregate_cache import AggregateCache, Turns
from service.write.deciding import decide_request, item_id, named_issues
from service.write.encoding import outcome_of, pending_event
from service.write.group_commit import GroupCommit, grouped_stream
from service.write.requests import (
    OpenRequest,
    Outcome,
    RecordRequest,
    SlugTaken,
)
from service.write.transaction import (
    RaceStats,
    Restart,
    in_transaction,
    until_not_overtaken,
)
from service.write.working_set import WorkingSet


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
        # Commands on one long issue stream, recorded together (service.write.group_commit).
        self.groups = GroupCommit(store, cache, self.stats, lambda: self.receipts) if cache is not None else None

    # -- opening a negotiation ------------------------------------------------------

    async def open(self, request: OpenRequest) -> Outcome:
        return await in_transaction(self.store, request.idempotency, lambda conn: self._open(conn, request))

    async def _open(self, conn: asyncpg.Connection, request: OpenRequest) -> Outcome:
        restoring = request.restoring
        negotiation_id = restoring.hashed.stream_id if restoring else uuid.uuid4()
        meta = CommandMeta(
            recorded_by=request.recorded_by, recorded_at=await self.store.clock(conn), item_id=item_id(request.command)
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
        grouped = grouped_stream(request, self.cache)
        if grouped is not None and self.groups is not None:
            return await self.groups.record(grouped, request)
        committed: list[tuple[WorkingSet, AppendResult]] = []
        # Requests on one issue take turns on its cached state (aggregate_cache.Turns).
        turns = self.cache.turns() if self.cache is not None else None

        lost: list[Restart] = []

        async def work(conn: asyncpg.Connection) -> Outcome:
            async def attempt(number: int, written: set[uuid.UUID]) -> tuple[WorkingSet, AppendResult]:
                # A retry starts from the cache too: a failed attempt put back what
                # it had not evolved (service.write.working_set.put_back_untouched).
                return await self._attempt(conn, request, self.cache, written, turns)

            # The first attempt without a savepoint (nothing before it to keep): if it
            # loses, the transaction begins again and the retries go on in savepoints.
            after = lost[-1] if lost else None
            try:
                working, result = await until_not_overtaken(
                    conn, self.store, attempt, self.stats, bare_first=True, after=after
                )
            except Restart as restart:
                lost.append(restart)
                raise
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
        # One round trip: the negotiation, the issues its commands name, and the
        # clock (PostgreSQL's, the same for the whole transaction).
        await working.load_negotiation(named_issues(request.commands))
        recorded_at = working.clock
        # The last command's records evolve the states only once appended: an
        # attempt that loses the race leaves them as committed (put back for the retry).
        pending, deferred = await decide_request(working, request, recorded_at, written)
        expected = {stream_id: working.read_versions[stream_id] for stream_id in written}
        result = await self.store.append(pending, expected, conn=working.conn, wake_readers=False)
        for record, stream_type in deferred:
            working.evolve(record, stream_type)
        return working, result


__all__ = ["CommandService", "pending_event"]
