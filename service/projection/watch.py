"""Watching the projections: read-your-writes (`ProjectionWatch`) and lag.

One LISTEN connection per process on `parley_projections` (notified after each
committed batch, service.projection.checkpoints.apply_batch) wakes every
request waiting for its consistency token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from projections import PROJECTION_NAMES
from service.db import close_connection, connect
from service.projection.checkpoints import PROJECTIONS_CHANNEL
from service.store.event_store import Checkpoint, EventStore

log = logging.getLogger("parley.projector")

# Seconds a process keeps its read of the stuck projections.
_STUCK_TTL = 1.0


@dataclass(frozen=True)
class StuckAt:
    """A projection stopped at an event it cannot apply (checkpoint: the last applied)."""

    name: str
    event_id: uuid.UUID
    negotiation_id: uuid.UUID
    error: str
    checkpoint: Checkpoint


class ProjectionStuck(Exception):
    """A read of a view that a projection stuck at an event no longer keeps up to date."""

    def __init__(self, stuck: StuckAt) -> None:
        super().__init__(
            f"projection {stuck.name} is stuck at event {stuck.event_id} of negotiation {stuck.negotiation_id} "
            f"({stuck.error}); an operator must fix it and run `parley projections rebuild {stuck.name}`"
        )
        self.stuck = stuck


# Counting stops here: "a million or more behind" is all a health check needs.
_LAG_COUNT_CAP = 1_000_000


async def projection_lag(pool: asyncpg.Pool, names: Sequence[str] = PROJECTION_NAMES) -> list[dict[str, Any]]:
    """Per projection: events behind the visible head of the log, seconds since
    the oldest of them was recorded (0 when caught up), the event it is stuck
    at ({event_id, negotiation_id, error, since}; None when it is not), and when
    its checkpoint last moved (`updated_at`, whichever process holds it)."""
    rows = await pool.fetch(
        """
        SELECT name, txid, position, updated_at, stuck_event_id, stuck_negotiation_id, stuck_error, stuck_since
        FROM projection_checkpoints WHERE name = ANY($1::text[]) ORDER BY name
        """,
        list(names),
    )
    behind = await EventStore(pool).backlog([Checkpoint(r["txid"], r["position"]) for r in rows], cap=_LAG_COUNT_CAP)
    return [
        {"name": r["name"], "events_behind": lag.events, "seconds_behind": lag.seconds, "stuck": _stuck(r),
         "updated_at": r["updated_at"]}
        for r, lag in zip(rows, behind)
    ]


def _stuck(row: asyncpg.Record) -> dict[str, Any] | None:
    if row["stuck_event_id"] is None:
        return None
    return {
        "event_id": row["stuck_event_id"],
        "negotiation_id": row["stuck_negotiation_id"],
        "error": row["stuck_error"],
        "since": row["stuck_since"],
    }


class ProjectionWatch:
    """Waits until every projection has passed a checkpoint (a consistency token).

    One LISTEN connection per process wakes all waiters when a batch commits;
    waiters also re-check every `poll_interval`, which covers a lost
    notification or a listener that is reconnecting. Waiters share their reads
    of the checkpoints: many requests waiting at once cost one query per commit.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        database_url: str,
        names: Sequence[str] = PROJECTION_NAMES,
        *,
        poll_interval: float = 0.25,
    ) -> None:
        self.pool = pool
        self.database_url = database_url
        self.names = list(names)
        self.poll_interval = poll_interval
        self._changed = asyncio.Event()
        self._generation = 0  # notifications received so far
        self._reading: tuple[int, asyncio.Future[Checkpoint | None]] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._stuck: tuple[float, dict[str, StuckAt]] | None = None

    async def _read_slowest(self) -> Checkpoint | None:
        rows = await self.pool.fetch(
            "SELECT txid, position FROM projection_checkpoints WHERE name = ANY($1::text[])", self.names
        )
        if len(rows) < len(self.names):
            return None
        return min(Checkpoint(r["txid"], r["position"]) for r in rows)

    async def slowest(self) -> Checkpoint | None:
        """The checkpoint every projection has passed (None: one has never run).

        A read already in flight is shared if it started after the latest
        notification (so it cannot miss that commit)."""
        reading = self._reading
        if reading is None or reading[1].done() or reading[0] < self._generation:
            reading = self._reading = (self._generation, asyncio.ensure_future(self._read_slowest()))
        return await asyncio.shield(reading[1])

    async def passed(self, checkpoint: Checkpoint) -> bool:
        slowest = await self.slowest()
        return slowest is not None and slowest >= checkpoint

    async def wait_for(self, checkpoint: Checkpoint, timeout: float = 5.0) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed  # taken before checking: a commit after it still wakes us
            if await self.passed(checkpoint):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._listener is None or self._listener.done():
                self._listener = asyncio.create_task(self._listen(), name="parley-projection-watch")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, self.poll_interval))

    async def stuck(self) -> dict[str, "StuckAt"]:
        """The projections stuck at an event (service.projection.runner), by name;
        read at most once a second per process (a stuck projection stays stuck
        until an operator acts, so a second's delay in noticing either way is harmless)."""
        loop = asyncio.get_running_loop()
        if self._stuck is None or loop.time() - self._stuck[0] > _STUCK_TTL:
            rows = await self.pool.fetch(
                """
                SELECT name, txid, position, stuck_event_id, stuck_negotiation_id, stuck_error
                FROM projection_checkpoints WHERE name = ANY($1::text[]) AND stuck_event_id IS NOT NULL
                """,
                self.names,
            )
            found = {
                r["name"]: StuckAt(
                    r["name"], r["stuck_event_id"], r["stuck_negotiation_id"], r["stuck_error"],
                    Checkpoint(r["txid"], r["position"]),
                )
                for r in rows
            }  # fmt: skip
            self._stuck = (loop.time(), found)
        return self._stuck[1]

    async def check_not_stuck(self, name: str, negotiation_id: uuid.UUID) -> None:
        """ProjectionStuck if projection `name` is stuck at an event of this negotiation."""
        stuck = (await self.stuck()).get(name)
        if stuck is not None and stuck.negotiation_id == negotiation_id:
            raise ProjectionStuck(stuck)

    async def check_reachable(self, checkpoint: Checkpoint) -> None:
        """ProjectionStuck if a projection stuck before `checkpoint` will never reach it."""
        for stuck in (await self.stuck()).values():
            if stuck.checkpoint < checkpoint:
                raise ProjectionStuck(stuck)

    def _notify(self, *_: object) -> None:
        self._generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _listen(self) -> None:
        while True:
            try:
                conn = await connect(self.database_url, "parley-projection-watch")
                try:
                    await conn.add_listener(PROJECTIONS_CHANNEL, self._notify)
                    while not conn.is_closed():
                        await asyncio.sleep(1.0)
                finally:
                    await close_connection(conn)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.info("projection watch: %s; reconnecting", error)
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
