"""Shared parts of the reliability tests: keys for every role, the real app over
real HTTP (in-process uvicorn on a loopback port, or `parley serve` subprocesses),
and counting what the database holds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from litestar import Litestar

# The API tests' key and client fixtures serve these tests too (pytest registers
# fixtures imported into a conftest).
from tests.api.conftest import Keys, api, auth_failure_limit, client, keys, make_app, make_keys  # noqa: F401
from tests.integration.test_serve import free_port

ROLES = ("reader", "recorder", "auditor", "admin")
PARTIES = [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}]
ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def live_server(app: Litestar) -> AsyncIterator[str]:
    """The app behind a real uvicorn on a loopback port, in this event loop."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done():
            task.result()
        if time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start within 30 s")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 15)


async def event_count(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()


# --- `parley serve` / `parley project` subprocesses ------------------------------------


def parley_env(database_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    if database_url:
        env["PARLEY_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def start_parley(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_serve(database_url: str, port: int, log: Path, *, workers: int = 1, **extra: str) -> subprocess.Popen:
    env = parley_env(database_url, PARLEY_PORT=str(port), PARLEY_HOST="127.0.0.1", **extra)
    return start_parley(["serve", "--workers", str(workers)], env, log)


def wait_ready(base_url: str, process: subprocess.Popen, log: Path, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"parley exited ({process.returncode}): {log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"not live within {within} s: {log.read_text(errors='replace')[-3000:]}")


def kill_group(process: subprocess.Popen, signum: int) -> None:
    """Signal the process and everything it started (its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    """Subprocesses a test starts; whatever is still running at the end is killed."""
    started: list[subprocess.Popen] = []
    yield started
    import signal

    for process in started:
        if process.poll() is None:
            kill_group(process, signal.SIGKILL)


def problem_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers.get("content-type", "").startswith("application/problem+json"), (
        response.status_code,
        response.headers.get("content-type"),
        response.text[:500],
    )
    body = response.json()
    assert body["status"] == response.status_code
    assert body["type"].startswith("urn:parley:problem:")
    assert body.get("title")
    return body
