"""bench.contention — 8 concurrent commands on one 10,000-event issue vs one alone.

The shipped server (uvicorn subprocess) on a fresh database. One negotiation with
one issue extended to 10,000 events (bench._dataset.extend_stream, chained and
versioned as the store would). Once the projections have caught up and one
command has warmed the aggregate cache: `--rounds` rounds of one command alone,
then the same number of rounds of 8 commands sent at once (8 connections, each a
`position.stated` on that issue: they race for the stream's head). The figure is
the p50 latency of a command in a burst of 8 against the p50 of one alone; the
target is within 2x.

    uv run python -m bench.contention [--quick] [--database-url URL] [--rounds N]
"""

from __future__ import annotations

import asyncio
import uuid

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
from bench.history import build_issue

CONCURRENT = 8


async def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, help="rounds of each (default 20; --quick 5)")
    parser.add_argument("--events", type=int, default=10_000, help="events on the issue (default 10,000)")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 20)
    with postgres_server(args.database_url) as server:
        version = await server_version(server)
        async with fresh_database(server, "contention", migrated=True) as url:
            with parley_server(url) as parley:
                key = parley.admin_key or ""
                clients = [client(parley.base_url, key) for _ in range(CONCURRENT)]
                try:
                    http = clients[0]
                    negotiation_id = await open_negotiation(http, 0, uuid.uuid4().hex[:6])
                    issue = "long"
                    progress(f"contention: building an issue of {args.events:,} events")
                    await build_issue(http, url, negotiation_id, issue, args.events)
                    progress("contention: waiting for the projections to catch up")
                    await wait_until_projected(parley.base_url, key, timeout=900)
                    for c in clients:  # warm every connection and the aggregate cache
                        await record(c, negotiation_id, position(issue, 0))
                    counter = iter(range(1, 10**9))

                    async def one(c) -> float:
                        started = now()
                        await record(c, negotiation_id, position(issue, next(counter)))
                        return now() - started

                    alone, burst = Latencies(), Latencies()
                    progress(f"contention: {rounds} commands alone, {rounds} bursts of {CONCURRENT}")
                    for _ in range(rounds):
                        alone.record(await one(http))
                    for _ in range(rounds):
                        for seconds in await asyncio.gather(*(one(c) for c in clients)):
                            burst.record(seconds)
                finally:
                    for c in clients:
                        await c.aclose()
    rows = [
        ["1 alone", alone.p50_ms, alone.p99_ms, 1.0],
        [f"{CONCURRENT} at once", burst.p50_ms, burst.p99_ms, ratio(burst.p50_ms, alone.p50_ms)],
    ]
    print_table(
        f"bench.contention on PostgreSQL {version} (one issue of {args.events:,} events; {rounds} rounds; ms)",
        ["commands", "p50", "p99", "x alone"],
        rows,
    )
    emit_json({"benchmark": "contention", "quick": args.quick, "postgres": version, "machine": describe_machine(),
               "events": args.events, "rounds": rounds,
               "alone": {"p50_ms": rounded(alone.p50_ms), "p99_ms": rounded(alone.p99_ms)},
               "burst": {"p50_ms": rounded(burst.p50_ms), "p99_ms": rounded(burst.p99_ms)},
               "burst_vs_alone_p50": rounded(ratio(burst.p50_ms, alone.p50_ms))})  # fmt: skip


if __name__ == "__main__":
    use_uvloop()
    asyncio.run(main())
