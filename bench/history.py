"""bench.history — command and `as_of` latency on issues with 10, 1,000 and 100,000
events (`--quick`: 10, 1,000 and 10,000).

The shipped server (uvicorn subprocess) on a fresh database. One negotiation, one
issue per size; each issue gets a real first position through the API, then is
extended with copies of it (bench._dataset.extend_stream: chained and versioned as
the store would). Once the projections have caught up, requests are sent one at a
time: POST a position.stated on the issue, and GET the issue with `as_of` (time
travel, computed from the log). The issue with 10 events is the baseline: the
target is the 100,000-event figure within 1.5x of it.

    uv run python -m bench.history [--quick] [--database-url URL]
"""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg

from bench._dataset import extend_stream
from bench._harness import (
    Latencies,
    arguments,
    describe_machine,
    emit_json,
    fresh_database,
    now,
    postgres_server,
    print_table,
    progress,
    ratio,
    rounded,
    server_version,
    use_uvloop,
)
from bench._negotiations import client, open_negotiation, position, record, wait_until_projected
from bench._servers import parley_server
from domain.issue import issue_stream_id
from service.db import create_pool
from service.store.event_store import EventStore

DATES = [f"2022-03-{d:02d}" for d in range(1, 29)]
AS_OF = "2022-03-15"


async def build_issue(http, url: str, negotiation_id: str, key: str, events: int) -> None:
    await record(http, negotiation_id, {"type": "issue.raised", "occurred_on": "2022-03-01", "issue": key,
                                        "title": key, "category": "territory"})  # fmt: skip
    await record(http, negotiation_id, position(key, 1))
    if events <= 2:
        return
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        stream = issue_stream_id(uuid.UUID(negotiation_id), key)
        like = (await EventStore(pool).read_stream(stream, 2, 2))[0]
    finally:
        await pool.close()
    await extend_stream(url, like, events - 2, DATES)


async def timed(samples: int, call) -> Latencies:
    latencies = Latencies()
    for n in range(samples):
        started = now()
        await call(n)
        latencies.record(now() - started)
    return latencies


async def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--samples", type=int, help="requests per figure (default 40, 5 at 100,000 events; --quick 10)"
    )
    args = parser.parse_args()
    sizes = (10, 1_000, 10_000) if args.quick else (10, 1_000, 100_000)
    samples = args.samples or (10 if args.quick else 40)
    results: dict[int, dict[str, Latencies]] = {}
    with postgres_server(args.database_url) as server:
        version = await server_version(server)
        async with fresh_database(server, "history", migrated=True) as url:
            with parley_server(url) as parley:
                key = parley.admin_key or ""
                async with client(parley.base_url, key) as http:
                    negotiation_id = await open_negotiation(http, 0, uuid.uuid4().hex[:6])
                    for size in sizes:
                        progress(f"history: building an issue of {size:,} events")
                        await build_issue(http, url, negotiation_id, f"size-{size}", size)
                    progress("history: waiting for the projections to catch up")
                    await wait_until_projected(parley.base_url, key, timeout=900)
                    for size in sizes:
                        issue = f"size-{size}"
                        # Without snapshots a request costs seconds at 100,000 events: fewer there.
                        count = samples if size < 100_000 or args.samples else 5
                        progress(f"history: {count} commands and {count} as_of reads on {issue}")
                        # One warm-up of each, so no figure carries a first-call cost.
                        await record(http, negotiation_id, position(issue, 0))
                        await http.get(f"/negotiations/{negotiation_id}/issues/{issue}", params={"as_of": AS_OF})

                        async def command(n: int, issue: str = issue) -> None:
                            await record(http, negotiation_id, position(issue, n))

                        async def as_of(n: int, issue: str = issue) -> None:
                            response = await http.get(
                                f"/negotiations/{negotiation_id}/issues/{issue}", params={"as_of": AS_OF}
                            )
                            response.raise_for_status()

                        results[size] = {"command": await timed(count, command), "as_of": await timed(count, as_of)}

    base = results[sizes[0]]
    rows = []
    figures = {}
    for size in sizes:
        got = results[size]
        rows.append([size, got["command"].p50_ms, got["command"].p99_ms,
                     ratio(got["command"].p50_ms, base["command"].p50_ms),
                     got["as_of"].p50_ms, got["as_of"].p99_ms, ratio(got["as_of"].p50_ms, base["as_of"].p50_ms)])  # fmt: skip
        figures[str(size)] = {
            kind: {"p50_ms": rounded(lat.p50_ms), "p99_ms": rounded(lat.p99_ms),
                   "vs_smallest_p50": rounded(ratio(lat.p50_ms, base[kind].p50_ms))}
            for kind, lat in got.items()
        }  # fmt: skip
    print_table(
        f"bench.history on PostgreSQL {version} (sequential requests: {samples} per figure, "
        f"5 at 100,000 events; ms)",
        ["events", "command p50", "p99", "x smallest", "as_of p50", "p99", "x smallest"],
        rows,
    )
    emit_json({"benchmark": "history", "quick": args.quick, "postgres": version, "machine": describe_machine(),
               "samples": samples, "as_of": AS_OF, "sizes": figures})  # fmt: skip


if __name__ == "__main__":
    use_uvloop()
    asyncio.run(main())
