"""`parley projections rebuild`: the whole log into fresh tables, swapped in while reads go on."""

from __future__ import annotations

import asyncio
import os
import sys

from projections import PROJECTION_NAMES, PROJECTIONS, issue_status, negotiation_summary, timeline
from service.projection.rebuild import rebuild, rebuild_all
from service.projection.runner import Projector
from service.projection.watch import ProjectionWatch
from service.store.event_store import Checkpoint, EventStore
from tests.integration.projections.conftest import last_written, served
from tests.integration.projections.workload import RandomWorkload

TABLE_SHAPE = """
    SELECT c.relname, array_agg(i.indexrelid::regclass::text ORDER BY i.indexrelid::regclass::text) AS indexes
    FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid
    WHERE c.relname = ANY($1::text[]) AND c.relnamespace = 'public'::regnamespace
    GROUP BY c.relname ORDER BY c.relname
"""


async def keep_reading(pool, negotiation_ids, stop: asyncio.Event) -> int:
    """What the API does during a rebuild: every read must keep answering."""
    reads = 0
    while not stop.is_set():
        for negotiation_id in negotiation_ids:
            assert await negotiation_summary.fetch(pool, negotiation_id) is not None
            assert await issue_status.fetch_for_negotiation(pool, negotiation_id)
            assert (await timeline.fetch(pool, negotiation_id, limit=20)).items
            reads += 1
        await asyncio.sleep(0)
    return reads


async def test_a_rebuild_serves_exactly_the_same_json_as_the_live_projection(database_url, pool, store, recorder):
    tables = [t for f in PROJECTIONS.values() for t in f().tables]
    shape_before = [tuple(r) for r in await pool.fetch(TABLE_SHAPE, tables)]

    # The live projection follows the workload as it is recorded, in small batches.
    projector = Projector(database_url, pool=pool, batch_size=7, poll_interval=0.05, lock_poll_interval=0.1)
    projector.start()
    watch = ProjectionWatch(pool, database_url)
    try:
        workload = RandomWorkload(recorder, seed=2024)
        await workload.run(negotiations=3, commands=240)
        assert workload.recorded > 150
        assert await watch.wait_for(await last_written(pool), timeout=30)
        live = await served(pool)
        applied_live = await pool.fetch("SELECT name, txid, position FROM projection_checkpoints ORDER BY name")

        stop_reading = asyncio.Event()
        reader = asyncio.create_task(keep_reading(pool, list(workload.negotiations), stop_reading))
        results = [await rebuild(pool, name, batch_size=50, progress=None) for name in PROJECTION_NAMES]
        stop_reading.set()
        assert await reader > 0

        assert all(r.events == workload.recorded for r in results)
        assert await served(pool) == live
        assert await pool.fetch("SELECT name, txid, position FROM projection_checkpoints ORDER BY name") == applied_live
        # The swapped-in tables have the live tables' indexes, under the same names.
        assert [tuple(r) for r in await pool.fetch(TABLE_SHAPE, tables)] == shape_before
        assert await pool.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'parley_rebuild'"
        ) == 0

        # The live runner carries on over the swapped-in tables.
        negotiation_id = next(iter(workload.negotiations))
        result = await recorder.record(negotiation_id, {"type": "issue.raised", "occurred_on": "2022-04-01",
                                                        "issue": "after-rebuild", "title": "After", "category": "other"})
        assert await watch.wait_for(result.checkpoint, timeout=10)
        assert await issue_status.fetch_one(pool, negotiation_id, "after-rebuild") is not None
        total = await pool.fetchval("SELECT count(*) FROM events")
        assert await pool.fetchval(
            "SELECT min(events_applied) FROM projection_checkpoints WHERE name = ANY($1::text[])", list(PROJECTIONS)
        ) == total
    finally:
        await watch.close()
        await projector.stop()


