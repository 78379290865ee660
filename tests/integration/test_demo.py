"""`parley demo` records DESIGN's example through the command service, once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from domain.example import example
from service.auth import Role, authenticate
from service.write.commands import CommandService
from service.write.requests import OpenRequest
from service.cli.demo import DEMO_RECORDER, _idempotency, issue_demo_key, record_example
from service.store.event_store import EventStore
from tests.integration.test_serve import free_port


async def count_events(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM events")


async def test_the_example_is_recorded_once_however_often_the_demo_runs(pool: asyncpg.Pool, runtime) -> None:
    first = await record_example(runtime)
    assert not first.already_recorded
    assert first.slug == "russia-ukraine-2022"
    assert first.events_written == await count_events(pool) > len(example()[1])

    again = await record_example(runtime)
    assert again.already_recorded and again.events_written == 0
    assert again.negotiation_id == first.negotiation_id
    assert await count_events(pool) == first.events_written
    recorders = await pool.fetch("SELECT DISTINCT recorded_by FROM events")
    assert [row["recorded_by"] for row in recorders] == [DEMO_RECORDER]


async def test_an_interrupted_demo_resumes_without_repeating_a_fact(
    pool: asyncpg.Pool, database_url: str, runtime
) -> None:
    # The first run died right after opening the negotiation.
    opened, _ = example()
    await CommandService(EventStore(pool)).open(OpenRequest(opened, DEMO_RECORDER, _idempotency("open", opened)))
    resumed = await record_example(runtime)
    assert not resumed.already_recorded
    types = await pool.fetch("SELECT type FROM events WHERE type = 'negotiation.opened'")
    assert len(types) == 1
    assert await count_events(pool) == 1 + resumed.events_written


async def test_each_run_gives_the_demo_key_a_new_secret_and_retires_the_old_one(pool: asyncpg.Pool) -> None:
    old = await issue_demo_key(pool, "demo-reader", Role.READER)
    new = await issue_demo_key(pool, "demo-reader", Role.READER)
    assert old != new
    assert await authenticate(pool, old) is None
    key = await authenticate(pool, new)
    assert key is not None and key.role is Role.READER and key.name == "demo-reader"


def _run_demo(database_url: str, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_DATABASE_URL=database_url, PARLEY_PORT=str(port), PARLEY_HOST="127.0.0.1")
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "service.cli", "demo"], env=env, stdout=out, stderr=out)


def _reader_key_once_serving(process: subprocess.Popen, log: Path, port: int, within: float = 120) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        text = log.read_text()
        match = re.search(r"reader key: (pk_\S+)", text)
        if match and "Parley serving on" in text:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                    return match[1]
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"parley demo did not serve within {within} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


async def test_parley_demo_serves_the_dashboard_and_the_report_to_the_key_it_prints(
    database_url: str, tmp_path: Path
) -> None:
    def run_once(log: Path) -> tuple[str, int]:
        port = free_port()
        process = _run_demo(database_url, port, log)
        try:
            key = _reader_key_once_serving(process, log, port)
            base = f"http://127.0.0.1:{port}"
            page = httpx.get(base + "/")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert "<title>Parley — negotiations dashboard</title>" in page.text
            script = httpx.get(base + "/static/app.js")
            assert script.status_code == 200 and "import" in script.text
            negotiation = httpx.get(
                f"{base}/negotiations/russia-ukraine-2022",
                headers={"Authorization": f"Bearer {key}"},
                params={"as_of": "2022-03-16"},  # computed from the log: no wait for the projections
            )
            assert negotiation.status_code == 200, negotiation.text
            return negotiation.json()["title"], negotiation.json()["events"]
        finally:
            _stop(process)

    first = await asyncio.to_thread(run_once, tmp_path / "first.log")
    second = await asyncio.to_thread(run_once, tmp_path / "second.log")
    assert first == second == ("Russia-Ukraine talks 2022", first[1])
    assert "Recorded the example report" in (tmp_path / "first.log").read_text()
    assert "nothing new was written" in (tmp_path / "second.log").read_text()
