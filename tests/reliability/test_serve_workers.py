"""`parley serve --workers 2`: the projection runner and the sealer in processes of
their own beside the API workers (service.cli.background), as real processes on
the test database: commands through both API workers, the projections and the
ledger keep up, a child that dies is restarted, and stopping serve leaves no
process behind."""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import time
from pathlib import Path

import asyncpg
import psutil
import pytest

from projections import PROJECTION_NAMES
from tests.api.conftest import Keys, make_app
from tests.reliability.conftest import (
    PARTIES,
    free_port,
    kill_group,
    parley_env,
    start_parley,
    start_serve,
    wait_ready,
)

CEILING = 90  # seconds: a bound that fails loudly on a stalled machine, not a speed claim


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def parley_child(serve: psutil.Process, command: str, other_than: int | None = None) -> psutil.Process:
    """The `parley <command>` process serve started (waiting for it to be there)."""
    deadline = time.monotonic() + CEILING
    while time.monotonic() < deadline:
        for child in serve.children():
            try:
                if child.cmdline()[-1:] == [command] and child.pid != other_than and alive(child):
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.1)
    raise AssertionError(f"serve started no `parley {command}` within {CEILING} s")


def connections_to_each_worker(port: int, serve: psutil.Process) -> dict[int, http.client.HTTPConnection]:
    """One open keep-alive connection answered by each API worker, keyed by the
    worker's pid (found from the server side of the TCP connection)."""
    by_worker: dict[int, http.client.HTTPConnection] = {}
    opened = []
    for _ in range(200):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/health/live")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        opened.append(conn)
        client_port = conn.sock.getsockname()[1]
        for child in serve.children():
            try:
                sockets = child.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            if any(s.laddr and s.raddr and s.laddr.port == port and s.raddr.port == client_port for s in sockets):
                by_worker.setdefault(child.pid, conn)
        if len(by_worker) == 2:
            for conn in opened:
                if conn not in by_worker.values():
                    conn.close()
            return by_worker
    raise AssertionError(f"200 connections reached only the workers {sorted(by_worker)}")


def post(conn: http.client.HTTPConnection, path: str, body: dict, headers: dict[str, str]) -> dict:
    conn.request("POST", path, body=json.dumps(body), headers={**headers, "Content-Type": "application/json"})
    response = conn.getresponse()
    text = response.read()
    assert response.status == 201, (path, response.status, text[:500])
    return json.loads(text)


async def wait_caught_up(database_url: str, events: int) -> None:
    """Every projection's checkpoint and the ledger's leaves at `events` events."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + CEILING
        while True:
            projected = await conn.fetch(
                "SELECT name, position FROM projection_checkpoints WHERE name = ANY($1::text[])", list(PROJECTION_NAMES)
            )
            at = await conn.fetchval("SELECT max(position) FROM events")
            leaves = await conn.fetchval("SELECT count(*) FROM ledger_leaves")
            total = await conn.fetchval("SELECT count(*) FROM events")
            if total == events and leaves == events and len(projected) == len(PROJECTION_NAMES) \
                    and all(row["position"] == at for row in projected):
                return
            assert time.monotonic() < deadline, (
                f"not caught up within {CEILING} s: {total} events, {leaves} leaves, {[tuple(r) for r in projected]}"
            )
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def projector_connections(database_url: str) -> int:
    """Connections of projection runners to this database (each runner keeps one
    per projection, holding it or standing by: service.projection.runner)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE 'parley-projector:%'"
        )
    finally:
        await conn.close()


@pytest.mark.timeout(400)
async def test_serve_with_two_workers_runs_the_runner_and_the_sealer_beside_them(
    database_url: str, keys: Keys, tmp_path: Path, processes
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    process = start_serve(database_url, port, log, workers=2, PARLEY_DATA_DIR=str(tmp_path))
    processes.append(process)
    wait_ready(f"http://127.0.0.1:{port}", process, log)
    serve = psutil.Process(process.pid)
    project, seal = parley_child(serve, "project"), parley_child(serve, "seal")
    workers = connections_to_each_worker(port, serve)
    assert not {project.pid, seal.pid} & set(workers)

    recorder = keys.headers("recorder")
    one, two = workers.values()
    post(one, "/negotiations", {"title": "Workers", "slug": "workers", "parties": PARTIES,
                                "occurred_on": "2022-03-01"}, recorder)
    post(two, "/negotiations/workers/commands", {"type": "issue.raised", "occurred_on": "2022-03-02",
                                                "issue": "ceasefire", "title": "Ceasefire", "category": "other"},
         recorder)
    events = 2
    for i in range(10):
        post((one, two)[i % 2], "/negotiations/workers/commands",
             {"type": "statement.made", "occurred_on": "2022-03-03", "speaker": f"s{i}", "summary": "said"}, recorder)
        events += 1
    await wait_caught_up(database_url, events)
    # One runner (in `parley project`): its connection per projection, none from the API workers.
    assert await projector_connections(database_url) == len(PROJECTION_NAMES)

    # A child that dies is started again, and the work goes on.
    project.kill()
    restarted = parley_child(serve, "project", other_than=project.pid)
    post(one, "/negotiations/workers/commands",
         {"type": "statement.made", "occurred_on": "2022-03-04", "speaker": "after", "summary": "said"}, recorder)
    await wait_caught_up(database_url, events + 1)

    # Stopping serve stops every process it started.
    started = serve.children(recursive=True)
    assert {restarted.pid, seal.pid, *workers} <= {p.pid for p in started}
    for conn in workers.values():
        conn.close()
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, CEILING) == 0, log.read_text(errors="replace")[-3000:]
    # Each is stopped by then, or on its way out (multiprocessing's resource tracker,
    # started with uvicorn's workers, exits when serve's end of its pipe closes).
    deadline = time.monotonic() + CEILING
    while left := [p for p in started if alive(p)]:
        assert time.monotonic() < deadline, f"still running after serve stopped: {[(p.pid, p.cmdline()) for p in left]}"
        await asyncio.sleep(0.1)


