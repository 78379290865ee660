"""An in-process cache of folded write-side aggregates, for the command path.

It holds, per stream id, ``(version, aggregate)``: the fold of the stream's
committed events 1..version. It is a cache of a pure function of the committed
stream, not state: a request that finds an entry still reads every event after
``version`` from PostgreSQL, inside its own transaction, and folds them in, so it
decides on exactly the committed stream, whatever other processes (or other
instances in this one) have written meanwhile. Several API processes each keep
their own cache and stay correct; a process without one only reads more.

Rules that keep it so (service.write.commands):

- a request TAKES an entry out (no two requests ever share, or evolve, one
  object); a request that finds nothing reads the whole stream;
- only after the request's transaction has committed does it put the evolved
  aggregate back, under the version its own events were committed at; on any
  failure (domain error, lost race, rollback) what it took is simply dropped;
- a retry after a lost race reads from the store without the cache.

Bounded: least recently used entries are evicted beyond ``size`` streams.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any


class AggregateCache:
    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[uuid.UUID, tuple[int, Any]] = OrderedDict()

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
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._entries

    def version(self, stream_id: uuid.UUID) -> int | None:
        held = self._entries.get(stream_id)
        return held[0] if held is not None else None