async def test_a_rebuild_catches_up_with_a_live_runner_that_is_ahead(database_url, pool, store, recorder):
    """Events keep coming during the rebuild; the swap waits for the live batch in
    flight and never moves the checkpoint back."""
    workload = RandomWorkload(recorder, seed=99)
    await workload.run(negotiations=2, commands=60)
    projector = Projector(database_url, pool=pool, batch_size=5, poll_interval=0.05, lock_poll_interval=0.1)
    projector.start()
    watch = ProjectionWatch(pool, database_url)
    try:
        async def keep_writing() -> None:
            for _ in range(30):
                await workload.step(next(iter(workload.negotiations)))

        writing = asyncio.create_task(keep_writing())
        before = Checkpoint(0, 0)
        while not writing.done():
            result = await rebuild(pool, "negotiation_summary", batch_size=20, progress=None)
            assert result.checkpoint >= before
            before = result.checkpoint
        await writing
        assert await watch.wait_for(await last_written(pool), timeout=20)
        live = await served(pool)
        await rebuild(pool, "negotiation_summary", progress=None)
        assert await served(pool) == live
    finally:
        await watch.close()
        await projector.stop()


async def test_the_command_line_rebuilds_all_with_a_progress_bar(database_url, pool, recorder, project):
    await RandomWorkload(recorder, seed=1).run(negotiations=1, commands=20)
    await project()
    live = await served(pool)
    env = {**os.environ, "PARLEY_DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "projections", "rebuild", "ALL",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    text = stderr.decode()
    # One tqdm bar: every projection in one pass over the log.
    assert f"rebuild {', '.join(PROJECTION_NAMES)}" in text
    for name in PROJECTION_NAMES:
        assert f"rebuilt {name}:" in text
    assert stdout == b""
    assert await served(pool) == live


async def test_rebuild_all_is_one_pass_and_serves_exactly_the_live_json(database_url, pool, store, recorder, monkeypatch):
    """Every projection rebuilt from one read of the log, while the live runner
    keeps going, swaps in byte for byte what the incremental projections serve."""
    projector = Projector(database_url, pool=pool, batch_size=3, poll_interval=0.05, lock_poll_interval=0.1)
    projector.start()
    watch = ProjectionWatch(pool, database_url)
    try:
        workload = RandomWorkload(recorder, seed=77)
        await workload.run(negotiations=3, commands=200)
        assert await watch.wait_for(await last_written(pool), timeout=60)
        live = await served(pool)
        checkpoints = await pool.fetch("SELECT name, txid, position FROM projection_checkpoints ORDER BY name")

        reads = 0
        read_log = EventStore.read_log

        async def counted(self, *args, **kwargs):
            nonlocal reads
            # The rebuild reads on its own connection (the live runner's subscription does not).
            reads += kwargs.get("conn") is not None
            return await read_log(self, *args, **kwargs)

        monkeypatch.setattr(EventStore, "read_log", counted)
        stop_reading = asyncio.Event()
        reader = asyncio.create_task(keep_reading(pool, list(workload.negotiations), stop_reading))
        results = await rebuild_all(pool, batch_size=25, progress=None)
        stop_reading.set()
        assert await reader > 0
        monkeypatch.undo()

        assert [r.name for r in results] == list(PROJECTION_NAMES)
        assert all(r.events == workload.recorded for r in results)
        assert len({r.checkpoint for r in results}) == 1
        # One pass: the log read once in batches of 25 (a pass per projection
        # would read it three times), plus the empty read that ends each catch-up.
        assert reads <= -(-workload.recorded // 25) + 2, reads
        assert await served(pool) == live
        assert await pool.fetch("SELECT name, txid, position FROM projection_checkpoints ORDER BY name") == checkpoints
        assert await pool.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'parley_rebuild'") == 0

        # The live runner carries on over the swapped-in tables.
        negotiation_id = next(iter(workload.negotiations))
        result = await recorder.record(negotiation_id, {"type": "issue.raised", "occurred_on": "2022-04-01",
                                                        "issue": "after-all", "title": "After", "category": "other"})
        assert await watch.wait_for(result.checkpoint, timeout=20)
        assert await issue_status.fetch_one(pool, negotiation_id, "after-all") is not None
    finally:
        await watch.close()
        await projector.stop()


async def test_rebuild_all_refuses_an_unknown_or_repeated_projection(pool):
    import pytest

    with pytest.raises(ValueError, match="unknown projection"):
        await rebuild_all(pool, ["issue_status", "nope"], progress=None)
    with pytest.raises(ValueError, match="named twice"):
        await rebuild_all(pool, ["timeline", "timeline"], progress=None)
