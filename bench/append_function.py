"""bench.append_function — one call of `parley_append`, as migrated against a candidate.

CPU only: one connection at a time, `synchronous_commit = off`, no concurrency, so
the figure is the function's own work and not the machine's flush or lock waits.
Both are defined side by side in one fresh, migrated database, each in its own
schema (`current`: the body of the latest migration defining it; `candidate`: the
file given, a `CREATE [OR REPLACE] FUNCTION parley_append(...)` with the same
signature), and picked by each connection's search_path; the same
`service.store.append.append_in` drives both. Rounds alternate between them, so a
load swing on the shared machine hits both; the tables are analyzed after the
warm-up round, as autovacuum would a live table (without statistics the planner
takes the young events table for empty, and a cached plan scans it whole).

    uv run --group bench python -m bench.append_function --candidate FILE.sql [--quick] [--database-url URL]
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import asyncpg

from bench._harness import (
    arguments,
    fresh_database,
    postgres_server,
    print_table,
    progress,
    ratio,
)
from bench.append import Workload
from service.migrate import available_migrations
from service.store.append import append_in

SCHEMAS = ("current", "candidate")


def _or_replace(text: str) -> str:
    return text.replace("CREATE FUNCTION parley_append(", "CREATE OR REPLACE FUNCTION parley_append(")


def current_function() -> str:
    """The latest migration that defines parley_append (0060 today)."""
    return _or_replace([m.sql for m in available_migrations() if "FUNCTION parley_append(" in m.sql][-1])


async def _connection(url: str, schema: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url)
    await conn.execute(f"SET search_path = {schema}, public")
    await conn.execute("SET synchronous_commit = off")
    return conn


async def measure(url: str, candidate: str, calls: int, rounds: int, batches: tuple[int, ...]) -> list[list[object]]:
    work = Workload()
    setup = await asyncpg.connect(url)
    for schema, text in zip(SCHEMAS, (current_function(), _or_replace(candidate))):
        await setup.execute(f"CREATE SCHEMA {schema}")
        await setup.execute(f"SET search_path = {schema}, public")
        await setup.execute(text)
    await setup.close()
    conns = {schema: await _connection(url, schema) for schema in SCHEMAS}
    rows = []
    try:
        for batch in batches:
            per_call: dict[str, list[float]] = {schema: [] for schema in SCHEMAS}
            for round_ in range(rounds + 1):
                for schema, conn in conns.items():
                    streams = work.streams[:calls]  # every head exists after the warm-up round
                    started = time.perf_counter()
                    for stream in streams:
                        await append_in(conn, [work.pending(stream) for _ in range(batch)], {}, wake_readers=False)
                    if round_:  # round 0 warms caches and creates the heads
                        per_call[schema].append((time.perf_counter() - started) / calls * 1e6)
                if not round_:
                    await conns["current"].execute("ANALYZE events; ANALYZE streams")
            old, new = (statistics.median(per_call[s]) for s in SCHEMAS)
            rows.append([batch, round(old), round(new), round(ratio(new, old), 3), round(ratio(old, new), 2)])
            progress(f"batch {batch}: " + " / ".join(f"{s} {[round(t) for t in per_call[s]]}" for s in SCHEMAS))
    finally:
        for conn in conns.values():
            await conn.close()
    return rows


async def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--candidate", type=Path, required=True, help="SQL defining the candidate parley_append")
    options = parser.parse_args()
    candidate = options.candidate.read_text()
    calls, rounds = (200, 3) if options.quick else (1000, 7)
    with postgres_server(options.database_url) as server:
        async with fresh_database(server, "append_function", migrated=True) as url:
            rows = await measure(url, candidate, calls, rounds, (1, 10))
    print_table(
        f"parley_append, µs per call (median of {rounds} alternating rounds of {calls} calls, "
        "one connection, synchronous_commit off)",
        ["batch", "current µs", "candidate µs", "candidate/current", "speed-up"],
        rows,
    )


if __name__ == "__main__":
    asyncio.run(main())
