"""The global log, read gap-free: the one reader every follower of the log uses
(projection runner, rebuild, sealer, audit log and export, SSE, lag, bench).

Positions come from a sequence at insert time, so transactions commit out of
order; a reader that only asks for `position > last` would skip an event that
commits after a higher position was already read. This reader follows
`(txid, position)` and reads only rows of transactions below the oldest one
still running: every transaction below that line has finished, so no row can
appear behind a checkpoint. The rule is `GAP_FREE`, written here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import msgspec

from service import tracing
from service.store.events import EVENT_COLUMNS, START, Checkpoint, StoredEvent, row_to_event, tolerant_event

# A row is readable once its transaction is below the oldest one still running.
GAP_FREE = "events.txid < pg_snapshot_xmin(pg_current_snapshot())"

NOTIFY_CHANNEL = "parley_events"


class LogFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which events of the log to read (all of them by default)."""

    negotiation_id: uuid.UUID | None = None
    stream_id: uuid.UUID | None = None
    types: tuple[str, ...] = ()
    recorded_after: dt.datetime | None = None  # inclusive
    recorded_before: dt.datetime | None = None  # exclusive


EVERYTHING = LogFilter()


def _log_sql(columns: str, *, timed: bool = False) -> str:
    # With a time filter, the bounds are plain range conditions on recorded_at, so
    # the events_recorded_at index (migration 0030) reads only that range; without
    # one the statement has no recorded_at condition the planner could be lured by.
    time_window = (
        "AND recorded_at >= COALESCE($9::timestamptz, '-infinity') "
        "AND recorded_at < COALESCE($10::timestamptz, 'infinity')"
        if timed
        # (the parameters stay referenced, so both statements take the same arguments)
        else "AND ($9::timestamptz IS NULL OR true) AND ($10::timestamptz IS NULL OR true)"
    )
    return f"""
        SELECT {columns} FROM events
        WHERE (txid, position) > ($1::text::xid8, $2)
          AND {GAP_FREE}
          AND ($4::text IS NULL OR (txid, position) <= ($4::text::xid8, $5))
          AND ($6::uuid IS NULL OR negotiation_id = $6)
          AND ($7::uuid IS NULL OR stream_id = $7)
          AND ($8::text[] IS NULL OR type = ANY($8))
          {time_window}
        -- events.txid, not the bigint txid output column: that would sort the whole log
        ORDER BY events.txid, events.position
        LIMIT $3
    """


_LOG_SQL = _log_sql(EVENT_COLUMNS)
# The audit serves a row whose body no longer parses, with the queryable copy of its data.
_LOG_WITH_DATA_SQL = _log_sql(EVENT_COLUMNS + ", data::text AS data_text")
_LOG_TIMED_SQL = _log_sql(EVENT_COLUMNS, timed=True)
_LOG_TIMED_WITH_DATA_SQL = _log_sql(EVENT_COLUMNS + ", data::text AS data_text", timed=True)

_HEAD_SQL = f"""
    SELECT txid::text::bigint AS txid, position FROM events
    WHERE {GAP_FREE}
    ORDER BY events.txid DESC, events.position DESC LIMIT 1
"""

# Per checkpoint: how many readable events lie after it (counting stops at $3, so
# "a million or more" costs no more than a million), and the oldest one's age.
_BACKLOG_SQL = f"""
    SELECT after.ord, backlog.events, COALESCE(EXTRACT(epoch FROM clock_timestamp() - backlog.oldest), 0)::float8
        AS seconds
    FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS after(txid, position, ord)
    CROSS JOIN LATERAL (
        SELECT count(*) AS events, min(behind.recorded_at) AS oldest
        FROM (
            SELECT events.recorded_at FROM events
            WHERE (events.txid, events.position) > (after.txid::xid8, after.position) AND {GAP_FREE}
            LIMIT $3
        ) behind
    ) backlog
    ORDER BY after.ord
"""

_READABLE_SQL = f"SELECT EXISTS (SELECT 1 FROM events WHERE id = $1 AND {GAP_FREE})"


def log_sql(*, serve_damaged: bool = False, timed: bool = False) -> str:
    """The statement read_log runs for these options."""
    if timed:
        return _LOG_TIMED_WITH_DATA_SQL if serve_damaged else _LOG_TIMED_SQL
    return _LOG_WITH_DATA_SQL if serve_damaged else _LOG_SQL


