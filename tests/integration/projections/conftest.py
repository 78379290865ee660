"""Helpers for the projection tests: apply the log synchronously, snapshot what is served."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import pytest

from domain.example import COMMANDS, OPENED
from projections import PROJECTIONS, issue_status, negotiation_summary, timeline
from projections.projection import Projection
from service.projection.checkpoints import apply_batch, read_checkpoint
from service.store.event_store import Checkpoint, EventStore
from tests.integration.projections.workload import Recorder


async def wait_until_visible(conn: asyncpg.Connection | asyncpg.Pool, timeout: float = 60.0) -> None:
    """Wait until every committed event is past the gap-free horizon. Transaction ids
    are server-wide: on a shared server another database's open transaction (even a
    slow DROP DATABASE) holds the horizon back for a moment, and "everything
    visible" would then be less than what the test recorded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await conn.fetchval(
        "SELECT NOT EXISTS (SELECT FROM events WHERE txid >= pg_snapshot_xmin(pg_current_snapshot()))"
    ):
        if loop.time() > deadline:
            raise TimeoutError("the log's horizon did not pass the recorded events")
        await asyncio.sleep(0.05)


async def catch_up(database_url: str, store: EventStore, projection: Projection, batch_size: int = 500) -> Checkpoint:
    """Apply everything in the log to `projection`, as the runner would."""
    conn = await asyncpg.connect(database_url)
    try:
        await wait_until_visible(conn)
        checkpoint = await read_checkpoint(conn, projection.name)
        while batch := await store.read_log(checkpoint, batch_size):
            checkpoint = await apply_batch(conn, store, projection, checkpoint, batch)
        return checkpoint
    finally:
        await conn.close()


@pytest.fixture
def project(database_url: str, store: EventStore) -> Callable[..., Awaitable[None]]:
    """Catch every projection up (fresh projection objects each time, as after a restart)."""

    async def run(batch_size: int = 500) -> None:
        for factory in PROJECTIONS.values():
            await catch_up(database_url, store, factory(), batch_size)

    return run


@pytest.fixture
def recorder(store: EventStore) -> Recorder:
    return Recorder(store)


async def record_example(recorder: Recorder) -> uuid.UUID:
    negotiation_id = await recorder.open(OPENED)
    for command in COMMANDS:
        await recorder.record(negotiation_id, command)
    return negotiation_id


async def served(pool: asyncpg.Pool) -> dict[str, Any]:
    """Everything the API can serve from the projections, as the bytes it would send."""
    snapshot: dict[str, Any] = {}
    page = await negotiation_summary.list_negotiations(pool, limit=3)
    pages = [msgspec.json.encode(page)]
    while page.next is not None:
        page = await negotiation_summary.list_negotiations(pool, page.next, limit=3)
        pages.append(msgspec.json.encode(page))
    snapshot["list"] = pages
    for row in await pool.fetch("SELECT negotiation_id FROM negotiation_summary ORDER BY negotiation_id"):
        nid = row["negotiation_id"]
        snapshot[f"summary {nid}"] = await negotiation_summary.fetch(pool, nid)
        snapshot[f"issues {nid}"] = msgspec.json.encode(await issue_status.fetch_for_negotiation(pool, nid))
        timeline_pages = []
        cursor = None
        while True:
            tpage = await timeline.fetch(pool, nid, cursor, limit=7)
            timeline_pages.append(msgspec.json.encode(tpage))
            if (cursor := tpage.next) is None:
                break
        snapshot[f"timeline {nid}"] = timeline_pages
    for row in await pool.fetch("SELECT negotiation_id, key FROM issue_status ORDER BY negotiation_id, key"):
        snapshot[f"issue {row['negotiation_id']} {row['key']}"] = await issue_status.fetch_one(
            pool, row["negotiation_id"], row["key"]
        )
    return snapshot


async def last_written(pool: asyncpg.Pool) -> Checkpoint:
    """The checkpoint of the newest committed event. (`store.head()` is the visible
    head, which a still-running transaction -- a projector batch -- holds back.)"""
    row = await pool.fetchrow(
        "SELECT txid::text::bigint AS txid, position FROM events ORDER BY txid DESC, position DESC LIMIT 1"
    )
    return Checkpoint(row["txid"], row["position"])
