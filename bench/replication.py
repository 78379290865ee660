"""bench.replication — status reads/s of one node on the primary against two nodes
reading from a streaming hot standby, in one run, on one machine.

A primary and a streaming standby (service.local_cluster, the embedded binaries),
one seeded database, then `parley serve` nodes started as `parley dev cluster`
starts them, each configuration loaded in turn by wrk (one wrk per node, the
connections split between them) with GET /negotiations/{id}/issues/{key}:

- 1 node, primary:           every read on the primary (no PARLEY_READ_DATABASE_URL)
- 2 nodes, primary:          what a second node buys alone
- 2 nodes, primary + standby: reads from the standby (PARLEY_READ_DATABASE_URL)

Also, for the capacity model: commands/s on one node, the standby's replay lag under
that command load (commit on the primary → replayed on the standby, by LSN), and
read-your-writes through two nodes (write on node A, token read on node B).

    uv run python -m bench.replication [--quick] [--connections 64]

(--database-url does not apply: the benchmark makes its own primary and standby.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx

from bench import _wrk
from bench._harness import (
    Latencies,
    arguments,
    describe_machine,
    emit_json,
    percentile,
    print_table,
    progress,
    ratio,
    rounded,
    use_uvloop,
)
from bench._negotiations import command_bodies, seed, wait_until_projected
from bench._servers import free_port
from service.cli.dev_cluster import Node, Nodes, ensure_database
from service.local_cluster import LocalCluster

NEGOTIATIONS = 32
ISSUES_EACH = 8
DATABASE = "bench"


@contextlib.contextmanager
def nodes_running(nodes: Nodes, count: int, *, standby: bool) -> Iterator[list[Node]]:
    extra = {} if standby else {"PARLEY_READ_DATABASE_URL": ""}
    started = [nodes.start_serve(free_port(), **extra) for _ in range(count)]
    try:
        for node in started:
            nodes.wait_live(node)
        yield started
    finally:
        for node in started:
            nodes.stop(node)


def load(nodes: list[Node], requests: list[_wrk.Prepared], headers: dict[str, str], connections: int, seconds: float):
    """wrk on every node at once (the connections split between them); summed."""
    results: list[_wrk.WrkResult] = [None] * len(nodes)  # type: ignore[list-item]

    def one(i: int) -> None:
        results[i] = _wrk.run(nodes[i].base_url, requests, headers, max(1, connections // len(nodes)), seconds)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(nodes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_second = sum(r.per_second for r in results)
    return per_second, max(r.p50_ms for r in results), max(r.p99_ms for r in results), sum(
        r.non_2xx + r.socket_errors for r in results
    )


async def read_sources(node: Node, path: str, headers: dict[str, str], samples: int = 20) -> dict[str, int]:
    counted: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=node.base_url, headers=headers, timeout=30) as http:
        for _ in range(samples):
            source = (await http.get(path)).headers.get("Parley-Read-Source", "?")
            counted[source] = counted.get(source, 0) + 1
    return counted


async def replay_lag_under(cluster: LocalCluster, stop: threading.Event) -> list[float]:
    """Seconds from a WAL position on the primary to its replay on the standby,
    probed back to back while `stop` is not set."""
    primary = await asyncpg.connect(cluster.primary.url(DATABASE))
    standby = await asyncpg.connect(cluster.standbys[0].url(DATABASE))
    lags: list[float] = []
    try:
        while not stop.is_set():
            lsn = await primary.fetchval("SELECT pg_current_wal_flush_lsn()")
            started = time.perf_counter()
            while not await standby.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn):
                await asyncio.sleep(0.0005)
            lags.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)
    finally:
        await primary.close()
        await standby.close()
    return lags


async def read_your_writes(a: Node, b: Node, headers: dict[str, str], refs, count: int) -> dict:
    """Write on node A, read with its token on node B: latency of the pair's read."""
    latencies = Latencies()
    sources: dict[str, int] = {}
    seen = 0
    bodies = command_bodies(refs, count, seed=7)
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        for path, body in bodies:
            written = await http.post(a.base_url + path, content=body, headers={"Content-Type": "application/json"})
            written.raise_for_status()
            token = written.json()["consistency_token"]
            version = written.json()["events"][-1]["version"]
            issue_path = path.replace("/commands", "/issues/" + json.loads(body)["issue"])
            started = time.perf_counter()
            read = await http.get(b.base_url + issue_path, params={"consistency_token": token})
            latencies.record(time.perf_counter() - started)
            read.raise_for_status()
            seen += read.json()["version"] >= version
            source = read.headers.get("Parley-Read-Source", "?")
            sources[source] = sources.get(source, 0) + 1
    return {"pairs": count, "saw_their_write": seen, "sources": sources,
            "read_p50_ms": rounded(latencies.p50_ms), "read_p99_ms": rounded(latencies.p99_ms)}  # fmt: skip


