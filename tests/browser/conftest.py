"""A real Parley server with the demo recorded, and a headless Chromium to read it.

The server is the real app (`service.http.app.create_app`) under uvicorn in a thread,
on the test's own database; the demo is loaded by the real `parley demo
--no-serve` command. The browser is Debian's Chromium, driven over the DevTools
protocol by tests/browser/cdp.py: nothing is downloaded, and no browser-automation
package is installed.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from tests.browser.cdp import Browser, launch

from service.http.app import create_app
from service.config import Settings

CHROMIUM = os.environ.get("PARLEY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
DEMO_SLUG = "russia-ukraine-2022"
DEMO_ISSUES = 7


@dataclass(frozen=True)
class DemoServer:
    base_url: str
    reader_key: str
    auditor_key: str
    database_url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_demo(database_url: str) -> dict[str, str]:
    """Run `parley demo --no-serve` on the database; return the keys it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env["PARLEY_DATABASE_URL"] = database_url
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "demo", "--no-serve"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    return dict(re.findall(r"^\s+(\w+) key: (pk_\S+)$", done.stderr, re.MULTILINE))


@dataclass
class _ThreadedServer:
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def _serve(database_url: str, port: int) -> _ThreadedServer:
    settings = Settings.from_env({"PARLEY_DATABASE_URL": database_url, "PARLEY_PORT": str(port)})
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="parley-browser-test-server", daemon=True)
    thread.start()
    return _ThreadedServer(server, thread)


def _wait_for_demo(base_url: str, key: str, within: float = 20) -> None:
    """Until the projections serve every issue of the demo (they catch up in the background)."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(
                f"{base_url}/negotiations/{DEMO_SLUG}/issues",
                headers={"Authorization": f"Bearer {key}"}, timeout=2,
            )
            last = response
            if response.status_code == 200 and len(response.json()["items"]) >= DEMO_ISSUES:
                return
        except httpx.HTTPError as error:
            last = error
        time.sleep(0.2)
    raise AssertionError(f"the demo was not served within {within} s: {last!r}")


@pytest.fixture
async def demo_server(database_url: str) -> AsyncIterator[DemoServer]:
    # Blocking steps run in threads: the test's event loop also drives the browser.
    keys = await asyncio.to_thread(load_demo, database_url)
    port = _free_port()
    running = _serve(database_url, port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(_wait_for_demo, base_url, keys["reader"])
        yield DemoServer(base_url, keys["reader"], keys["auditor"], database_url)
    finally:
        await asyncio.to_thread(running.stop)


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        message = (
            f"BROWSER TESTS NOT RUN: no Chromium at {CHROMIUM}. Install Debian's chromium package "
            "(`.ci/run` does) or point PARLEY_CHROMIUM at one; the dashboard is untested in this run."
        )
        # CI sets PARLEY_REQUIRE_BROWSER=1: there a missing browser is a failure, never a skip.
        if os.environ.get("PARLEY_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    async with launch(CHROMIUM, CHROMIUM_ARGS) as browser:
        yield browser


@pytest.fixture
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
