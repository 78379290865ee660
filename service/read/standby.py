"""A hot standby as this process sees it, and the watching that keeps that view
current (service.read.replicas chooses a server for each read from it).

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
import logging
import time
from dataclasses import dataclass

import asyncpg

from service.read.queries import Queries
from service.store.consistency import ConsistencyToken
from service.store.event_store import Checkpoint

log = logging.getLogger("parley.replicas")

STANDBY_STATE_SQL = """
    SELECT pg_is_in_recovery() AS in_recovery,
           pg_last_wal_replay_lsn() AS replayed,
           counted.n AS projections, slowest.txid, slowest.position
    FROM (SELECT count(*) AS n FROM projection_checkpoints WHERE name = ANY($1::text[])) counted
    LEFT JOIN LATERAL (
        SELECT txid, position FROM projection_checkpoints WHERE name = ANY($1::text[])
        ORDER BY txid, position LIMIT 1
    ) slowest ON true
"""
PRIMARY_POSITION_SQL = "SELECT pg_current_wal_flush_lsn()"



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


async def any_change(standbys: list[Standby], timeout: float) -> None:
    waits = [asyncio.ensure_future(s.changed(timeout)) for s in standbys]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def sample_primary(pool: asyncpg.Pool, positions: PrimaryPositions, interval: float) -> None:
    """Every `interval`, the primary's flushed WAL position (what ages a standby's lag)."""
    while True:
        try:
            positions.add(time.monotonic(), await pool.fetchval(PRIMARY_POSITION_SQL))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the primary's outage is reported elsewhere; keep the last samples
            log.debug("could not sample the primary's WAL position: %s", error)
        await asyncio.sleep(interval)


async def watch(standby: Standby, projection_names: list[str], interval: float, fast_interval: float) -> None:
    """Keep `standby.state` current over one connection of its own (every `interval`,
    every `fast_interval` while a read waits for it); a failure takes it out of use."""
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
                row = await conn.fetchrow(STANDBY_STATE_SQL, projection_names, timeout=5)
                if not row["in_recovery"]:
                    # Promoted, or not a standby at all: it no longer follows this
                    # primary, so what it holds may differ. Never read from it.
                    raise RuntimeError("not in recovery: promoted or not a standby")
                complete = row["projections"] == len(projection_names)
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
                pause = fast_interval if standby.waiters else interval
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
