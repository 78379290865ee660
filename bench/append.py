"""bench.append — the event store against its peer and its limit.

Writers (1, 4, 16, 64) append batches of 1 or 10 events to streams picked with a
Zipf distribution over 10,000 streams, back to back, for a fixed time. Four systems,
each in a fresh database on the same PostgreSQL, one after the other per cell:

- parley: `service.store.event_store.EventStore.append` (asyncpg; stream heads locked per
  stream, hash chain, idempotency check, NOTIFY), appending at the stream's head.
- peer:   the eventsourcing library's `PostgresApplicationRecorder` (psycopg,
  synchronous, so one thread per writer); it takes `LOCK TABLE … IN EXCLUSIVE MODE`
  on every insert. Versions come from an in-process counter, so it never conflicts.
- limit:  bare asyncpg INSERTs of the same rows into a table with the same columns
  and nothing but its primary key: no uniqueness checks, no stream heads, no hash.
- schema: bare asyncpg INSERTs of the same rows into Parley's own events table, as
  migrated (its unique and ordering indexes, constraints and the record-time
  trigger, which parses each body): the body finished with the server's now() in
  the statement, as the trigger demands, versions from an in-process counter as
  the peer's, no stream heads, no hash chain, no id check. What any append over
  this schema could reach: parley's distance to it is the append's own cost, the
  limit's distance to it the schema's.

    uv run --group bench python -m bench.append [--quick] [--database-url URL]

Over 300 lines on purpose: the four systems of a cell (parley, its peer, the limit,
the schema's ceiling) are set up and driven by the same code in one module, so a
figure and its comparisons cannot drift apart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from bench._harness import (
    arguments,
    describe_machine,
    emit_json,
    fresh_database,
    postgres_server,
    print_table,
    progress,
    ratio,
    rounded,
    server_version,
    use_uvloop,
)
from bench._load import Measured, run_async, run_threads
from bench._zipf import ZipfChooser
from service.db import create_pool
from service.store.append import body_pieces
from service.store.event_store import EventStore, PendingEvent, canonical_body

STREAMS = 10_000
WRITERS = (1, 4, 16, 64)
BATCHES = (1, 10)
SYSTEMS = ("parley", "peer", "limit", "schema")

# A realistic fact: a party's position on an issue, with its source.
FACT = (
    b'{"conditions":["no foreign weapons that threaten Russia","settled separately from NATO membership"],'
    b'"issue":"security-guarantees","party":"RU","stance":"demands",'
    b'"summary":"Security guarantees must be settled separately from NATO membership"}'
)
SOURCE = {"outlet": "RBC", "speaker": "Sergey Lavrov", "published_on": "2022-03-16"}


class Workload:
    """The streams of one run and what is written to them, shared by the three systems."""

    def __init__(self, seed: int = 7, exponent: float = 1.0) -> None:
        ids = [uuid.UUID(int=(seed << 64) + i) for i in range(STREAMS)]
        self.streams = ids
        # Ten issues per negotiation, as a negotiation would have.
        self.negotiation_of = {s: uuid.UUID(int=(seed << 96) + i // 10) for i, s in enumerate(ids)}
        self.seed = seed
        self.exponent = exponent

    def chooser(self, worker: int) -> ZipfChooser[uuid.UUID]:
        return ZipfChooser(self.streams, self.exponent, seed=self.seed * 1000 + worker)

    def pending(self, stream: uuid.UUID) -> PendingEvent:
        return PendingEvent(
            id=uuid.uuid4(),
            stream_id=stream,
            stream_type="issue",
            type="position.stated",
            schema_version=1,
            data=FACT,
            occurred_on="2022-03-16",
            recorded_by="bench",
            negotiation_id=self.negotiation_of[stream],
            claimed_by=("RU",),
            source=SOURCE,
        )

    def sample_body(self) -> bytes:
        """What one stored event weighs: the peer and the limit write this many bytes."""
        return canonical_body(self.pending(self.streams[0]), 1, dt.datetime.now(dt.timezone.utc))


# -- parley ----------------------------------------------------------------------------


async def run_parley(url: str, work: Workload, writers: int, batch: int, warmup: float, duration: float) -> Measured:
    pool = await create_pool(url, min_size=writers, max_size=writers)
    store = EventStore(pool)
    choosers = [work.chooser(w) for w in range(writers)]

    async def append(worker: int) -> int:
        stream = choosers[worker].pick()
        await store.append([work.pending(stream) for _ in range(batch)])
        return batch

    try:
        return await run_async(writers, append, warmup=warmup, duration=duration)
    finally:
        await pool.close()


# -- peer: the eventsourcing library's recorder ------------------------------------------


def _psycopg_parts(url: str) -> dict[str, str]:
    """PostgresDatastore wants the URL's parts; a Unix socket comes as ?host=/dir."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return {
        "dbname": parts.path.lstrip("/"),
        "host": query.get("host", [parts.hostname or "127.0.0.1"])[0],
        "port": str(parts.port or 5432),
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or ""),
    }


