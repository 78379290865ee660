"""Group commit on one long issue stream: the commands that arrive while the
stream's turn is held (service.write.aggregate_cache.Turns) are recorded
together, in ONE transaction, by the request that leads the next batch.

Without it the 8th of 8 concurrent commands on one long issue waits for 7
transactions, one after the other (bench.contention). With it, the leader
(the steps of one batch: service.write.batch)

1. takes the stream's turn on a connection of its own, loads the working set
   (the cached fold plus the events after it), and only then takes every
   request queued by that moment, and again each time it has decided those,
   until none has arrived meanwhile (or 64 are in it);
2. claims each request's Idempotency-Key (a stored answer is replayed, a key in
   use or reused refused, for that request alone);
3. decides each request in arrival order against the working set left by the
   ones before it (service.write.deciding: its If-Match compared with the
   versions before it, as if it had run alone right after them). A refused
   request (domain error, precondition, any error of its own) gets its problem;
   the others are decided as if it had not been sent;
4. appends every accepted event in one `EventStore.append` expecting the
   versions read in 1 (a lost race: the whole batch decided again on fresh
   state, as one request is: service.write.transaction.until_not_overtaken),
   stores each accepted request's answer under its key, and commits once;
5. after the commit wakes the readers once and hands each request its own
   outcome: its own events, versions and receipts, a consistency token naming
   its own last event (and the commit's LSN), exactly what it would have been
   answered alone.

Then the first request still queued leads the next batch. A failure of the
batch itself (the database, the commit) is every member's failure: nothing is
acknowledged unless its transaction committed.

Only requests of one command on an issue stream the cache holds as long go
this way (`grouped_stream`); any other request runs its own transaction and
takes the same turn, so the two never work on the cached fold at once. A request
of one command can be refused without undoing anything (its records are
evolved into the working set only once decided), which is what lets a refused
one leave the others' decisions intact.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from domain.decide import target_of
from domain.issue import issue_stream_id
from service.store.event_store import EventStore
from service.write.aggregate_cache import AggregateCache
from service.write.batch import Batch, Member
from service.write.requests import Outcome, RecordRequest
from service.write.transaction import RaceStats

# What a waiting member is told when it is to lead the next batch.
_LEAD = object()


class GroupInterrupted(ConnectionError):
    """The batch's leader was cancelled (the server stopping): whether it committed is unknown."""


def grouped_stream(request: RecordRequest, cache: AggregateCache | None) -> uuid.UUID | None:
    """The long issue stream whose group commit this request joins, or None (it
    runs its own transaction)."""
    if cache is None or request.restoring is not None or len(request.commands) != 1:
        return None
    target = target_of(request.commands[0])
    if not (isinstance(target, tuple) and target[0] == "issue" and isinstance(target[1], str)):
        return None
    stream_id = issue_stream_id(request.negotiation_id, target[1])
    return stream_id if cache.is_long(stream_id) else None


@dataclass(eq=False)
class _Queue:
    """A stream's requests waiting for the next batch, and whether one leads a batch now."""

    waiting: list[Member] = field(default_factory=list)
    leading: bool = False


class GroupCommit:
    def __init__(
        self, store: EventStore, cache: AggregateCache, stats: RaceStats, receipts: Callable[[], Any]
    ) -> None:
        self.store = store
        self.cache = cache
        self.stats = stats
        # The ledger key that signs receipts, as the command service holds it now (None: none).
        self.receipts = receipts
        self._queues: dict[uuid.UUID, _Queue] = {}
        # Batches closed, and the requests they held, in this process (tests
        # of concurrency show with them that they met group commit).
        self.batches = 0
        self.requests = 0

    def waiting(self, stream_id: uuid.UUID) -> int:
        """Requests queued on this stream for the next batch (its leader not counted)."""
        queue = self._queues.get(stream_id)
        return len(queue.waiting) if queue is not None else 0

    def leading(self, stream_id: uuid.UUID) -> bool:
        """Whether a request leads a batch on this stream now."""
        queue = self._queues.get(stream_id)
        return queue is not None and queue.leading

    async def record(self, stream_id: uuid.UUID, request: RecordRequest) -> Outcome:
        member = Member(request, asyncio.get_running_loop().create_future())
        queue = self._queues.setdefault(stream_id, _Queue())
        if queue.leading:
            queue.waiting.append(member)
            try:
                signal = await member.future
            except asyncio.CancelledError:
                if member in queue.waiting:
                    queue.waiting.remove(member)
                elif member.future.done() and not member.future.cancelled() and member.future.result() is _LEAD:
                    self._hand_off(stream_id, queue)  # told to lead, and gone: the next one leads
                raise
            if signal is not _LEAD:
                return signal
        else:
            queue.leading = True
        handed = [False]

        def hand_off() -> None:
            if not handed[0]:
                handed[0] = True
                self._hand_off(stream_id, queue)

        try:
            return await self._lead(stream_id, queue, member, hand_off)
        finally:
            hand_off()

    def _hand_off(self, stream_id: uuid.UUID, queue: _Queue) -> None:
        while queue.waiting:
            member = queue.waiting.pop(0)
            if not member.future.done():  # a cancelled one is done
                member.future.set_result(_LEAD)
                return
        queue.leading = False
        if self._queues.get(stream_id) is queue:
            del self._queues[stream_id]

    async def _lead(
        self, stream_id: uuid.UUID, queue: _Queue, me: Member, hand_off: Callable[[], None]
    ) -> Outcome:
        batch = Batch([me], lambda room: self._close(queue, room))
        try:
            outcomes = await batch.record(self.store, self.cache, self.stats, self.receipts(), stream_id, hand_off)
        except BaseException as error:
            self._count(batch)
            failure = error if isinstance(error, Exception) else GroupInterrupted(
                "the command was interrupted while being recorded; retry it (with an Idempotency-Key to be safe)"
            )
            for member in batch.members[1:]:
                if not member.future.done():
                    member.future.set_exception(failure)
            raise
        self._count(batch)
        for member in batch.members[1:]:
            if not member.future.done():
                answer = outcomes[member]
                if isinstance(answer, Exception):
                    member.future.set_exception(answer)
                else:
                    member.future.set_result(answer)
        answer = outcomes[me]
        if isinstance(answer, Exception):
            raise answer
        return answer

    @staticmethod
    def _close(queue: _Queue, room: int) -> list[Member]:
        joining: list[Member] = []
        while queue.waiting and len(joining) < room:
            member = queue.waiting.pop(0)
            if not member.future.done():  # a cancelled one is done
                joining.append(member)
        return joining

    def _count(self, batch: Batch) -> None:
        self.batches += 1
        self.requests += len(batch.members)
