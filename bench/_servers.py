"""HTTP servers under test, each a uvicorn subprocess with the same settings:
Parley's own app (`service.http.app:create_app_from_env`, what `parley serve` runs)
and the bare limit app (`bench.limit_app`)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_admin_key() -> str:
    # The shape `parley keys create` prints: pk_<key id>_<secret>.
    return f"pk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen
    admin_key: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


# What `parley serve` passes to uvicorn.run, as a command line: one worker, uvloop
# and httptools (uvicorn[standard] picks them), no access log.
def _uvicorn_command(factory: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", factory, "--factory",
        "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "10",
    ]  # fmt: skip


@contextlib.contextmanager
def uvicorn_server(factory: str, env: dict[str, str], health_path: str, admin_key: str | None = None) -> Iterator[RunningServer]:
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)
    process = subprocess.Popen(
        _uvicorn_command(factory, port), env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(base_url + health_path, process, log.name)
        yield RunningServer(base_url, process, admin_key)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_healthy(url: str, process: subprocess.Popen, log_path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}); log: {open(log_path).read()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server not healthy after {timeout}s; log: {open(log_path).read()[-3000:]}")


@contextlib.contextmanager
def parley_server(database_url: str, **extra_env: str) -> Iterator[RunningServer]:
    """The shipped app on a migrated database, with its in-process projection runner."""
    key = new_admin_key()
    data_dir = tempfile.mkdtemp(prefix="bench-parley-data-")
    env = {
        "PARLEY_DATABASE_URL": database_url,
        "PARLEY_ADMIN_KEY": key,
        "PARLEY_DATA_DIR": data_dir,
        "PARLEY_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    with uvicorn_server("service.http.app:create_app_from_env", env, "/health/live", key) as server:
        yield server


@contextlib.contextmanager
def limit_server(database_url: str) -> Iterator[RunningServer]:
    with uvicorn_server("bench.limit_app:create_app_from_env", {"BENCH_DATABASE_URL": database_url}, "/health") as server:
        yield server
