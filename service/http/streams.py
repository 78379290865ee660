"""The open Server-Sent Event streams of this process: caps, and revocation.

- **Caps** (DESIGN "Security (v2)": every request's cost is bounded): at most
  PARLEY_MAX_STREAMS_PER_KEY streams per API key and PARLEY_MAX_STREAMS in all
  in one process; one more is refused with a 429 problem (`too-many-streams`)
  and a Retry-After, before any event is read.
- **Revocation ends streams**: while any stream is open, one query a second
  (whatever the number of streams) asks which of their keys are still valid; a
  stream whose key was revoked, in this process or any other, ends within about
  a second, with a last `revoked` event.
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

from service.http.problems import ProblemError

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
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.registry._release(self)


class StreamRegistry:
    def __init__(self, pool: asyncpg.Pool, *, per_key: int | None = None, total: int | None = None) -> None:
        self.pool = pool
        self.per_key = per_key or _limit("PARLEY_MAX_STREAMS_PER_KEY", 8)
        self.total = total or _limit("PARLEY_MAX_STREAMS", 200)
        # Weak: a stream whose generator is dropped without ever running (the client
        # left before the first byte) leaves the count with it.
        self._open: dict[str, weakref.WeakSet[StreamHandle]] = {}
        self._checker: asyncio.Task[Any] | None = None

    def count(self, key_id: str | None = None) -> int:
        if key_id is not None:
            return len(self._open.get(key_id, ()))
        return sum(len(handles) for handles in self._open.values())

    def open(self, key_id: str) -> StreamHandle:
        """Register a stream for this key, or refuse it with a 429 problem."""
        if self.count(key_id) >= self.per_key:
            raise _too_many(f"This API key has {self.per_key} streams open already (the most one key may hold); "
                            "close one first.")
        if self.count() >= self.total:
            raise _too_many(f"This server has {self.total} streams open already; retry later.")
        handle = StreamHandle(key_id, self)
        self._open.setdefault(key_id, weakref.WeakSet()).add(handle)
        if self._checker is None or self._checker.done():
            self._checker = asyncio.create_task(self._check_keys(), name="parley-stream-keys")
        return handle

    def _release(self, handle: StreamHandle) -> None:
        handles = self._open.get(handle.key_id)
        if handles is not None:
            handles.discard(handle)
            if not handles:
                del self._open[handle.key_id]

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

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._checker


def _too_many(detail: str) -> ProblemError:
    return ProblemError(429, "too-many-streams", "Too many open streams", detail,
                        headers={"Retry-After": "5"}, retry_after=5)


def registry_of(state: Any) -> StreamRegistry:
    """The process's registry (one per app, made on first use)."""
    registry = getattr(state, "streams", None)
    if registry is None:
        registry = StreamRegistry(state.runtime.pool)
        state.streams = registry
    return registry
