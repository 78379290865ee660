"""`parley serve` on the embedded default, as a real subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import msgspec
import psutil

from service.store.event_store import EventStore, PendingEvent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(data_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_DATA_DIR=str(data_dir), PARLEY_PORT=str(port), PARLEY_HOST="127.0.0.1")
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_ready(port: int, process: subprocess.Popen, within: float = 120) -> dict:
    # `within` is a ceiling that fails loudly (a loaded machine starts PostgreSQL slowly), not a speed claim.
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {process.stdout.read().decode() if process.stdout else ''}")
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready within {within} s")


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def running(pid: int) -> bool:
    # A stopped postmaster may linger as a zombie until the machine's init reaps it.
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def socket_url(pgdata: Path) -> str:
    """The running server's owner URL (its socket dir and generated password)."""
    from service import embedded

    return embedded.running_url(pgdata.parent)


async def write_and_count(url: str, write: bool) -> int:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        store = EventStore(pool)
        if write:
            # A whole negotiation.opened: one its projections cannot apply would
            # (rightly) stop them at it, and the restarted server is then not ready.
            negotiation = uuid.uuid4()
            opened = {"title": "Kept across restarts", "slug": "kept-across-restarts",
                      "parties": [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}]}
            await store.append(
                [
                    PendingEvent(
                        id=uuid.uuid4(),
                        stream_id=negotiation,
                        negotiation_id=negotiation,
                        stream_type="negotiation",
                        type="negotiation.opened",
                        schema_version=1,
                        data=msgspec.json.encode(opened),
                        occurred_on="2022-03-16",
                        recorded_by="test",
                    )
                ]
            )
        return len(await store.read_log())
    finally:
        await pool.close()


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return output.decode()


def test_serve_on_the_embedded_default_restarts_onto_its_data_and_stops_its_postgres(tmp_path: Path) -> None:
    port = free_port()
    pgdata = tmp_path / "pg"

    first = start_serve(tmp_path, port)
    try:
        ready = wait_ready(port, first)
        assert ready["database"] == "reachable"
        pid = postmaster_pid(pgdata)
        assert asyncio.run(write_and_count(socket_url(pgdata), write=True)) == 1
    finally:
        first_output = stop(first)
    assert first.returncode == 0
    assert first_output.count("Created the first admin key") == 1
    assert not running(pid), "SIGTERM must stop the PostgreSQL that serve started"

    second = start_serve(tmp_path, port)
    try:
        wait_ready(port, second)
        assert postmaster_pid(pgdata) != pid, "a new server on the same data"
        assert asyncio.run(write_and_count(socket_url(pgdata), write=False)) == 1, "events intact"
        second_pid = postmaster_pid(pgdata)
    finally:
        second_output = stop(second)
    assert not running(second_pid)
    assert "Created the first admin key" not in second_output, "printed once, on the first start only"
