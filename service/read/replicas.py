"""Which server answers a read: a hot standby (PARLEY_READ_DATABASE_URL) or the primary.

Status reads, timelines, the event log, SSE and exports may be answered by any
streaming standby; commands, idempotency and keys always go to the primary. This
module decides, per read:

* **Without a consistency token** a usable standby answers (round robin), however far
  behind it is up to `max_lag`; the response says how far (`ReadTarget.lag`). No
  usable standby: the primary answers.
* **With a token** a standby answers once it has caught up with the write (its
  projection checkpoints have passed the token's checkpoint; for reads of the log
  itself, its replay LSN has passed the token's LSN). A standby not there yet is
  waited for up to `token_wait` seconds; then the primary answers, after waiting for
  its own projections as a single server always did (up to `primary_wait`, else
  `ProjectionsBehind`, a 503).
* **A standby that fails** (stopped, restarting, promoted, a query cancelled by a
  recovery conflict) is taken out at once; the read is answered by the primary.

How far behind each standby is, and whether it answers, comes from watching it
(service.read.standby).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from projections import PROJECTION_NAMES
from service.db import CONNECTION_FAILURES
from service.read.queries import Queries, UnknownWrite
from service.read.standby import PrimaryPositions, Standby, any_change, sample_primary, watch
from service.store.consistency import ConsistencyToken
from service.store.event_store import EventStore

T = TypeVar("T")

PRIMARY = "primary"
STANDBY = "standby"


@dataclass(frozen=True)
class ReadTarget:
    """Where one read is answered, and how far behind the primary that server was."""

    source: str  # PRIMARY or STANDBY
    name: str  # "primary", "standby-1", …
    queries: Queries
    lag: float = 0.0  # seconds

    @property
    def store(self) -> EventStore:
        return self.queries.store

    @property
    def pool(self) -> asyncpg.Pool:
        return self.queries.pool


class ReadRouter:
    def __init__(
        self,
        primary: Queries,
        standbys: Sequence[tuple[str, Queries]] = (),
        *,
        token_wait: float = 1.0,
        primary_wait: float = 5.0,
        max_lag: float = 30.0,
        interval: float = 0.1,
        fast_interval: float = 0.005,
        projection_names: Sequence[str] = PROJECTION_NAMES,
    ) -> None:
        self.primary = ReadTarget(PRIMARY, PRIMARY, primary)
        self.token_wait = token_wait
        self.primary_wait = primary_wait
        self.max_lag = max_lag
        self.interval = interval
        self.fast_interval = fast_interval
        self.projection_names = list(projection_names)
        self.positions = PrimaryPositions()
        self.standbys = [Standby(f"standby-{n}", url, queries) for n, (url, queries) in enumerate(standbys, start=1)]
        self._turn = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start watching the standbys (their pools are the composition root's)."""
        if self.standbys:
            sampling = sample_primary(self.primary.pool, self.positions, self.interval)
            self._tasks.append(asyncio.create_task(sampling, name="parley-primary-position"))
            for standby in self.standbys:
                watching = watch(standby, self.projection_names, self.interval, self.fast_interval)
                self._tasks.append(asyncio.create_task(watching, name=f"parley-watch-{standby.name}"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    # -- choosing ---------------------------------------------------------------------

    def lag(self, standby: Standby) -> float:
        return self.positions.lag(standby.state.replayed, time.monotonic())

    def _target(self, standby: Standby) -> ReadTarget:
        return ReadTarget(STANDBY, standby.name, standby.queries, round(self.lag(standby), 3))

    def _next(self, candidates: list[Standby]) -> Standby | None:
        if not candidates:
            return None
        return candidates[next(self._turn) % len(candidates)]

    async def choose(self, token: ConsistencyToken | None = None, *, log_read: bool = False) -> ReadTarget:
        """The server for a read (see the module's docstring). Raises UnknownWrite and
        ProjectionsBehind for a token the primary cannot serve."""
        if token is None:
            fresh = [s for s in self.standbys if s.state.usable and self.lag(s) <= self.max_lag]
            standby = self._next(fresh)
            return self._target(standby) if standby is not None else self.primary
        if not token.in_range:
            raise UnknownWrite(token.text())
        standby = await self._covering(token, log_read)
        if standby is not None:
            return self._target(standby)
        await self._on_primary(token, log_read)
        return self.primary

    async def _covering(self, token: ConsistencyToken, log_read: bool) -> Standby | None:
        usable = [s for s in self.standbys if s.state.usable]
        if not usable:
            return None
        latest = self.positions.latest
        if token.lsn is not None and latest is not None and token.lsn > latest + 2**24:
            return None  # beyond anything the primary has written: let the primary judge it
        deadline = time.monotonic() + self.token_wait
        for standby in usable:
            standby.waiters += 1
            standby.poke_event.set()
        try:
            while True:
                covering = [s for s in usable if s.covers(token, log_read=log_read)]
                if covering:
                    return self._next(covering)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not any(s.state.usable for s in usable):
                    return None
                await any_change(usable, remaining)
        finally:
            for standby in usable:
                standby.waiters -= 1

    async def _on_primary(self, token: ConsistencyToken, log_read: bool) -> None:
        """Today's single-server meaning: the primary's projections pass the token."""
        if not log_read:  # the primary's log holds every acknowledged write already
            await self.primary.queries.wait_until_reflected(token, self.primary_wait)

    async def run(
        self,
        read: Callable[[ReadTarget], Awaitable[T]],
        token: ConsistencyToken | None = None,
        *,
        log_read: bool = False,
    ) -> tuple[T, ReadTarget]:
        """Answer `read` on the chosen server; a standby failing under it hands it to
        the primary (a read is repeatable: it writes nothing)."""
        target = await self.choose(token, log_read=log_read)
        if target.source == STANDBY:
            try:
                return await read(target), target
            except CONNECTION_FAILURES as error:
                self.standby_failed(target, error)
                if token is not None:
                    await self._on_primary(token, log_read)
        return await read(self.primary), self.primary

    def standby_failed(self, target: ReadTarget, error: BaseException) -> None:
        for standby in self.standbys:
            if standby.name == target.name:
                standby.fail(error)
