"""bench.http — the shipped HTTP server against a bare Litestar app, loaded by wrk.

Two uvicorn subprocesses with the same settings, each on its own fresh database of
the same PostgreSQL, loaded in turn by wrk (a separate process, one thread) at 1,
16 and 64 connections:

- parley: `service.http.app:create_app_from_env` (what `parley serve` runs: bearer
  auth, domain decide, event store, in-process projection runner and sealer).
  POST /negotiations/{id}/commands (position.stated, spread over many issues)
  and GET /negotiations/{id}/issues/{key} (the projected status view).
- limit:  `bench.limit_app` — POST doing one INSERT, GET doing one SELECT by key.

    uv run python -m bench.http [--quick] [--database-url URL]
"""

from __future__ import annotations

import asyncio
import json
import random

import httpx

from bench import _wrk
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
from bench._negotiations import command_bodies, position, seed, wait_until_projected
from bench._servers import limit_server, parley_server

CONNECTIONS = (1, 16, 64)
NEGOTIATIONS = 32
ISSUES_EACH = 8


def parley_requests(refs, count: int) -> tuple[list[_wrk.Prepared], list[_wrk.Prepared]]:
    posts = [_wrk.Prepared("POST", path, body) for path, body in command_bodies(refs, count)]
    shuffled = list(refs)
    random.Random(2).shuffle(shuffled)
    gets = [_wrk.Prepared("GET", ref.status_path) for ref in shuffled]
    return posts, gets


def limit_requests(keys: list[str], count: int) -> tuple[list[_wrk.Prepared], list[_wrk.Prepared]]:
    # The same JSON bodies as Parley's commands, one row per key.
    body = json.dumps(position("issue-0", 1))
    posts = [_wrk.Prepared("POST", f"/rows/{keys[i % len(keys)]}", body) for i in range(count)]
    gets = [_wrk.Prepared("GET", f"/rows/{key}") for key in keys]
    return posts, gets


async def measure(args) -> dict:
    seconds = 3 if args.quick else 10
    rows: list[list[object]] = []
    figures: dict = {"connections": {}}
    with postgres_server(args.database_url) as server:
        version = await server_version(server)
        async with fresh_database(server, "http_parley", migrated=True) as parley_url, fresh_database(
            server, "http_limit"
        ) as limit_url:
            with parley_server(parley_url) as parley, limit_server(limit_url) as limit:
                progress("http: seeding negotiations and issues through the API")
                refs = await seed(parley.base_url, parley.admin_key or "", NEGOTIATIONS, ISSUES_EACH)
                await wait_until_projected(parley.base_url, parley.admin_key or "")
                parley_posts, parley_gets = parley_requests(refs, 4000)
                parley_headers = {"Authorization": f"Bearer {parley.admin_key}", "Content-Type": "application/json"}
                keys = [f"{ref.negotiation_id}:{ref.key}" for ref in refs]
                limit_posts, limit_gets = limit_requests(keys, 4000)
                limit_headers = {"Content-Type": "application/json"}
                # Rows for the limit's SELECT, written through its own route.
                async with httpx.AsyncClient(base_url=limit.base_url) as http:
                    for key in keys:
                        (await http.post(f"/rows/{key}", content=limit_posts[0].body, headers=limit_headers)).raise_for_status()

                for connections in args.connections:
                    progress(f"http: {connections} connections: parley POST")
                    p_post = _wrk.run(parley.base_url, parley_posts, parley_headers, connections, seconds)
                    progress(f"http: {connections} connections: limit POST")
                    l_post = _wrk.run(limit.base_url, limit_posts, limit_headers, connections, seconds)
                    # Reads are measured on caught-up projections, not against the catch-up.
                    await wait_until_projected(parley.base_url, parley.admin_key or "")
                    progress(f"http: {connections} connections: parley GET")
                    p_get = _wrk.run(parley.base_url, parley_gets, parley_headers, connections, seconds)
                    progress(f"http: {connections} connections: limit GET")
                    l_get = _wrk.run(limit.base_url, limit_gets, limit_headers, connections, seconds)
                    for kind, mine, bare in (("commands", p_post, l_post), ("status reads", p_get, l_get)):
                        rows.append(
                            [kind, connections, mine.per_second, mine.p50_ms, mine.p99_ms, mine.non_2xx,
                             bare.per_second, bare.p50_ms, bare.p99_ms, ratio(mine.per_second, bare.per_second) * 100]
                        )  # fmt: skip
                    figures["connections"][str(connections)] = {
                        kind: {
                            "parley": {"per_s": round(mine.per_second, 1), "p50_ms": rounded(mine.p50_ms),
                                       "p99_ms": rounded(mine.p99_ms), "non_2xx": mine.non_2xx,
                                       "socket_errors": mine.socket_errors},
                            "limit": {"per_s": round(bare.per_second, 1), "p50_ms": rounded(bare.p50_ms),
                                      "p99_ms": rounded(bare.p99_ms), "non_2xx": bare.non_2xx},
                            "of_limit": rounded(ratio(mine.per_second, bare.per_second)),
                        }
                        for kind, mine, bare in (("commands", p_post, l_post), ("reads", p_get, l_get))
                    }  # fmt: skip
    figures.update(postgres=version, seconds_per_cell=seconds)
    print_table(
        f"bench.http on PostgreSQL {version} (wrk, {seconds} s per cell; requests/s, latency in ms)",
        ["route", "conns", "parley/s", "p50", "p99", "non-2xx", "limit/s", "p50", "p99", "% limit"],
        rows,
    )
    return figures


async def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, nargs="*", default=list(CONNECTIONS))
    args = parser.parse_args()
    figures = await measure(args)
    emit_json({"benchmark": "http", "quick": args.quick, "machine": describe_machine(), **figures})


if __name__ == "__main__":
    use_uvloop()
    asyncio.run(main())
