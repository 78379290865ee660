"""One group commit's batch (service.write.group_commit): its requests, in arrival
order, recorded in ONE transaction on the leader's connection. The steps are
those of one request's transaction (service.write.transaction), for each member
on its own where a request's answer depends on it: its Idempotency-Key, its
decision (refused or accepted, against the working set the members before it
left), its stored answer, its events, receipts and consistency token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from domain.decide import target_of
from domain.records import Recorded
from service.store.event_store import AppendResult, ConcurrencyError, EventStore, PendingEvent
from service.write import idempotency
from service.write.aggregate_cache import AggregateCache
from service.write.deciding import decide_request
from service.write.encoding import outcome_of
from service.write.requests import Idempotency, Outcome, RecordRequest
from service.write.transaction import RaceStats, release_key, remember_answer, stored_answer, until_not_overtaken, with_commit_lsn
from service.write.working_set import WorkingSet

# Requests in one batch at most (one transaction, one append).
MAX_BATCH = 64

# Errors of the transaction itself, not of one request's decision: the batch fails.
_BATCH_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)


@dataclass(eq=False)
class Member:
    """A request in a group commit, and where its leader puts its answer."""

    request: RecordRequest
    future: asyncio.Future[Any]
    # Settled before any decision: a replayed answer, or its key's refusal.
    answer: Outcome | Exception | None = None


@dataclass(eq=False)
class _Decided:
    """One attempt's decisions: every accepted member's event ids, every refused one's error."""

    working: WorkingSet
    result: AppendResult | None = None
    accepted: dict[Member, list[uuid.UUID]] = field(default_factory=dict)
    refused: dict[Member, Exception] = field(default_factory=dict)