@pytest.mark.timeout(300)
async def test_the_children_stop_when_serve_is_killed(database_url: str, tmp_path: Path, processes) -> None:
    # SIGKILL gives serve no chance to stop them: they notice their parent is gone.
    port = free_port()
    log = tmp_path / "serve.log"
    process = start_serve(database_url, port, log, workers=2, PARLEY_DATA_DIR=str(tmp_path))
    processes.append(process)
    wait_ready(f"http://127.0.0.1:{port}", process, log)
    serve = psutil.Process(process.pid)
    children = [parley_child(serve, "project"), parley_child(serve, "seal")]
    process.kill()
    process.wait(timeout=CEILING)
    deadline = time.monotonic() + CEILING
    while any(alive(child) for child in children):
        assert time.monotonic() < deadline, "`parley project`/`seal` outlived the serve that started them"
        await asyncio.sleep(0.1)
    kill_group(process, signal.SIGKILL)  # the uvicorn workers (uvicorn's own, not this test's subject)


async def test_one_worker_keeps_the_runner_and_the_sealer_in_process(database_url: str, tmp_path: Path) -> None:
    from service.config import Settings

    assert Settings.from_env({}).background_here
    assert not Settings.from_env({"PARLEY_BACKGROUND": "elsewhere"}).background_here
    with pytest.raises(ValueError, match="PARLEY_BACKGROUND"):
        Settings.from_env({"PARLEY_BACKGROUND": "nowhere"})
    for here in (True, False):
        app = make_app(database_url, tmp_path, background_here=here)
        async with app.lifespan():
            runtime = app.state.runtime
            assert (runtime.projector is not None, runtime.sealer is not None) == (here, here)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("workers", [1, 2])
async def test_every_process_signs_with_the_key_in_the_data_dir_given_as_a_flag(
    database_url: str, keys: Keys, tmp_path: Path, processes, workers: int
) -> None:
    # `parley --data-dir D serve`: serve made D's key, and the sealing process (the
    # API worker, or `parley seal`) must sign with it, not make another in the
    # default data directory.
    from cryptography.hazmat.primitives import serialization

    data_dir, home = tmp_path / "data", tmp_path / "home"
    port = free_port()
    log = tmp_path / "serve.log"
    env = parley_env(database_url, PARLEY_PORT=str(port), PARLEY_HOST="127.0.0.1", HOME=str(home))
    env.pop("XDG_DATA_HOME", None)
    process = start_parley(["--data-dir", str(data_dir), "serve", "--workers", str(workers)], env, log)
    processes.append(process)
    wait_ready(f"http://127.0.0.1:{port}", process, log)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    post(conn, "/negotiations", {"title": "Keys", "slug": "keys", "parties": PARTIES, "occurred_on": "2022-03-01"},
         keys.headers("recorder"))
    conn.close()
    db = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + CEILING
        while (signer := await db.fetchval("SELECT public_key FROM ledger_checkpoints WHERE tree_size >= 1"
                                           " ORDER BY tree_size LIMIT 1")) is None:
            assert time.monotonic() < deadline, f"no checkpoint within {CEILING} s: {log.read_text()[-2000:]}"
            await asyncio.sleep(0.1)
    finally:
        await db.close()
    key = serialization.load_pem_private_key((data_dir / "ledger-ed25519.pem").read_bytes(), password=None)
    assert signer == key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert list(home.rglob("ledger-ed25519.pem")) == []
    kill_group(process, signal.SIGTERM)
    assert process.returncode == 0, log.read_text(errors="replace")[-3000:]