class _Versions:
    """Next version per stream, handed out atomically: the peer's writers never clash
    on (originator_id, originator_version), so the figure is its insert path alone."""

    def __init__(self) -> None:
        self._next: dict[uuid.UUID, Iterator[int]] = {}
        self._lock = threading.Lock()

    def take(self, stream: uuid.UUID, count: int) -> list[int]:
        with self._lock:
            counter = self._next.setdefault(stream, itertools.count(1))
            return [next(counter) for _ in range(count)]


def run_peer(url: str, work: Workload, writers: int, batch: int, warmup: float, duration: float) -> Measured:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    datastore = PostgresDatastore(**_psycopg_parts(url), pool_size=writers)
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    state = work.sample_body()
    versions = _Versions()
    choosers = [work.chooser(w) for w in range(writers)]

    def insert(worker: int) -> int:
        stream = choosers[worker].pick()
        recorder.insert_events(
            [
                StoredEvent(originator_id=stream, originator_version=v, topic="domain.issue:PositionStated", state=state)
                for v in versions.take(stream, batch)
            ]
        )
        return batch

    try:
        return run_threads(writers, insert, warmup=warmup, duration=duration)
    finally:
        datastore.close()


# -- limit: bare INSERTs, no checks -------------------------------------------------------

_LIMIT_TABLE = """
CREATE TABLE events (
    position bigserial PRIMARY KEY, txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    id uuid NOT NULL, stream_id uuid NOT NULL, stream_type text NOT NULL, negotiation_id uuid,
    version integer NOT NULL, type text NOT NULL, schema_version integer NOT NULL,
    body bytea NOT NULL, data jsonb NOT NULL, occurred_on text NOT NULL,
    recorded_at timestamptz NOT NULL, recorded_by text NOT NULL, claimed_by text[] NOT NULL,
    source jsonb, note text, correlation_id uuid, causation_id uuid,
    content_digest bytea NOT NULL, hash bytea NOT NULL)
"""
_LIMIT_INSERT = """
INSERT INTO events (id, stream_id, stream_type, negotiation_id, version, type, schema_version,
    body, data, occurred_on, recorded_at, recorded_by, claimed_by, source, content_digest, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
"""


async def run_limit(url: str, work: Workload, writers: int, batch: int, warmup: float, duration: float) -> Measured:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(_LIMIT_TABLE)
    finally:
        await conn.close()
    pool = await create_pool(url, min_size=writers, max_size=writers)
    body = work.sample_body()
    digest = bytes(32)
    source = '{"outlet":"RBC","published_on":"2022-03-16","speaker":"Sergey Lavrov"}'
    choosers = [work.chooser(w) for w in range(writers)]

    def row(stream: uuid.UUID) -> tuple:
        return (
            uuid.uuid4(), stream, "issue", work.negotiation_of[stream], 1, "position.stated", 1,
            body, FACT.decode(), "2022-03-16", dt.datetime.now(dt.timezone.utc), "bench", ["RU"],
            source, digest, digest,
        )  # fmt: skip

    async def insert(worker: int) -> int:
        stream = choosers[worker].pick()
        async with pool.acquire() as conn:
            if batch == 1:
                await conn.execute(_LIMIT_INSERT, *row(stream))
            else:
                # asyncpg runs executemany as one atomic, pipelined transaction.
                await conn.executemany(_LIMIT_INSERT, [row(stream) for _ in range(batch)])
        return batch

    try:
        return await run_async(writers, insert, warmup=warmup, duration=duration)
    finally:
        await pool.close()


# -- schema: bare INSERTs into Parley's events table, as migrated ------------------------

_SCHEMA_INSERT = """
INSERT INTO events (id, stream_id, stream_type, negotiation_id, version, type, schema_version,
    body, data, occurred_on, recorded_at, recorded_by, claimed_by, source, content_digest, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7,
    $8 || convert_to(to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'UTF8') || $9,
    $10, $11, now(), $12, $13, $14, $15, $15)
"""


