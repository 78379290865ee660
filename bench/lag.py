"""bench.lag — projection lag: from a command's commit to its effect in the issue status.

The shipped server (uvicorn subprocess, in-process projection runner) on a fresh
database. Its maximum command rate is measured first in the same run (wrk, 16
connections, as in bench.http); then commands are sent at half that rate, paced
(open loop), for a fixed time. Every 50 ms one of them is a probe: once its
response is back (the command has committed), the issue_status read model is
polled every millisecond until it shows the probe's stream version. The lag is
that wait (with 1 ms polling resolution). Alongside, the wait until the event is
readable by a gap-free log reader at all (its transaction below the oldest one
still running), which bounds what any projection runner could do. No peer or limit: the target is absolute.
A paced command that gets no answer at all (the connection closed or reset under
it: an httpx transport error) counts as failed, like one answered with another
status than 201; the failures are printed by kind.

    uv run python -m bench.lag [--quick] [--database-url URL] [--rate N]
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import asyncpg
import httpx
import msgspec

from bench import _wrk
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
    rounded,
    server_version,
    use_uvloop,
)
from bench._negotiations import command_bodies, seed, wait_until_projected
from bench._servers import parley_server
from projections.issue_status import fetch_one
from service.store.event_store import EventStore

PROBE_EVERY = 0.05
POLL_EVERY = 0.001


class _Version(msgspec.Struct):
    version: int


_view = msgspec.json.Decoder(_Version)

async def max_command_rate(base_url: str, key: str, refs, seconds: float) -> float:
    posts = [_wrk.Prepared("POST", path, body) for path, body in command_bodies(refs, 4000, seed=3)]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    result = await asyncio.to_thread(_wrk.run, base_url, posts, headers, 16, seconds)
    return result.per_second


async def paced_load(base_url: str, key: str, refs, rate: float, seconds: float, database_url: str) -> dict:
    bodies = command_bodies(refs, max(100, int(rate * seconds) + 100), seed=4)
    lags = Latencies()
    readable = Latencies()
    sent = {"ok": 0, "failed": 0}
    failures: Counter[str] = Counter()  # by kind: "HTTP 503", "ReadError", "not projected in 30 s"
    pending: set[asyncio.Task] = set()
    poller = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30, limits=limits
    ) as http:

        def failed(kind: str) -> None:
            sent["failed"] += 1
            failures[kind] += 1

        async def command(path: str, body: str, probe: bool) -> None:
            try:
                response = await http.post(path, content=body, headers={"Content-Type": "application/json"})
            except httpx.TransportError as error:  # no answer: the connection closed, reset or timed out
                failed(type(error).__name__)
                return
            if response.status_code != 201:
                failed(f"HTTP {response.status_code}")
                return
            sent["ok"] += 1
            if not probe:
                return
            committed = now()
            event = response.json()["events"][-1]
            negotiation_id = uuid.UUID(response.json()["negotiation_id"])
            issue_key = msgspec.json.decode(body)["issue"]
            event_id = uuid.UUID(event["id"])
            readable_at = None
            while True:
                if readable_at is None and await EventStore(poller).readable(event_id):
                    readable_at = now()
                    readable.record(readable_at - committed)
                view = await fetch_one(poller, negotiation_id, issue_key)
                if view is not None and _view.decode(view).version >= event["version"]:
                    lags.record(now() - committed)
                    if readable_at is None:
                        readable.record(now() - committed)
                    return
                if now() - committed > 30:
                    failed("not projected in 30 s")
                    return
                await asyncio.sleep(POLL_EVERY)

        started = now()
        next_probe = started
        for index, (path, body) in enumerate(bodies):
            due = started + index / rate
            if due - started >= seconds:
                break
            delay = due - now()
            if delay > 0:
                await asyncio.sleep(delay)
            probe = now() >= next_probe
            if probe:
                next_probe += PROBE_EVERY
            task = asyncio.create_task(command(path, body, probe))
            pending.add(task)
            task.add_done_callback(pending.discard)
        elapsed = now() - started
        await asyncio.gather(*pending)
    await poller.close()
    return {
        "achieved_per_s": sent["ok"] / elapsed, "failed": sent["failed"], "failures": dict(failures),
        "lags": lags, "readable": readable,
    }


async def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, help="commands/s to sustain (default: half the measured maximum)")
    args = parser.parse_args()
    seconds = 5 if args.quick else 30
    with postgres_server(args.database_url) as server:
        version = await server_version(server)
        async with fresh_database(server, "lag", migrated=True) as url:
            with parley_server(url) as parley:
                key = parley.admin_key or ""
                progress("lag: seeding")
                refs = await seed(parley.base_url, key, 32, 8)
                await wait_until_projected(parley.base_url, key)
                maximum = None
                rate = args.rate
                if rate is None:
                    progress("lag: measuring the maximum command rate (wrk, 16 connections)")
                    maximum = await max_command_rate(parley.base_url, key, refs, 2 if args.quick else 5)
                    rate = maximum / 2
                    await wait_until_projected(parley.base_url, key)
                progress(f"lag: {rate:.0f} commands/s for {seconds} s, probing every {PROBE_EVERY * 1000:.0f} ms")
                result = await paced_load(parley.base_url, key, refs, rate, seconds, url)
    lags: Latencies = result["lags"]
    readable: Latencies = result["readable"]
    p50, p99 = lags.p50_ms, lags.p99_ms
    worst = max(lags.samples) * 1000 if lags.samples else float("nan")
    print_table(
        f"bench.lag on PostgreSQL {version} ({seconds} s; lag from commit to visible in issue_status, ms)",
        ["max cmd/s", "target/s", "achieved/s", "probes", "p50", "p99", "max", "readable p50", "p99", "failed"],
        [[maximum if maximum is not None else float("nan"), rate, result["achieved_per_s"], len(lags.samples), p50, p99,
          worst, readable.p50_ms, readable.p99_ms, result["failed"]]],
    )  # fmt: skip
    if result["failures"]:
        print("failed: " + ", ".join(f"{count} {kind}" for kind, count in sorted(result["failures"].items())))
    emit_json(
        {
            "benchmark": "lag",
            "quick": args.quick,
            "postgres": version,
            "machine": describe_machine(),
            "seconds": seconds,
            "max_commands_per_s": rounded(maximum) if maximum is not None else None,
            "target_per_s": rounded(rate),
            "achieved_per_s": rounded(result["achieved_per_s"]),
            "probes": len(lags.samples),
            "lag_p50_ms": rounded(p50),
            "lag_p99_ms": rounded(p99),
            "lag_max_ms": rounded(worst),
            "log_readable_p50_ms": rounded(readable.p50_ms),
            "log_readable_p99_ms": rounded(readable.p99_ms),
            "failed": result["failed"],
            "failures": result["failures"],
        }
    )


if __name__ == "__main__":
    use_uvloop()
    asyncio.run(main())