@dataclass(eq=False)
class Batch:
    """The leader first; `close(room)` gives up to `room` requests queued meanwhile
    (called on the first attempt once the working set is loaded, and again each
    time its members have all been decided, until it gives none)."""

    members: list[Member]
    close: Callable[[int], list[Member]]
    # The keys claimed on the leader's connection (released after the answers),
    # and how many members have had theirs claimed.
    claimed: list[Idempotency] = field(default_factory=list)
    claimed_upto: int = 0
    closed: bool = False

    async def record(
        self,
        store: EventStore,
        cache: AggregateCache,
        stats: RaceStats,
        receipts: Any,
        stream_id: uuid.UUID,
        committed: Callable[[], None],
    ) -> dict[Member, Outcome | Exception]:
        """Every member's answer (an Outcome, or the error it is refused with);
        raises when the batch itself fails. `committed()` is called once the
        transaction has committed and the stream's turn is free again."""
        turns = cache.turns()
        async with store.pool.acquire() as conn:
            try:
                try:
                    async with conn.transaction():
                        await turns.enter(stream_id)

                        async def attempt(number: int, written: set[uuid.UUID]) -> _Decided:
                            working = WorkingSet(store, conn, self.members[0].request.negotiation_id, cache, turns)
                            try:
                                return await self._decide(store, working, written)
                            except (ConcurrencyError, asyncpg.DeadlockDetectedError):
                                working.put_back_untouched()
                                raise

                        decided = await until_not_overtaken(conn, store, attempt, stats)
                        outcomes = self._outcomes(decided, receipts)
                        for member, outcome in outcomes.items():
                            key = member.request.idempotency
                            if key is not None and isinstance(outcome, Outcome) and not outcome.replayed:
                                await remember_answer(conn, key, outcome)
                    # Committed: the evolved states are folds of the committed streams.
                    if decided.result is not None:
                        decided.working.keep(cache, decided.result)
                finally:
                    turns.release()
                committed()
                if decided.result is not None:
                    await self._after_commit(store, conn, outcomes)
                return outcomes
            finally:
                for key in self.claimed:
                    await release_key(conn, key)

    async def _decide(self, store: EventStore, working: WorkingSet, written: set[uuid.UUID]) -> _Decided:
        conn = working.conn
        await working.load_negotiation()
        recorded_at = working.clock
        target = target_of(self.members[0].request.commands[0])
        await working.issue(target[1])  # type: ignore[index,arg-type]  (the stream's fold, its turn held)
        return await self._decide_members(store, working, recorded_at, written)

    async def _joining(self, conn: asyncpg.Connection) -> None:
        """On the first attempt, the requests queued by now join the batch (their
        keys claimed); from the first retry on, the batch is what it was."""
        if not self.closed:
            self.members += self.close(MAX_BATCH - len(self.members))
            await self._claim(conn, self.members[self.claimed_upto :])
            self.claimed_upto = len(self.members)

    async def _decide_members(
        self, store: EventStore, working: WorkingSet, recorded_at: dt.datetime, written: set[uuid.UUID]
    ) -> _Decided:
        decided = _Decided(working)
        pending: list[PendingEvent] = []
        held_back: list[tuple[Recorded, str]] = []
        # The batch closes only now, after the round trips of loading the working set.
        await self._joining(working.conn)
        index = 0
        while True:
            if index == len(self.members):
                # The batch stays open while its members are decided: whatever
                # arrived meanwhile joins it, until nothing has (or it is full).
                before = len(self.members)
                await self._joining(working.conn)
                if len(self.members) == before:
                    self.closed = True
                    break
            member = self.members[index]
            index += 1
            if member.answer is not None:
                continue
            # The previous request's records, now that this one is decided after it.
            for record, stream_type in held_back:
                working.evolve(record, stream_type)
            held_back = []
            versions = dict(working.versions)
            mine: set[uuid.UUID] = set()
            try:
                events, deferred = await decide_request(
                    working, member.request, recorded_at, mine, before=working.versions
                )
                if not events:
                    raise ValueError("nothing to append")  # as EventStore.append says to one request
            except _BATCH_ERRORS:
                raise
            except Exception as error:  # noqa: BLE001  (this request's refusal, as it would be alone)
                # Its versions go back: nothing of it was evolved (one command's records are deferred).
                working.versions.clear()
                working.versions.update(versions)
                decided.refused[member] = error
                continue
            held_back = deferred
            pending += events
            written |= mine
            decided.accepted[member] = [event.id for event in events]
        if pending:
            expected = {stream: working.read_versions[stream] for stream in written}
            decided.result = await store.append(pending, expected, conn=working.conn, wake_readers=False)
            for record, stream_type in held_back:
                working.evolve(record, stream_type)
        return decided

    async def _claim(self, conn: asyncpg.Connection, members: list[Member]) -> None:
        """Each member's Idempotency-Key claimed on the leader's connection. The
        advisory lock is re-entrant within one session, so a key twice in one
        batch is refused for the second as in use, as it would be from another
        connection."""
        for member in members:
            key = member.request.idempotency
            if key is None:
                continue
            if any((key.scope, key.key) == (held.scope, held.key) for held in self.claimed):
                member.answer = idempotency.IdempotencyKeyInUse(key.key)
                continue
            self.claimed.append(key)
            try:
                member.answer = await stored_answer(conn, key)
            except (idempotency.IdempotencyKeyInUse, idempotency.IdempotencyKeyReused) as refusal:
                member.answer = refusal

    def _outcomes(self, decided: _Decided, receipts: Any) -> dict[Member, Outcome | Exception]:
        by_id = {event.id: event for event in decided.result.events} if decided.result is not None else {}
        outcomes: dict[Member, Outcome | Exception] = {}
        for member in self.members:
            if member.answer is not None:
                outcomes[member] = member.answer
            elif member in decided.refused:
                outcomes[member] = decided.refused[member]
            else:
                events = [by_id[event_id] for event_id in decided.accepted[member]]
                own = AppendResult(events=events, checkpoint=events[-1].checkpoint)
                outcomes[member] = outcome_of(member.request.negotiation_id, own, receipts=receipts)
        return outcomes

    async def _after_commit(
        self, store: EventStore, conn: asyncpg.Connection, outcomes: dict[Member, Outcome | Exception]
    ) -> None:
        # As service.write.transaction does for one request: one wake-up, its LSN
        # in every answer's token, and every stored answer made the one sent.
        lsn = await store.wake_readers(conn)
        if lsn is None:
            return
        for member in self.members:
            outcome = outcomes[member]
            if not isinstance(outcome, Outcome) or outcome.replayed or not outcome.events_written:
                continue
            outcomes[member] = await with_commit_lsn(conn, member.request.idempotency, outcome, lsn)
