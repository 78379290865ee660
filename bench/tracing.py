"""bench.tracing — what tracing costs bench.http's load: the shipped app with
tracing off, with tracing on (spans to the SDK's in-memory exporter behind the
batch processor, bench/traced_app.py), and optionally the code of another
checkout (`--before DIR`, e.g. a `git worktree` of the commit before issue 18),
each a uvicorn subprocess on its own fresh database of the same PostgreSQL,
loaded in turn by wrk with bench.http's requests. Each cell is measured in
`--rounds` rounds with the order of the variants rotated, and the median kept, so
a machine whose load drifts treats every variant alike.

    uv run python -m bench.tracing [--quick] [--before DIR] [--rounds N] [--connections 1 16]
    uv run python -m bench.tracing --in-process

`--in-process` measures instead, without a server or database, what tracing off
leaves on every request: the request-id middleware around a bare ASGI app
(min of 7 runs of 20,000 requests), and one `tracing.span()` when off against
OpenTelemetry's own no-op span.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

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
from bench._negotiations import seed, wait_until_projected
from bench._servers import RunningServer, _uvicorn_command, _wait_until_healthy, free_port, new_admin_key
from bench.http import ISSUES_EACH, NEGOTIATIONS, parley_requests


@contextlib.contextmanager
def _parley(database_url: str, factory: str, source: Path | None) -> Iterator[RunningServer]:
    """bench._servers.parley_server, with the factory named and the code taken
    from `source` (another checkout) when given."""
    key, port = new_admin_key(), free_port()
    env = {**os.environ, "PARLEY_DATABASE_URL": database_url, "PARLEY_ADMIN_KEY": key,
           "PARLEY_DATA_DIR": tempfile.mkdtemp(prefix="bench-tracing-data-"), "PARLEY_LOG_LEVEL": "WARNING"}  # fmt: skip
    for name in [n for n in env if n.startswith("OTEL_")]:
        del env[name]  # "off" means off, whatever the caller's shell says
    if source is not None:
        env["PYTHONPATH"] = str(source)
    log = tempfile.NamedTemporaryFile(prefix="bench-tracing-", suffix=".log", delete=False)
    process = subprocess.Popen(_uvicorn_command(factory, port), env=env, cwd=source, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(base_url + "/health/live", process, log.name)
        yield RunningServer(base_url, process, key)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        tail = Path(log.name).read_text(errors="replace").strip().splitlines()[-1:]
        if tail and "spans exported" in tail[0]:
            progress(tail[0])


def _migrate_with(source: Path, database_url: str) -> None:
    """`parley migrate` of another checkout, on its own database."""
    env = {**os.environ, "PYTHONPATH": str(source), "PARLEY_DATABASE_URL": database_url}
    subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, cwd=source, check=True,
                   stdout=subprocess.DEVNULL)


async def measure(args) -> dict:
    seconds = 3 if args.quick else 10
    variants: list[tuple[str, str, Path | None]] = []
    if args.before:
        variants.append(("before", "service.http.app:create_app_from_env", Path(args.before).resolve()))
    variants += [("off", "service.http.app:create_app_from_env", None), ("on", "bench.traced_app:create_app_from_env", None)]
    results: dict[tuple[str, str, int], list[_wrk.WrkResult]] = {}
    with postgres_server(args.database_url) as server:
        async with contextlib.AsyncExitStack() as stack:
            version = await server_version(server)
            servers: dict[str, RunningServer] = {}
            requests = {}
            for name, factory, source in variants:
                # Each checkout's database has that checkout's schema: the code of
                # `--before` may predate migrations of this one.
                url = await stack.enter_async_context(fresh_database(server, f"tracing_{name}", migrated=source is None))
                if source is not None:
                    _migrate_with(source, url)
                servers[name] = stack.enter_context(_parley(url, factory, source))
                progress(f"tracing: seeding {name}")
                refs = await seed(servers[name].base_url, servers[name].admin_key or "", NEGOTIATIONS, ISSUES_EACH)
                await wait_until_projected(servers[name].base_url, servers[name].admin_key or "")
                requests[name] = parley_requests(refs, 4000)
            for connections in args.connections:
                for round_number in range(args.rounds):
                    order = variants[round_number % len(variants):] + variants[: round_number % len(variants)]
                    for name, _, _ in order:
                        running, (posts, gets) = servers[name], requests[name]
                        headers = {"Authorization": f"Bearer {running.admin_key}", "Content-Type": "application/json"}
                        progress(f"tracing: {connections} connections, round {round_number + 1}: {name} POST, GET")
                        results.setdefault(("commands", name, connections), []).append(
                            _wrk.run(running.base_url, posts, headers, connections, seconds))
                        await wait_until_projected(running.base_url, running.admin_key or "")
                        results.setdefault(("status reads", name, connections), []).append(
                            _wrk.run(running.base_url, gets, headers, connections, seconds))  # fmt: skip
    names = [name for name, _, _ in variants]
    rows, figures = [], {}
    for (kind, name, connections), runs in results.items():
        if name != names[0]:
            continue
        per_s = {n: statistics.median(r.per_second for r in results[(kind, n, connections)]) for n in names}
        p50 = {n: statistics.median(r.p50_ms for r in results[(kind, n, connections)]) for n in names}
        errors = sum(r.non_2xx + r.socket_errors for n in names for r in results[(kind, n, connections)])
        base = "before" if "before" in names else "off"
        rows.append([kind, connections, *(per_s[n] for n in names), *(p50[n] for n in names),
                     *(ratio(per_s[n], per_s[base]) * 100 for n in names if n != base), errors])  # fmt: skip
        figures[f"{kind} @{connections}"] = {
            n: {"per_s": [round(r.per_second, 1) for r in results[(kind, n, connections)]], "median_per_s": round(per_s[n], 1),
                "p50_ms": rounded(p50[n])} for n in names
        } | {"errors": errors}  # fmt: skip
    base = "before" if "before" in names else "off"
    print_table(
        f"bench.tracing on PostgreSQL {version} (wrk, {seconds} s per cell, median of {args.rounds} rounds; "
        "requests/s, p50 in ms)",
        ["route", "conns", *(f"{n}/s" for n in names), *(f"p50 {n}" for n in names),
         *(f"% {n}/{base}" for n in names if n != base), "errors"],
        rows,
    )  # fmt: skip
    return {"postgres": version, "seconds_per_cell": seconds, "rounds": args.rounds, "cells": figures}


async def _metrics_per_request(per_request) -> dict:  # type: ignore[no-untyped-def]
    """What the HTTP metrics (issue 18 item 1: the Prometheus plugin's middleware,
    service/http/metrics.py) add to a request: one Litestar route with and without it."""
    from litestar import Litestar, get

    from service.http.metrics import PROMETHEUS

    @get("/x", sync_to_thread=False)
    def route() -> str:
        return "ok"

    figures = {}
    for name, app in (("litestar_route_us", Litestar([route])),
                      ("litestar_route_metrics_us", Litestar([route], middleware=[PROMETHEUS.middleware]))):
        async def with_app(scope, receive, send, app=app) -> None:  # type: ignore[no-untyped-def]
            await app({**scope, "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
                       "raw_path": b"/x", "root_path": "", "query_string": b"", "client": ("127.0.0.1", 1),
                       "server": ("127.0.0.1", 80), "state": {}, "app": app}, receive, send)  # fmt: skip
        figures[name] = min([await per_request(with_app) for _ in range(7)])
    return figures


async def in_process() -> dict:
    import logging
    import timeit

    from opentelemetry import trace

    from service import logs, tracing
    from service.http.request_id import request_id_middleware

    async def bare(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message) -> None:  # type: ignore[no-untyped-def]
        pass

    async def per_request(app, n: int = 20_000) -> float:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        for _ in range(n):
            await app({"type": "http", "method": "GET", "path": "/x", "path_template": "/x", "headers": []}, receive, send)
        return (time.perf_counter() - started) / n * 1e6

    logs.configure({})
    wrapped = request_id_middleware(bare)
    figures = {"bare_us": min([await per_request(bare) for _ in range(7)]),
               "request_id_us": min([await per_request(wrapped) for _ in range(7)])}  # fmt: skip
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.handlers[0].setStream(open(os.devnull, "w"))  # noqa: SIM115
    figures["request_id_info_log_us"] = min([await per_request(wrapped) for _ in range(7)])
    noop = trace.NoOpTracer()

    def ours() -> None:
        with tracing.span("parley.decide", {"parley.command": "x", "parley.index": 0}):
            pass

    def theirs() -> None:
        with noop.start_as_current_span("parley.decide", attributes={"parley.command": "x", "parley.index": 0}):
            pass

    figures.update(await _metrics_per_request(per_request))
    figures["span_off_us"] = timeit.timeit(ours, number=200_000) / 200_000 * 1e6
    figures["otel_noop_span_us"] = timeit.timeit(theirs, number=200_000) / 200_000 * 1e6
    print_table("bench.tracing --in-process (µs)", ["what", "µs"], [
        ["bare ASGI app, per request", figures["bare_us"]],
        ["with the request-id middleware (WARNING)", figures["request_id_us"]],
        ["with it at PARLEY_LOG_LEVEL=INFO (one line per request)", figures["request_id_info_log_us"]],
        ["a Litestar route, per request", figures["litestar_route_us"]],
        ["the same with the Prometheus middleware (counted)", figures["litestar_route_metrics_us"]],
        ["tracing.span() with tracing off", figures["span_off_us"]],
        ["OpenTelemetry's no-op span (what an API-only tracer costs)", figures["otel_noop_span_us"]],
    ])  # fmt: skip
    return {name: round(value, 3) for name, value in figures.items()}


async def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="a checkout of the code to compare with (its own uvicorn, same database server)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, nargs="*", default=[1, 16])
    parser.add_argument("--in-process", action="store_true", help="the per-request cost of tracing off, no server")
    args = parser.parse_args()
    if args.in_process:
        emit_json({"benchmark": "tracing-in-process", "machine": describe_machine(), **await in_process()})
        return
    figures = await measure(args)
    emit_json({"benchmark": "tracing", "quick": args.quick, "before": args.before, "machine": describe_machine(),
               **figures})  # fmt: skip


if __name__ == "__main__":
    use_uvloop()
    sys.exit(asyncio.run(main()))
