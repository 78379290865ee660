"""Cross-process cache invalidation over LISTEN/NOTIFY on the primary.

Every API process (on every node) may keep caches of what the primary holds: API
keys, resolved negotiation refs. A process that changes such a thing announces it
(`announce`, a `pg_notify` on `parley_invalidate` with the payload `kind:key`),
best inside the transaction that makes the change, so the announcement travels
exactly when the change commits. Every process's `Invalidations` listens on one
connection of its own to the primary (a hot standby cannot LISTEN) and calls what
each cache subscribed for that kind.

"Within a second", even when something breaks: a notification is lost only with
the connection that listens, so while it is down, or has not answered a heartbeat
for `stale_after` seconds, `trustworthy` is False (a cache must then not answer
from memory), and once it is listening again every subscriber is told to forget
everything (`forget_all`): whatever was announced meanwhile is unknown.

The same connection also listens on channels other parts notify on of their own
(`subscribe_channel`: the projections' commits on `parley_projections`, for the
served status views of service.read.served_views), with the same trust.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

log = logging.getLogger("parley.invalidation")

CHANNEL = "parley_invalidate"


async def announce(conn: asyncpg.Connection | asyncpg.Pool, kind: str, key: str) -> None:
    """Tell every process that `kind:key` changed (delivered when the caller's
    transaction commits, or at once outside one)."""
    if ":" in kind:
        raise ValueError("a kind names a cache and has no ':'")
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{kind}:{key}")


@dataclass
class _Subscriber:
    changed: Callable[[str], None]
    forget_all: Callable[[], None]


class Invalidations:
    def __init__(self, primary_url: str, *, heartbeat: float = 0.25, stale_after: float = 0.75) -> None:
        self.primary_url = primary_url
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self._subscribers: dict[str, list[_Subscriber]] = {}
        # Further channels listened on (their whole payload is handed over).
        self._channels: dict[str, list[_Subscriber]] = {}
        self._listening = False
        self._last_answer = 0.0
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def subscribe(self, kind: str, changed: Callable[[str], None], forget_all: Callable[[], None]) -> None:
        self._subscribers.setdefault(kind, []).append(_Subscriber(changed, forget_all))

    def subscribe_channel(self, channel: str, changed: Callable[[str], None], forget_all: Callable[[], None]) -> None:
        """Call `changed(payload)` on every notification of `channel`. Only before
        `start`: a channel added later would not be listened on, yet trusted."""
        if self._task is not None:
            raise RuntimeError("subscribe to a channel before the invalidations start")
        if channel == CHANNEL:
            raise ValueError(f"{CHANNEL} carries kinds: use subscribe")
        self._channels.setdefault(channel, []).append(_Subscriber(changed, forget_all))

    @property
    def trustworthy(self) -> bool:
        """True while no announcement can have been missed: listening, and the
        connection answered within `stale_after` seconds."""
        return self._listening and time.monotonic() - self._last_answer <= self.stale_after

    async def start(self, ready_within: float | None = 5.0) -> None:
        """Start listening; wait (at most `ready_within` s) until it does."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="parley-invalidations")
        if ready_within:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), ready_within)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self._listening = False

    def _deliver(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        kind, _, key = payload.partition(":")
        for subscriber in self._subscribers.get(kind, ()):
            try:
                subscriber.changed(key)
            except Exception:  # one cache's bug must not keep the others stale
                log.exception("invalidation of %s failed", payload)

    def _deliver_channel(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for subscriber in self._channels.get(channel, ()):
            try:
                subscriber.changed(payload)
            except Exception:
                log.exception("invalidation on %s (%s) failed", channel, payload)

    def _forget_all(self) -> None:
        for subscribers in (*self._subscribers.values(), *self._channels.values()):
            for subscriber in subscribers:
                try:
                    subscriber.forget_all()
                except Exception:
                    log.exception("a cache could not be cleared")

    async def _listen(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.primary_url, timeout=5, server_settings={"application_name": "parley-invalidations"}
                )
                await conn.add_listener(CHANNEL, self._deliver)
                for channel in self._channels:
                    await conn.add_listener(channel, self._deliver_channel)
                # Anything announced before this point may have been missed.
                self._forget_all()
                self._last_answer = time.monotonic()
                self._listening = True
                self._ready.set()
                while True:
                    await asyncio.sleep(self.heartbeat)
                    await conn.fetchval("SELECT 1", timeout=self.stale_after)
                    self._last_answer = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self._listening:
                    log.warning("cache invalidations: lost the primary (%s); caches are bypassed until back", error)
                self._listening = False
                await asyncio.sleep(0.5)
            finally:
                self._listening = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 1)
