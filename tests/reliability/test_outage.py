"""Database outage: PostgreSQL stopped under load and started again.

A dedicated embedded PostgreSQL (never the shared test server) serves a real
`parley serve`. While it is down every answer is a quick 503 problem (no 500, no
hang); when it is back the service recovers by itself (no restart), every
acknowledged write is in the log exactly once, and the projection runner catches up.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import shutil
import signal
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from service import embedded
from service.migrate import migrate
from tests.reliability.conftest import (
    PARTIES,
    free_port,
    kill_group,
    make_keys,
    problem_of,
    start_serve,
    wait_ready,
)
from tests.reliability.test_crash import ISSUES, _command, _log_summaries, wait_projected

# Slowest acceptable answer while the database is down.
QUICK = 5.0


class Load:
    def __init__(self) -> None:
        self.answers: list[tuple[float, float, int, str, str]] = []  # start, seconds, status, kind, body
        self.acked: dict[str, list[str]] = {}
        self.counter = itertools.count()
        self.errors: list[str] = []

    async def writer(self, base: str, headers: dict[str, str], seed: int, stop: asyncio.Event) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=QUICK * 4) as http:
            while not stop.is_set():
                command = _command(next(self.counter), rng)
                started = time.monotonic()
                try:
                    response = await http.post("/negotiations/outage/commands", json=command)
                except httpx.HTTPError as error:
                    self.errors.append(f"write: {type(error).__name__}: {error}")
                    await asyncio.sleep(0.1)
                    continue
                self.answers.append((started, time.monotonic() - started, response.status_code, "write", response.text))
                if response.status_code == 201:
                    self.acked[command["summary"]] = [e["id"] for e in response.json()["events"]]
                else:
                    await asyncio.sleep(0.05)

    async def reader(self, base: str, headers: dict[str, str], stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=QUICK * 4) as http:
            for n in itertools.count():
                if stop.is_set():
                    return
                path = ["/negotiations/outage", "/negotiations/outage/issues/security", "/negotiations",
                        "/health/ready"][n % 4]
                started = time.monotonic()
                try:
                    response = await http.get(path)
                except httpx.HTTPError as error:
                    self.errors.append(f"read: {type(error).__name__}: {error}")
                    await asyncio.sleep(0.1)
                    continue
                self.answers.append((started, time.monotonic() - started, response.status_code, path, response.text))
                await asyncio.sleep(0.02)


@pytest.mark.timeout(300)
async def test_postgres_stopped_under_load_gives_quick_503s_and_recovers_alone(tmp_path: Path, processes):
    # Not under pytest's tmp_path: the server runs as another user, which must
    # reach its directory even when pytest's base directory is private (0700).
    db_dir = Path(tempfile.mkdtemp(prefix="parley-outage-pg-"))
    server = embedded.start(db_dir, delete_on_stop=True)
    try:
        conn = await asyncpg.connect(server.url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        keys = await make_keys(server.url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp_path / "serve.log"
        process = start_serve(server.url, port, log, PARLEY_DATA_DIR=str(tmp_path / "data"))
        processes.append(process)
        wait_ready(base, process, log)
        async with httpx.AsyncClient(base_url=base, headers=keys.headers("recorder"), timeout=30) as http:
            response = await http.post("/negotiations", json={"title": "Outage", "slug": "outage", "parties": PARTIES,
                                                              "occurred_on": "2022-03-01"})
            assert response.status_code == 201, response.text
            for issue in ISSUES:
                response = await http.post("/negotiations/outage/commands", json={
                    "type": "issue.raised", "occurred_on": "2022-03-02", "issue": issue, "title": issue,
                    "category": "other"})
                assert response.status_code == 201, response.text

        load = Load()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(load.writer(base, keys.headers("recorder"), seed, stop)) for seed in range(4)]
        tasks += [asyncio.create_task(load.reader(base, keys.headers("reader"), stop)) for _ in range(2)]
        # Under load before the outage: some writes acknowledged (bounded by events,
        # with a ceiling that fails loudly, not by a fixed sleep).
        deadline = time.monotonic() + 120
        while len(load.acked) < 5:
            assert time.monotonic() < deadline, ("no writes acknowledged before the outage", load.errors[-3:])
            await asyncio.sleep(0.05)
        acked_before = len(load.acked)
        down_at = time.monotonic()
        await asyncio.to_thread(server.halt)
        stopped_at = time.monotonic()
        await asyncio.sleep(4)
        up_at = time.monotonic()
        await asyncio.to_thread(server.resume)
        started_at = time.monotonic()
        # Recovered: the first acknowledged write after the restart, without touching the service.
        deadline = time.monotonic() + 60
        while not any(s >= started_at and status == 201 for s, _, status, _, _ in load.answers):
            assert time.monotonic() < deadline, (
                "no write succeeded within 60 s of PostgreSQL's return: "
                + repr(sorted({(a[2], a[3], a[4][:200]) for a in load.answers if a[0] >= started_at})[:10])
                + repr(load.errors[-3:])
            )
            await asyncio.sleep(0.05)
        recovered_at = min(s + d for s, d, status, _, _ in load.answers if s >= started_at and status == 201)
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*tasks)

        assert acked_before > 0
        assert process.poll() is None, "the service died with its database"
        assert not load.errors, load.errors[:5]
        server_errors = [a for a in load.answers if a[2] >= 500 and a[2] != 503]
        assert not server_errors, server_errors[:5]
        during = [a for a in load.answers if stopped_at <= a[0] and a[0] + a[1] <= up_at]
        assert len(during) > 10, "the load did not keep asking while the database was down"
        # Each answer came within the clients' timeout (QUICK * 4, a ceiling, not a
        # speed claim): a timeout would be in load.errors, asserted empty above.
        for started, seconds, status, kind, body in during:
            if kind == "/health/ready":
                assert status == 503, (kind, status, body)
                continue
            assert status == 503, (kind, status, body)
            problem = problem_of(httpx.Response(status, headers={"content-type": "application/problem+json"},
                                                content=body.encode()))
            assert problem["type"].endswith(("unavailable", "consistency-timeout")), problem
        unavailable = [a for a in load.answers if a[2] == 503]
        # Nothing acknowledged is lost; nothing is there twice.
        in_log = await _log_summaries(server.url)
        for summary, ids in load.acked.items():
            assert in_log.get(summary) == ids, summary
        assert all(len(ids) == 1 for ids in in_log.values())
        total = await wait_projected(server.url, within=60)
        async with httpx.AsyncClient(base_url=base, headers=keys.headers("auditor"), timeout=30) as http:
            ready = await http.get("/health/ready")
            assert ready.status_code == 200, ready.text
            verify = await http.get("/audit/verify")
            assert verify.json()["ok"] is True, verify.text[:2000]
        slowest = max(d for s, d, *_ in during)
        print(f"\noutage: down {up_at - down_at:.1f}s, {len(during)} answers while down (all 503, slowest "
              f"{slowest * 1000:.0f} ms), {len(unavailable)} 503s in all, first write {recovered_at - started_at:.2f}s "
              f"after PostgreSQL was back, {len(load.acked)} acknowledged writes, {total} events verified")
        kill_group(process, signal.SIGTERM)
    finally:
        server.stop()
        shutil.rmtree(db_dir, ignore_errors=True)
