"""The open Server-Sent Event streams of this process: caps, and revocation.

- **Caps** (DESIGN "Security (v2)": every request's cost is bounded): at most
  PARLEY_MAX_STREAMS_PER_KEY streams per API key and PARLEY_MAX_STREAMS in all,
  counted over every process on the database (PostgreSQL advisory locks, see
  service.http.stream_slots); one more is refused with a 429 problem
  (`too-many-streams`) and a Retry-After, before any event is read.
- **Revocation ends streams**: while any stream is open, one query a second
  (whatever the number of streams) asks which of their keys are still valid; a
  stream whose key was revoked, in this process or any other, ends within about
  a second, with a last `revoked` event.
- A stream's places are given back when it ends, and also when its handle is
  collected without ending (the client left before the first byte). If the
  connection holding the places is lost, every stream of the process ends.
- **Counted**: `parley_event_streams_open` (service.http.metrics) is set to this
  process's count whenever a stream opens or ends, and at each scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from service.http.metrics import STREAMS_OPEN
from service.http.problems import ProblemError
from service.http.stream_slots import Places, Refused, StreamSlots

log = logging.getLogger("parley.streams")

# How often the keys of open streams are checked for revocation.
KEY_CHECK_SECONDS = 1.0


def _limit(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {raw!r}")
    return value


@dataclass(eq=False)
class StreamHandle:
    key_id: str
    registry: "StreamRegistry"
    places: Places | None = None
    generation: int = 0  # of the connection holding its places (service.http.stream_slots)
    finalizer: Any = None  # gives the places back if the handle is collected unreleased
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.registry._release(self)


class StreamRegistry:
    def __init__(
        self, pool: asyncpg.Pool, database_url: str, *, per_key: int | None = None, total: int | None = None
    ) -> None:
        self.pool = pool
        self.per_key = per_key or _limit("PARLEY_MAX_STREAMS_PER_KEY", 8)
        self.total = total or _limit("PARLEY_MAX_STREAMS", 200)
        self.slots = StreamSlots(database_url, per_key=self.per_key, total=self.total)
        # Weak: a stream whose generator is dropped without ever running (the client
        # left before the first byte) leaves the count with it (and gives its places
        # back, by the finalizer set in `open`).
        self._open: dict[str, weakref.WeakSet[StreamHandle]] = {}
        self._checker: asyncio.Task[Any] | None = None
        self._giving_back: set[asyncio.Task[Any]] = set()

    def count(self, key_id: str | None = None) -> int:
        """Streams open in this process (the caps count every process's)."""
        if key_id is not None:
            return len(self._open.get(key_id, ()))
        return sum(len(handles) for handles in self._open.values())

    async def open(self, key_id: str) -> StreamHandle:
        """Register a stream for this key, or refuse it with a 429 problem."""
        try:
            places = await self.slots.take(key_id)
        except Refused as refused:
            if refused.which == "key":
                raise _too_many(f"This API key has {self.per_key} streams open already (the most one key may "
                                "hold); close one first.") from None
            raise _too_many(f"This server has {self.total} streams open already; retry later.") from None
        handle = StreamHandle(key_id, self, places, generation=self.slots.generation)
        self._open.setdefault(key_id, weakref.WeakSet()).add(handle)
        handle.finalizer = weakref.finalize(handle, self._give_back, places)
        STREAMS_OPEN.set(self.count())
        if self._checker is None or self._checker.done():
            self._checker = asyncio.create_task(self._check_keys(), name="parley-stream-keys")
        return handle

    def _release(self, handle: StreamHandle) -> None:
        handles = self._open.get(handle.key_id)
        if handles is not None:
            handles.discard(handle)
            if not handles:
                del self._open[handle.key_id]
        STREAMS_OPEN.set(self.count())
        if handle.finalizer is not None:
            handle.finalizer.detach()
        if handle.places is not None:
            self._give_back(handle.places)

    def _give_back(self, places: Places) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop any more: the process is stopping, and its session with it
        task = loop.create_task(self.slots.give_back(places))
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)

    def end_key(self, key_id: str) -> None:
        for handle in list(self._open.get(key_id, ())):
            handle.ended.set()

    async def _check_keys(self) -> None:
        while self._open:
            await asyncio.sleep(KEY_CHECK_SECONDS)
            keys = [key for key, handles in list(self._open.items()) if handles]
            if not keys:
                return
            try:
                valid = {
                    r["key_id"]
                    for r in await self.pool.fetch(
                        "SELECT key_id FROM api_keys WHERE key_id = ANY($1::text[]) AND revoked_at IS NULL", keys
                    )
                }
            except Exception as error:  # the database away: keep the streams, check again
                log.warning("could not check the keys of open streams: %s", error)
                continue
            for key_id in keys:
                if key_id not in valid:
                    self.end_key(key_id)
            # The places lost with their connection end the streams that held them.
            generation = self.slots.check()
            for handles in list(self._open.values()):
                for handle in list(handles):
                    if handle.generation < generation:
                        handle.ended.set()

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._checker
        for task in list(self._giving_back):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.slots.close()


def _too_many(detail: str) -> ProblemError:
    return ProblemError(429, "too-many-streams", "Too many open streams", detail,
                        headers={"Retry-After": "5"}, retry_after=5)


def registry_of(state: Any) -> StreamRegistry:
    """The app's registry (made by the app's lifespan, service.http.app)."""
    return state.streams