async def measure(args) -> dict:
    seconds = 3 if args.quick else 10
    base = Path(tempfile.mkdtemp(prefix="bench-replication-"))
    cluster = LocalCluster.create(base, standbys=1)
    figures: dict = {}
    try:
        await ensure_database(cluster, DATABASE)
        version = await _version(cluster)
        nodes = Nodes(cluster, DATABASE, base / "data", f"pk_bench_{secrets.token_urlsafe(32)}")
        nodes.data_dir.mkdir()
        headers = {"Authorization": f"Bearer {nodes.admin_key}"}
        rows: list[list[object]] = []
        with nodes_running(nodes, 1, standby=False) as (node,):
            progress("replication: seeding negotiations and issues through the API")
            refs = await seed(node.base_url, nodes.admin_key, NEGOTIATIONS, ISSUES_EACH)
            await wait_until_projected(node.base_url, nodes.admin_key)
            gets = [_wrk.Prepared("GET", ref.status_path) for ref in refs]
            posts = [_wrk.Prepared("POST", path, body) for path, body in command_bodies(refs, 4000)]

            progress("replication: commands on one node, with the standby's replay lag probed meanwhile")
            stop = threading.Event()
            lag_task = asyncio.create_task(replay_lag_under(cluster, stop))
            commands = await asyncio.to_thread(
                load, [node], posts, {**headers, "Content-Type": "application/json"}, args.connections, seconds
            )
            stop.set()
            lags = await lag_task
            idle_stop = threading.Event()
            idle_task = asyncio.create_task(replay_lag_under(cluster, idle_stop))
            await asyncio.sleep(2)
            idle_stop.set()
            idle_lags = await idle_task
            await wait_until_projected(node.base_url, nodes.admin_key)
            figures["commands_one_node"] = {"per_s": round(commands[0], 1), "p50_ms": rounded(commands[1]),
                                            "p99_ms": rounded(commands[2]), "failed": commands[3]}  # fmt: skip
            figures["replay_lag_ms"] = {
                "under_commands": {"samples": len(lags), "p50": rounded(percentile(lags, 0.5) * 1000),
                                   "p99": rounded(percentile(lags, 0.99) * 1000), "max": rounded(max(lags) * 1000)},
                "idle": {"samples": len(idle_lags), "p50": rounded(percentile(idle_lags, 0.5) * 1000),
                         "p99": rounded(percentile(idle_lags, 0.99) * 1000)},
            }  # fmt: skip

        configurations = [("1 node, primary", 1, False), ("2 nodes, primary", 2, False),
                          ("2 nodes, primary + standby", 2, True)]  # fmt: skip
        reads: dict[str, dict] = {}
        for label, count, standby in configurations:
            with nodes_running(nodes, count, standby=standby) as running:
                if standby:
                    progress("replication: read-your-writes, node A → node B via the standby")
                    figures["read_your_writes"] = await read_your_writes(
                        running[0], running[1], headers, refs, 50 if args.quick else 200
                    )
                sources = await read_sources(running[-1], refs[0].status_path, headers)
                progress(f"replication: {label}: status reads at {args.connections} connections")
                per_second, p50, p99, failed = await asyncio.to_thread(
                    load, running, gets, headers, args.connections, seconds
                )
            reads[label] = {"per_s": round(per_second, 1), "p50_ms": rounded(p50), "p99_ms": rounded(p99),
                            "failed": failed, "served_by": sources}  # fmt: skip
            rows.append([label, per_second, p50, p99, failed, ", ".join(f"{k} {v}" for k, v in sources.items())])
        base_rate = reads["1 node, primary"]["per_s"]
        for row, label in zip(rows, reads):
            row.append(ratio(reads[label]["per_s"], base_rate))
            reads[label]["of_one_node"] = rounded(ratio(reads[label]["per_s"], base_rate))
        figures["reads"] = reads
        print_table(
            f"bench.replication on PostgreSQL {version} ({args.connections} connections in all, wrk, "
            f"{seconds} s per row; status reads/s, latency in ms)",
            ["configuration", "reads/s", "p50", "p99", "failed", "answered by (sample)", "x 1 node"],
            rows,
        )
        lag = figures["replay_lag_ms"]
        print(
            f"\ncommands on one node: {figures['commands_one_node']['per_s']:,.0f}/s; standby replay lag under them "
            f"p50 {lag['under_commands']['p50']} ms, p99 {lag['under_commands']['p99']} ms, "
            f"max {lag['under_commands']['max']} ms (idle p50 {lag['idle']['p50']} ms)"
        )
        ryw = figures["read_your_writes"]
        print(
            f"read-your-writes A→B: {ryw['saw_their_write']} of {ryw['pairs']} saw their write, answered by "
            f"{ryw['sources']}; token read p50 {ryw['read_p50_ms']} ms, p99 {ryw['read_p99_ms']} ms"
        )
        figures.update(postgres=version, seconds_per_row=seconds, connections=args.connections)
        return figures
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


async def _version(cluster: LocalCluster) -> str:
    conn = await asyncpg.connect(cluster.primary.url())
    try:
        return await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()


async def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    figures = await measure(args)
    emit_json({"benchmark": "replication", "quick": args.quick, "machine": describe_machine(), **figures})


if __name__ == "__main__":
    use_uvloop()
    asyncio.run(main())
