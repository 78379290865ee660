"""Shared by the audit tests: events written straight to the store, quickly."""

from __future__ import annotations

import uuid

import pytest

from service.store.event_store import EventStore, StoredEvent
from tests.pending_events import NOW as NOW, pending


class Writer:
    """Appends numbered events round-robin over a few streams."""

    def __init__(self, store: EventStore, streams: int = 3, negotiation_id: uuid.UUID | None = None) -> None:
        self.store = store
        self.streams = [uuid.uuid4() for _ in range(streams)]
        self.negotiation_id = negotiation_id
        self.count = 0

    async def write(self, how_many: int, **kwargs: object) -> list[StoredEvent]:
        written = []
        for _ in range(how_many):
            stream = self.streams[self.count % len(self.streams)]
            result = await self.store.append(
                [pending(stream, self.count, negotiation_id=self.negotiation_id, **kwargs)]
            )
            written.extend(result.events)
            self.count += 1
        return written


@pytest.fixture
def writer(store: EventStore) -> Writer:
    return Writer(store)


# -- the app, over HTTP -----------------------------------------------------------

from collections.abc import AsyncIterator  # noqa: E402
from pathlib import Path  # noqa: E402

import asyncpg  # noqa: E402
from litestar.testing import AsyncTestClient  # noqa: E402

from service.http.app import create_app  # noqa: E402
from service.auth import Role, create_key  # noqa: E402
from service.config import Settings  # noqa: E402


def app_settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        host="127.0.0.1",
        port=0,
        admin_key=None,
        data_dir=data_dir,
        ledger_origin="parley.test/log",
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return app_settings(database_url, tmp_path)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
async def auditor(pool: asyncpg.Pool) -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_key(pool, 'the-auditor', Role.AUDITOR)}"}


@pytest.fixture
async def reader(pool: asyncpg.Pool) -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_key(pool, 'a-reader', Role.READER)}"}


# -- the app, on a real socket (SSE, the CLI's --url) ------------------------------

import asyncio  # noqa: E402

import uvicorn  # noqa: E402

from service.http import events as events_routes  # noqa: E402
from tests.integration.test_serve import free_port  # noqa: E402


@pytest.fixture
async def base_url(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """uvicorn serving the app in this event loop; quick keep-alives and polls."""
    monkeypatch.setattr(events_routes, "KEEPALIVE_SECONDS", 0.3)
    monkeypatch.setattr(events_routes, "POLL_SECONDS", 0.05)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