class Backlog(msgspec.Struct, frozen=True):
    """Readable events after a checkpoint, and seconds since the oldest was recorded."""

    events: int
    seconds: float


class LogReader:
    """The gap-free reads of the global log (mixed into EventStore)."""

    pool: asyncpg.Pool

    async def read_log(
        self,
        after: Checkpoint = START,
        limit: int = 1000,
        *,
        negotiation_id: uuid.UUID | None = None,
        stream_id: uuid.UUID | None = None,
        types: Sequence[str] | None = None,
        recorded_after: dt.datetime | None = None,
        recorded_before: dt.datetime | None = None,
        until: Checkpoint | None = None,
        serve_damaged: bool = False,
        conn: asyncpg.Connection | None = None,
    ) -> list[StoredEvent]:
        """The global log after a checkpoint, in commit order, never skipping an event.

        Only transactions below the oldest one still running are read: an event whose
        transaction may yet commit is waited for rather than passed over. `until`
        bounds the page to a checkpoint (inclusive). With `serve_damaged`, a row whose
        body no longer parses comes with the queryable copy of its data instead of
        failing the read (an audit must be able to show a damaged record).
        """
        rows = await (conn or self.pool).fetch(
            log_sql(serve_damaged=serve_damaged, timed=recorded_after is not None or recorded_before is not None),
            str(after.txid),
            after.position,
            limit,
            str(until.txid) if until is not None else None,
            until.position if until is not None else 0,
            negotiation_id,
            stream_id,
            list(types) if types else None,
            recorded_after,
            recorded_before,
        )
        return [tolerant_event(r) if serve_damaged else row_to_event(r) for r in rows]

    async def read_filtered(
        self,
        after: Checkpoint,
        limit: int,
        where: LogFilter = EVERYTHING,
        *,
        until: Checkpoint | None = None,
        serve_damaged: bool = False,
    ) -> list[StoredEvent]:
        """`read_log` with the filter as one value (the audit's routes pass it along)."""
        return await self.read_log(
            after, limit, **msgspec.structs.asdict(where), until=until, serve_damaged=serve_damaged
        )

    async def head(self, *, conn: asyncpg.Connection | None = None) -> Checkpoint:
        """The last event a gap-free reader can see now (START for an empty log)."""
        row = await (conn or self.pool).fetchrow(_HEAD_SQL)
        return Checkpoint(row["txid"], row["position"]) if row else START

    async def backlog(
        self, afters: Sequence[Checkpoint], *, cap: int | None = None, conn: asyncpg.Connection | None = None
    ) -> list[Backlog]:
        """Per checkpoint, in order: the readable events after it (at most `cap`),
        and how long ago the oldest of them was recorded (0 when none)."""
        rows = await (conn or self.pool).fetch(
            _BACKLOG_SQL, [str(a.txid) for a in afters], [a.position for a in afters], cap
        )
        return [Backlog(r["events"], max(0.0, r["seconds"])) for r in rows]

    async def readable(self, event_id: uuid.UUID, *, conn: asyncpg.Connection | None = None) -> bool:
        """Whether a gap-free reader may return this event now."""
        return await (conn or self.pool).fetchval(_READABLE_SQL, event_id)

    async def subscribe(
        self,
        after: Checkpoint = START,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        stop: asyncio.Event | None = None,
    ) -> AsyncIterator[list[StoredEvent]]:
        """Yield batches of new events for ever (until `stop` is set), resuming after
        `after`. LISTEN/NOTIFY wakes the reader; polling covers a lost notification or
        a transaction that was still running when the notification came."""
        wake = asyncio.Event()

        def on_notify(*_: object) -> None:
            wake.set()

        listener = await self.pool.acquire()
        try:
            await listener.add_listener(NOTIFY_CHANNEL, on_notify)
            checkpoint = after
            while stop is None or not stop.is_set():
                wake.clear()
                with tracing.quiet():  # polled every second: no SQL span of its own
                    batch = await self.read_log(checkpoint, batch_size)
                if batch:
                    checkpoint = batch[-1].checkpoint
                    yield batch
                    continue
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), poll_interval)
        finally:
            # Released even when cancelled while unlistening: a connection kept
            # here would make the pool's close() wait for ever (a shutdown hang).
            try:
                with contextlib.suppress(Exception):
                    await listener.remove_listener(NOTIFY_CHANNEL, on_notify)
            finally:
                await self.pool.release(listener)
