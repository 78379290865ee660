"""bench.lag — projection lag: from a command's commit to its effect in the issue status.

The shipped server (uvicorn subprocess, in-process projection runner) on a fresh
database. Its maximum command rate is measured first in the same run (wrk, 16
connections, as in bench.http); then commands are sent at half that rate, paced
(open loop), for a fixed time, by a process of its own; the probes, one command
every 50 ms (part of that rate), by the bench's main process, whose loop does
nothing else. Once a probe's response is back (the command has committed), the
issue_status read model is polled every millisecond until it shows the probe's
stream version. The lag is that wait (with 1 ms polling resolution). Alongside,
the wait until the event is readable by a gap-free log reader at all (its
transaction below the oldest one still running), which bounds what any projection
runner could do. No peer or limit: the target is absolute.
When a probe's event is not readable at its first look, the bench asks
pg_stat_activity which transaction is the oldest still running (the one that holds
the gap-free line back) and prints the probes' waits by what that was: a command,
a projection's batch, a sealing round (one sample per probe, at that instant).
It also prints how long after the response its first look came: the bench's own
delay, a floor under every figure it reports (with the load and the probes in one
loop, 2026-12-06, that was 120 ms at p50: the load's own work, hence the two
processes). Each look is one query.
A paced command that gets no answer at all (the connection closed or reset under
it: an httpx transport error) counts as failed, like one answered with another
status than 201; the failures are printed by kind.

    uv run python -m bench.lag [--quick] [--database-url URL] [--rate N]

Over 300 lines on purpose: the load, the probes and the report of one measurement
are kept together so the figure and the way it was taken cannot drift apart.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

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
from service.store.log_reader import GAP_FREE

PROBE_EVERY = 0.05
POLL_EVERY = 0.001

# The oldest transaction id still running in this database: no event committed after
# it began is readable by a gap-free reader until it ends.
_HOLDER_SQL = r"""
    SELECT application_name, regexp_replace(left(query, 200), '\s+', ' ', 'g') AS query
    FROM pg_stat_activity
    WHERE datname = current_database() AND backend_xid IS NOT NULL
    ORDER BY age(backend_xid) DESC LIMIT 1
"""
READABLE_AT_ONCE = "nothing (readable at once)"

# One round trip per look: is the event readable by a gap-free reader
# (EventStore.readable), and the issue's status view (issue_status.fetch_one), so
# that the bench's own polling loads the two cores it shares with the server as
# little as it can (it ran the two queries one after the other before).
_LOOK_SQL = f"""
    SELECT EXISTS (SELECT 1 FROM events WHERE id = $1 AND {GAP_FREE}) AS readable,
           (SELECT view_json FROM issue_status WHERE negotiation_id = $2 AND key = $3) AS view_json
"""


def holder_kind(row: asyncpg.Record | None) -> str:
    """What the oldest running transaction is doing, from its connection's name and statement."""
    if row is None:
        return "nothing running (between two looks)"
    application, query = row["application_name"] or "", row["query"] or ""
    if application.startswith("parley-projector:"):
        return f"projection batch ({application.split(':', 1)[1]})"
    if "ledger_" in query:
        return "sealing round"
    if any(word in query for word in ("parley_append", "idempotency", "SAVEPOINT", "now()")):
        return "command"
    return f"{application or 'unnamed'}: {query[:40]}"


class _Version(msgspec.Struct):
    version: int


_view = msgspec.json.Decoder(_Version)

async def max_command_rate(base_url: str, key: str, refs, seconds: float) -> float:
    posts = [_wrk.Prepared("POST", path, body) for path, body in command_bodies(refs, 4000, seed=3)]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    result = await asyncio.to_thread(_wrk.run, base_url, posts, headers, 16, seconds)
    return result.per_second


async def _recorded(http: httpx.AsyncClient, path: str, body: str, failures: Counter[str]) -> httpx.Response | None:
    """The 201 of one command, or None with the failure counted by kind."""
    try:
        response = await http.post(path, content=body, headers={"Content-Type": "application/json"})
    except httpx.TransportError as error:  # no answer: the connection closed, reset or timed out
        failures[type(error).__name__] += 1
        return None
    if response.status_code != 201:
        failures[f"HTTP {response.status_code}"] += 1
        return None
    return response


async def _paced(
    bodies: list[tuple[str, str]], interval: float, seconds: float, send: Callable[[str, str], Awaitable[None]]
) -> float:
    """`send` each body at its due time (open loop: `interval` apart, whatever the
    answers take) for `seconds`; every send awaited. The seconds spent sending."""
    pending: set[asyncio.Task] = set()
    started = now()
    for index, (path, body) in enumerate(bodies):
        due = started + index * interval
        if due - started >= seconds:
            break
        delay = due - now()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send(path, body))
        pending.add(task)
        task.add_done_callback(pending.discard)
    elapsed = now() - started
    await asyncio.gather(*pending)
    return elapsed


def _paced_commands(base_url: str, key: str, bodies: list[tuple[str, str]], rate: float, seconds: float,
                    ready, answers) -> None:
    """The paced load, in a process of its own (spawned): its httpx client's work
    never delays the probes' looks in the bench's main loop."""
    use_uvloop()
    answers.put(asyncio.run(_send_paced(base_url, key, bodies, rate, seconds, ready)))


