"""The domain folds a projection keeps in memory between batches.

A projected row is always "the domain fold of its stream's events 1..V", where
V is the highest version of that stream the projection has seen in the log.
That definition depends only on the log up to the checkpoint (and on events,
which never change), so a live projection that saw the log in many small
batches and a rebuild that read it in large ones end on the same rows.

Folding a stream from its first event for every batch would be slow, so the
folds of recently touched streams are cached. A cached fold is trusted only
when its version equals the version stored in the row it produced; otherwise
(another runner applied meanwhile, a rebuild swapped tables) it is refolded
from the stream. The runner drops the whole cache when a transaction fails,
since the cache may then be ahead of what was committed.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from domain.records import Recorded
from projections.records import StreamHistory


class Fold(Protocol):
    def apply(self, record: Recorded) -> None: ...


F = TypeVar("F", bound=Fold)


@dataclass
class FoldedStream(Generic[F]):
    fold: F
    version: int = 0
    # The record at `version` and the one at version 1 (the row's "updated" and
    # "created" positions come from them).
    head: Recorded | None = None
    first: Recorded | None = None


class FoldCache(Generic[F]):
    def __init__(self, new_fold: Callable[[], F], capacity: int = 2000) -> None:
        self._new_fold = new_fold
        self._capacity = capacity
        self._streams: OrderedDict[uuid.UUID, FoldedStream[F]] = OrderedDict()

    def clear(self) -> None:
        self._streams.clear()

    def forget(self, stream_id: uuid.UUID) -> None:
        """Drop one stream's fold: its next advance refolds it from version 1."""
        self._streams.pop(stream_id, None)

    async def at(self, stream_id: uuid.UUID, version: int, history: StreamHistory) -> FoldedStream[F] | None:
        """The stream folded up to exactly `version` (the version a stored row
        reflects), from the cache or refolded from the stream; None for 0."""
        if version == 0:
            return None
        entry = self._streams.get(stream_id)
        if entry is None or entry.version != version:
            entry = FoldedStream(self._new_fold())
            self._fold_into(entry, await history(stream_id, 1, version))
        self._remember(stream_id, entry)
        return entry

    async def advance(
        self,
        stream_id: uuid.UUID,
        stored_version: int,
        records: Sequence[Recorded],
        history: StreamHistory,
    ) -> FoldedStream[F] | None:
        """The stream folded up to the highest version in `records`, or None when
        the stored row already reflects that version (seen out of order earlier).

        `records` are the stream's events in this batch, in version order; any
        version between the stored one and the newest that is not among them is
        loaded with `history` (it was committed: a stream's versions commit in
        order, so the presence of v+1 in the log proves v exists).
        """
        target = max(r.version for r in records)
        if target <= stored_version:
            return None
        entry = self._streams.get(stream_id)
        if entry is None or entry.version != stored_version:
            entry = FoldedStream(self._new_fold())
        by_version = {r.version: r for r in records if r.version > entry.version}
        missing = [v for v in range(entry.version + 1, target + 1) if v not in by_version]
        if missing:
            for record in await history(stream_id, missing[0], missing[-1]):
                by_version.setdefault(record.version, record)
        self._fold_into(entry, [by_version[v] for v in range(entry.version + 1, target + 1)])
        self._remember(stream_id, entry)
        return entry

    @staticmethod
    def _fold_into(entry: FoldedStream[F], records: Sequence[Recorded]) -> None:
        for record in records:
            if record.version != entry.version + 1:
                raise RuntimeError(f"stream {record.stream_id}: version {record.version} after {entry.version}")
            entry.fold.apply(record)
            entry.version = record.version
            entry.head = record
            if record.version == 1:
                entry.first = record

    def _remember(self, stream_id: uuid.UUID, entry: FoldedStream[F]) -> None:
        self._streams[stream_id] = entry
        self._streams.move_to_end(stream_id)
        while len(self._streams) > self._capacity:
            self._streams.popitem(last=False)