async def run_schema(url: str, work: Workload, writers: int, batch: int, warmup: float, duration: float) -> Measured:
    pool = await create_pool(url, min_size=writers, max_size=writers)
    # The trigger checks that the hashed body records the row's recorded_at: the
    # body's two pieces around it, as parley sends them (version 1 in every body).
    head, tail = body_pieces(work.pending(work.streams[0]))
    tail += b"1}"
    source = '{"outlet":"RBC","published_on":"2022-03-16","speaker":"Sergey Lavrov"}'
    versions = _Versions()
    choosers = [work.chooser(w) for w in range(writers)]

    def row(stream: uuid.UUID, version: int) -> tuple:
        return (
            uuid.uuid4(), stream, "issue", work.negotiation_of[stream], version, "position.stated", 1,
            head, tail, FACT.decode(), "2022-03-16", "bench", ["RU"], source, bytes(32),
        )  # fmt: skip

    async def insert(worker: int) -> int:
        stream = choosers[worker].pick()
        rows = [row(stream, v) for v in versions.take(stream, batch)]
        async with pool.acquire() as conn:
            if batch == 1:
                await conn.execute(_SCHEMA_INSERT, *rows[0])
            else:
                await conn.executemany(_SCHEMA_INSERT, rows)
        return batch

    try:
        return await run_async(writers, insert, warmup=warmup, duration=duration)
    finally:
        await pool.close()


# -- the run ------------------------------------------------------------------------------


async def measure_cell(server: str, work: Workload, system: str, writers: int, batch: int, warmup: float, duration: float) -> Measured:
    async with fresh_database(server, system, migrated=system in ("parley", "schema")) as url:
        if system == "parley":
            return await run_parley(url, work, writers, batch, warmup, duration)
        if system == "schema":
            return await run_schema(url, work, writers, batch, warmup, duration)
        if system == "peer":
            return await asyncio.to_thread(run_peer, url, work, writers, batch, warmup, duration)
        return await run_limit(url, work, writers, batch, warmup, duration)


async def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, nargs="*", default=list(WRITERS))
    parser.add_argument("--batches", type=int, nargs="*", default=list(BATCHES))
    parser.add_argument("--systems", nargs="*", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument(
        "--zipf-exponent", type=float, default=1.0, help="1: ~10%% of writes on the hottest stream; 0: uniform"
    )
    args = parser.parse_args()
    warmup, duration = (0.3, 1.5) if args.quick else (1.0, 8.0)
    work = Workload(exponent=args.zipf_exponent)

    with postgres_server(args.database_url) as server:
        version = await server_version(server)
        results: dict[tuple[int, int, str], Measured] = {}
        for writers in args.writers:
            for batch in args.batches:
                for system in args.systems:
                    progress(f"append: {system:6} writers={writers:<3} batch={batch:<3}")
                    measured = await measure_cell(server, work, system, writers, batch, warmup, duration)
                    if measured.errors:
                        progress(f"  {measured.errors} errors, first: {measured.first_error}")
                    results[writers, batch, system] = measured

    cells = []
    rows = []
    for writers in args.writers:
        for batch in args.batches:
            got = {s: results.get((writers, batch, s)) for s in SYSTEMS}
            rate = {s: m.items_per_second if m else float("nan") for s, m in got.items()}
            cell = {
                "writers": writers,
                "batch": batch,
                "vs_peer": rounded(ratio(rate["parley"], rate["peer"])),
                "of_limit": rounded(ratio(rate["parley"], rate["limit"])),
                "of_schema": rounded(ratio(rate["parley"], rate["schema"])),
                "schema_of_limit": rounded(ratio(rate["schema"], rate["limit"])),
            }
            row: list[object] = [writers, batch]
            for system, measured in got.items():
                if measured is None:
                    row += [float("nan")] * 3
                    continue
                cell[system] = {
                    "events_per_s": round(rate[system], 1),
                    "p50_ms": rounded(measured.latencies.p50_ms),
                    "p99_ms": rounded(measured.latencies.p99_ms),
                    "errors": measured.errors,
                }
                row += [rate[system], measured.latencies.p50_ms, measured.latencies.p99_ms]
            row += [
                ratio(rate["parley"], rate["peer"]),
                ratio(rate["parley"], rate["limit"]) * 100,
                ratio(rate["parley"], rate["schema"]) * 100,
                ratio(rate["schema"], rate["limit"]) * 100,
            ]
            rows.append(row)
            cells.append(cell)

    print_table(
        f"bench.append on PostgreSQL {version} ({'quick' if args.quick else f'{duration:.0f} s per cell'}; "
        "events/s, latency per append in ms)",
        ["writers", "batch", "parley/s", "p50", "p99", "peer/s", "p50", "p99", "limit/s", "p50", "p99", "schema/s", "p50",
         "p99", "x peer", "% limit", "% schema", "schema % limit"],
        rows,
    )
    emit_json(
        {
            "benchmark": "append",
            "quick": args.quick,
            "postgres": version,
            "machine": describe_machine(),
            "seconds_per_cell": duration,
            "zipf_exponent": args.zipf_exponent,
            "cells": cells,
        }
    )


if __name__ == "__main__":
    use_uvloop()
    asyncio.run(main())