async def _send_paced(base_url: str, key: str, bodies: list[tuple[str, str]], rate: float, seconds: float,
                      ready) -> dict:
    ok = 0
    failures: Counter[str] = Counter()  # by kind: "HTTP 503", "ReadError"
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30, limits=limits
    ) as http:

        async def command(path: str, body: str) -> None:
            nonlocal ok
            if await _recorded(http, path, body, failures) is not None:
                ok += 1

        ready.set()
        elapsed = await _paced(bodies, 1 / rate, seconds, command)
    return {"ok": ok, "failures": dict(failures), "elapsed": elapsed}


async def paced_load(base_url: str, key: str, refs, rate: float, seconds: float, database_url: str) -> dict:
    probes_per_second = 1 / PROBE_EVERY
    load_rate = max(rate - probes_per_second, 1.0)  # the probes are commands too: together, `rate`
    bodies = command_bodies(refs, max(100, int(load_rate * seconds) + 100), seed=4)
    probe_bodies = command_bodies(refs, int(seconds * probes_per_second) + 10, seed=5)
    lags = Latencies()
    readable = Latencies()
    held_by: dict[str, tuple[Latencies, Latencies]] = {}  # holder -> (readable waits, lags)
    first_look = Latencies()  # from the response to the first look's answer: the bench's own delay
    probes = {"ok": 0}
    failures: Counter[str] = Counter()  # by kind: "HTTP 503", "ReadError", "not projected in 30 s"
    spawn = multiprocessing.get_context("spawn")
    ready, answers = spawn.Event(), spawn.Queue()
    loader = spawn.Process(
        target=_paced_commands, args=(base_url, key, bodies, load_rate, seconds, ready, answers), daemon=True
    )
    loader.start()
    poller = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:

        async def probe(path: str, body: str) -> None:
            response = await _recorded(http, path, body, failures)
            if response is None:
                return
            committed = now()
            probes["ok"] += 1
            answer = response.json()
            event = answer["events"][-1]
            negotiation_id = uuid.UUID(answer["negotiation_id"])
            issue_key = msgspec.json.decode(body)["issue"]
            event_id = uuid.UUID(event["id"])
            readable_at = None
            holder = None
            while True:
                look = await poller.fetchrow(_LOOK_SQL, event_id, negotiation_id, issue_key)
                if holder is None and readable_at is None:
                    first_look.record(now() - committed)
                if readable_at is None and look["readable"]:
                    readable_at = now()
                    readable.record(readable_at - committed)
                if readable_at is None and holder is None:
                    holder = holder_kind(await poller.fetchrow(_HOLDER_SQL))
                view = look["view_json"]
                if view is not None and _view.decode(view).version >= event["version"]:
                    lags.record(now() - committed)
                    if readable_at is None:
                        readable_at = now()
                        readable.record(readable_at - committed)
                    waits, lagged = held_by.setdefault(holder or READABLE_AT_ONCE, (Latencies(), Latencies()))
                    waits.record(readable_at - committed)
                    lagged.record(now() - committed)
                    return
                if now() - committed > 30:
                    failures["not projected in 30 s"] += 1
                    return
                await asyncio.sleep(POLL_EVERY)

        if not await asyncio.to_thread(ready.wait, 120):
            raise RuntimeError("the paced load's process did not start")
        await _paced(probe_bodies, PROBE_EVERY, seconds, probe)
    await poller.close()
    load = await asyncio.to_thread(answers.get, True, 120)
    loader.join(timeout=30)
    failures.update(load["failures"])
    return {
        "achieved_per_s": (load["ok"] + probes["ok"]) / load["elapsed"], "failed": sum(failures.values()),
        "failures": dict(failures), "lags": lags, "readable": readable, "held_by": held_by, "first_look": first_look,
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
    held_by: dict[str, tuple[Latencies, Latencies]] = result["held_by"]
    first_look: Latencies = result["first_look"]
    # No look can come sooner than this: a floor under every figure above, the
    # bench's own (its loop and its poller on the cores it shares with the server).
    print(f"first look after the response (the bench's own delay): p50 {first_look.p50_ms:.1f} ms, "
          f"p99 {first_look.p99_ms:.1f} ms")
    print_table(
        "what held the probes' events back (the oldest running transaction at the first look; ms)",
        ["oldest transaction", "probes", "readable p50", "p99", "lag p50", "p99"],
        [[kind, len(waits.samples), waits.p50_ms, waits.p99_ms, lagged.p50_ms, lagged.p99_ms]
         for kind, (waits, lagged) in sorted(held_by.items(), key=lambda item: -len(item[1][0].samples))],
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
            "first_look_p50_ms": rounded(first_look.p50_ms),
            "first_look_p99_ms": rounded(first_look.p99_ms),
            "held_by": {
                kind: {"probes": len(waits.samples), "readable_p99_ms": rounded(waits.p99_ms),
                       "lag_p99_ms": rounded(lagged.p99_ms)}
                for kind, (waits, lagged) in held_by.items()
            },
        }
    )


if __name__ == "__main__":
    use_uvloop()
    asyncio.run(main())
