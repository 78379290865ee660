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

Each process watches each standby over one connection of its own: every `interval`
(0.1 s) it reads the standby's replay LSN and slowest projection checkpoint, and the
primary's flushed WAL position. Lag is the age of the oldest primary position the
standby has not replayed, measured at that granularity (0 when caught up). While a
token read is waiting, the standby is polled every `fast_interval` instead, so the
wait ends within milliseconds of the replay: no request polls on its own.
LISTEN/NOTIFY is not available on a standby, so nothing here listens there.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from projections import PROJECTION_NAMES
from service.db import CONNECTION_FAILURES
from service.read.queries import Queries, UnknownWrite
from service.store.consistency import ConsistencyToken
from service.store.event_store import Checkpoint, EventStore

log = logging.getLogger("parley.replicas")

T = TypeVar("T")

PRIMARY = "primary"
STANDBY = "standby"

_STANDBY_STATE_SQL = """
    SELECT pg_is_in_recovery() AS in_recovery,
           pg_last_wal_replay_lsn() AS replayed,
           counted.n AS projections, slowest.txid, slowest.position
    FROM (SELECT count(*) AS n FROM projection_checkpoints WHERE name = ANY($1::text[])) counted
    LEFT JOIN LATERAL (
        SELECT txid, position FROM projection_checkpoints WHERE name = ANY($1::text[])
        ORDER BY txid, position LIMIT 1
    ) slowest ON true
"""
_PRIMARY_POSITION_SQL = "SELECT pg_current_wal_flush_lsn()"


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


@dataclass(frozen=True)
class StandbyState:
    usable: bool = False
    replayed: int = 0  # LSN
    projections: Checkpoint | None = None  # the slowest projection's checkpoint there
    sampled_at: float = 0.0


class PrimaryPositions:
    """Recent samples of the primary's flushed WAL position, to age a standby's lag."""

    def __init__(self, keep: int = 6000) -> None:
        self.keep = keep
        self._times: list[float] = []
        self._positions: list[int] = []

    def add(self, at: float, lsn: int) -> None:
        if self._positions and lsn <= self._positions[-1]:
            return  # only new positions matter: the first sample of each is its age
        self._times.append(at)
        self._positions.append(lsn)
        if len(self._positions) > self.keep:
            del self._times[: self.keep // 2], self._positions[: self.keep // 2]

    @property
    def latest(self) -> int | None:
        return self._positions[-1] if self._positions else None

    def lag(self, replayed: int, now: float) -> float:
        """Seconds since the primary first reached a position past `replayed`."""
        index = bisect.bisect_right(self._positions, replayed)
        if index >= len(self._positions):
            return 0.0
        return max(0.0, now - self._times[index])


class Standby:
    """One hot standby as this process sees it: a pool for reads, a watched state."""

    def __init__(self, name: str, url: str, queries: Queries) -> None:
        self.name = name
        self.url = url
        self.queries = queries
        self.state = StandbyState()
        self.waiters = 0
        self._changed = asyncio.Event()
        self.poke_event = asyncio.Event()

    def publish(self, state: StandbyState) -> None:
        self.state = state
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def fail(self, error: BaseException) -> None:
        """Out of use until the watcher has reached it again."""
        if self.state.usable:
            log.warning("standby %s failed (%s); reads go elsewhere until it answers again", self.name, error)
        self.publish(StandbyState(usable=False, sampled_at=time.monotonic()))
        self.poke_event.set()

    def covers(self, token: ConsistencyToken, *, log_read: bool) -> bool:
        state = self.state
        if not state.usable:
            return False
        if state.projections is not None and state.projections >= token.checkpoint:
            return True  # the read models have it, hence the log too (replayed in commit order)
        return log_read and token.lsn is not None and state.replayed >= token.lsn

    async def changed(self, timeout: float) -> None:
        event = self._changed
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


async def _any_change(standbys: list[Standby], timeout: float) -> None:
    waits = [asyncio.ensure_future(s.changed(timeout)) for s in standbys]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


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
            self._tasks.append(asyncio.create_task(self._sample_primary(), name="parley-primary-position"))
            for standby in self.standbys:
                self._tasks.append(asyncio.create_task(self._watch(standby), name=f"parley-watch-{standby.name}"))

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
                await _any_change(usable, remaining)
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

    # -- watching ---------------------------------------------------------------------

    async def _sample_primary(self) -> None:
        while True:
            try:
                self.positions.add(time.monotonic(), await self.primary.pool.fetchval(_PRIMARY_POSITION_SQL))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the primary's outage is reported elsewhere; keep the last samples
                log.debug("could not sample the primary's WAL position: %s", error)
            await asyncio.sleep(self.interval)

    async def _watch(self, standby: Standby) -> None:
        while True:
            try:
                conn = await asyncpg.connect(
                    standby.url, timeout=5, server_settings={"application_name": "parley-standby-watch"}
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                standby.fail(error)
                await asyncio.sleep(1.0)
                continue
            try:
                while True:
                    row = await conn.fetchrow(_STANDBY_STATE_SQL, self.projection_names, timeout=5)
                    if not row["in_recovery"]:
                        # Promoted, or not a standby at all: it no longer follows this
                        # primary, so what it holds may differ. Never read from it.
                        raise RuntimeError("not in recovery: promoted or not a standby")
                    complete = row["projections"] == len(self.projection_names)
                    if not standby.state.usable:
                        log.info("standby %s is answering", standby.name)
                    standby.publish(
                        StandbyState(
                            usable=True,
                            replayed=row["replayed"] or 0,
                            projections=Checkpoint(row["txid"], row["position"]) if complete else None,
                            sampled_at=time.monotonic(),
                        )
                    )
                    standby.poke_event.clear()
                    pause = self.fast_interval if standby.waiters else self.interval
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(standby.poke_event.wait(), pause)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                standby.fail(error)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
