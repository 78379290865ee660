"""An in-process cache of folded write-side aggregates, for the command path.

It holds, per stream id, ``(version, aggregate)``: the fold of the stream's
committed events 1..version. It is a cache of a pure function of the committed
stream, not state: a request that finds an entry still reads every event after
``version`` from PostgreSQL, inside its own transaction, and folds them in, so it
decides on exactly the committed stream, whatever other processes (or other
instances in this one) have written meanwhile. Several API processes each keep
their own cache and stay correct; a process without one only reads more.

Rules that keep it so (service.write.commands, service.write.working_set):

- a request TAKES an entry out (no two requests ever share, or evolve, one
  object); a request that finds nothing reads the whole stream;
- requests on one LONG issue stream (at least `turns_from` events when last
  cached) take TURNS in this process (`Turns`): the second waits for the first
  to have committed and put the entry back, then takes it and reads only the
  new events, instead of finding nothing, refolding the whole stream (seconds at
  100,000 events), and then losing the race for the head anyway. Requests of
  one command that arrive while the turn is held are recorded together, in the
  next turn, by one transaction (service.write.group_commit). On a short
  stream a refold costs less than the wait, and requests race as before: the
  database's head lock decides and the loser retries (service.write.transaction);
- only after the request's transaction has committed does it put the evolved
  aggregate back, under the version its own events were committed at;
- an attempt that fails (domain error, lost race, rollback) puts back what it
  took if it had not evolved it (it then holds only committed events, at the
  version read), so a retry reads only newer events; what it had evolved with
  events that were not committed is dropped.

Bounded: least recently used entries are evicted beyond ``size`` streams.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from typing import Any


class AggregateCache:
    def __init__(self, size: int = 256, turns_from: int = 500) -> None:
        self.size = size
        self.turns_from = turns_from
        self._entries: OrderedDict[uuid.UUID, tuple[int, Any]] = OrderedDict()
        # The version each stream was last cached at, kept while its entry is taken.
        self._lengths: OrderedDict[uuid.UUID, int] = OrderedDict()
        # Per stream: the lock requests take turns on, and how many hold or wait for it.
        self._turns: dict[uuid.UUID, list[Any]] = {}

    def take(self, stream_id: uuid.UUID) -> tuple[int, Any] | None:
        """Remove and return ``(version, aggregate)``, or None."""
        return self._entries.pop(stream_id, None)

    def put(self, stream_id: uuid.UUID, version: int, aggregate: Any) -> None:
        """Keep ``aggregate`` as the fold of the committed events 1..version (an
        entry put meanwhile at a higher version by another request is kept)."""
        held = self._entries.get(stream_id)
        if held is not None and held[0] >= version:
            return
        self._entries[stream_id] = (version, aggregate)
        self._entries.move_to_end(stream_id)
        self._lengths[stream_id] = version
        self._lengths.move_to_end(stream_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        while len(self._lengths) > 4 * self.size:
            self._lengths.popitem(last=False)

    def is_long(self, stream_id: uuid.UUID) -> bool:
        """Whether requests on this stream take turns (see the module docstring)."""
        return self._lengths.get(stream_id, 0) >= self.turns_from

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._entries

    def version(self, stream_id: uuid.UUID) -> int | None:
        held = self._entries.get(stream_id)
        return held[0] if held is not None else None

    def turns(self) -> "Turns":
        """A request's turns on streams (released with `Turns.release`)."""
        return Turns(self)


class Turns:
    """The streams one request works on alone in this process.

    Deadlock-free: a request waits only for its first turn, while holding none;
    a further stream whose turn is taken is worked on without the cache (the
    database's head locks still order the writers)."""

    def __init__(self, cache: AggregateCache) -> None:
        self.cache = cache
        self._held: dict[uuid.UUID, asyncio.Lock] = {}

    async def enter(self, stream_id: uuid.UUID) -> bool:
        """True once this request has the stream's turn; False if it should not
        wait for it (it already holds another one and this one is taken)."""
        if stream_id in self._held:
            return True
        turns = self.cache._turns
        slot = turns.get(stream_id)
        if slot is None:
            slot = turns[stream_id] = [asyncio.Lock(), 0]
        lock: asyncio.Lock = slot[0]
        if self._held and lock.locked():
            return False
        slot[1] += 1
        try:
            await lock.acquire()
        except BaseException:
            self._leave(stream_id, slot)
            raise
        self._held[stream_id] = lock
        return True

    def _leave(self, stream_id: uuid.UUID, slot: list[Any]) -> None:
        slot[1] -= 1
        if slot[1] == 0:
            self.cache._turns.pop(stream_id, None)

    def release(self) -> None:
        for stream_id, lock in self._held.items():
            lock.release()
            self._leave(stream_id, self.cache._turns[stream_id])
        self._held.clear()
