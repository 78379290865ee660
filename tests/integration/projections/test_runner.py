"""The runner: exactly once across kills, one holder at a time, lag, read-your-writes."""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
import pytest

from domain.status import fold_issue
from projections import PROJECTIONS, issue_status
from projections.records import recorded_from_stored
from service.projection.checkpoints import read_checkpoint
from service.projection.runner import ProjectionWorker, Projector
from service.projection.watch import ProjectionWatch, projection_lag
from service.store.event_store import Checkpoint
from tests.integration.projections.conftest import catch_up, last_written, served, wait_until_visible
from tests.integration.projections.workload import RandomWorkload


async def eventually(condition, within: float = 60.0, every: float = 0.05):
    """Waits for `condition`; `within` is a ceiling that fails loudly, not a speed claim."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)


async def caught_up(pool, name: str) -> bool:
    return await read_checkpoint(pool, name) >= await last_written(pool)


class StuckInBatch:
    """A projection that, on its `stuck_at`-th batch, writes its rows and then
    hangs inside the transaction (in PostgreSQL, so a killed connection ends it)."""

    def __init__(self, inner, stuck_at: int) -> None:
        self.inner = inner
        self.name, self.tables, self.lock_id = inner.name, inner.tables, inner.lock_id
        self.batches = 0
        self.stuck_at = stuck_at
        self.stuck = asyncio.Event()

    def reset(self) -> None:
        self.inner.reset()

    async def apply(self, conn, facts, history) -> None:
        await self.inner.apply(conn, facts, history)
        self.batches += 1
        if self.batches == self.stuck_at:
            self.stuck.set()
            await conn.execute("SELECT pg_sleep(60)")


async def projector_backend(pool, name: str) -> int:
    return await pool.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        f"parley-projector:{name}",
    )


async def assert_exactly_once(pool, store, name: str) -> None:
    """Rows as a fresh fold of the whole log gives them, each event counted once."""
    total = await pool.fetchval("SELECT count(*) FROM events")
    applied = await pool.fetchval("SELECT events_applied FROM projection_checkpoints WHERE name = $1", name)
    assert applied == total
    if name == "issue_status":
        for row in await pool.fetch("SELECT stream_id, view_json FROM issue_status"):
            records = [recorded_from_stored(e) for e in await store.read_stream(row["stream_id"])]
            assert bytes(row["view_json"]) == msgspec.json.encode(fold_issue(records))
    if name == "timeline":
        assert await pool.fetchval("SELECT count(*) FROM timeline") == total
    if name == "negotiation_summary":
        for row in await pool.fetch("SELECT negotiation_id, view_json FROM negotiation_summary"):
            counts = msgspec.json.decode(row["view_json"])["issue_counts"]
            issues = await pool.fetchval(
                "SELECT count(*) FROM events WHERE negotiation_id = $1 AND type = 'issue.raised'",
                row["negotiation_id"],
            )
            assert sum(counts.values()) == issues


@pytest.mark.parametrize("kill", ["cancel the task", "terminate its connection"])
@pytest.mark.parametrize("name", ["issue_status", "negotiation_summary", "timeline"])
async def test_a_runner_killed_mid_batch_resumes_with_nothing_lost_or_counted_twice(
    database_url, pool, store, recorder, name, kill
):
    await RandomWorkload(recorder, seed=7).run(negotiations=2, commands=80)
    stuck = StuckInBatch(PROJECTIONS[name](), stuck_at=3)
    worker = ProjectionWorker(database_url, store, stuck, batch_size=10, poll_interval=0.1, lock_poll_interval=0.1)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(stuck.stuck.wait(), 60)  # a ceiling, not a speed claim
    committed = await read_checkpoint(pool, name)
    assert await pool.fetchval("SELECT events_applied FROM projection_checkpoints WHERE name = $1", name) == 20

    if kill == "cancel the task":
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Nothing of the half-applied batch is visible; a new runner starts from the checkpoint.
        assert await read_checkpoint(pool, name) == committed
        await catch_up(database_url, store, PROJECTIONS[name](), batch_size=10)
    else:
        await pool.execute("SELECT pg_terminate_backend($1)", await projector_backend(pool, name))
        # The same runner survives: it reconnects, takes its lock again and carries on.
        await eventually(lambda: caught_up(pool, name))
        assert worker.stats.errors >= 1
        worker.stopping.set()
        await asyncio.wait_for(task, 60)  # a ceiling that fails loudly, not a speed claim
    await assert_exactly_once(pool, store, name)


class OneAtATime:
    """Records how many runners are inside `apply` at once (must never exceed 1)."""

    inside = 0
    most = 0

    def __init__(self, inner, who: str, log: list[str]) -> None:
        self.inner, self.who, self.log = inner, who, log
        self.name, self.tables, self.lock_id = inner.name, inner.tables, inner.lock_id

    def reset(self) -> None:
        self.inner.reset()

    async def apply(self, conn, facts, history) -> None:
        OneAtATime.inside += 1
        OneAtATime.most = max(OneAtATime.most, OneAtATime.inside)
        try:
            await self.inner.apply(conn, facts, history)
            await asyncio.sleep(0.005)  # widen the window a second applier would need
            self.log.append(self.who)
        finally:
            OneAtATime.inside -= 1


async def test_two_runners_never_both_apply_and_the_standby_takes_over(database_url, pool, store, recorder):
    workload = RandomWorkload(recorder, seed=11)
    await workload.run(negotiations=2, commands=30)
    log: list[str] = []
    workers = {
        who: ProjectionWorker(
            database_url,
            store,
            OneAtATime(PROJECTIONS["issue_status"](), who, log),
            batch_size=5,
            poll_interval=0.1,
            lock_poll_interval=0.1,
        )
        for who in ("first", "second")
    }
    tasks = {who: asyncio.create_task(w.run()) for who, w in workers.items()}
    try:
        await eventually(lambda: caught_up(pool, "issue_status"))
        holders = [who for who, w in workers.items() if w.stats.holding]
        assert len(holders) == 1
        holder, standby = holders[0], ({"first", "second"} - set(holders)).pop()
        assert set(log) == {holder}

        # The holder dies; the standby takes over (how fast is bench's to measure).
        tasks[holder].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[holder]
        for negotiation_id in list(workload.negotiations):
            for _ in range(10):
                await workload.step(negotiation_id)
        await eventually(lambda: caught_up(pool, "issue_status"))
        assert workers[standby].stats.holding
        assert log[-1] == standby
        assert OneAtATime.most == 1
        await assert_exactly_once(pool, store, "issue_status")
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def test_the_projector_follows_the_log_and_wait_for_reflects_a_write(database_url, pool, store, recorder):
    projector = Projector(database_url, pool=pool, poll_interval=0.5, lock_poll_interval=0.2)
    projector.start()
    # The watch re-checks only hourly: only the runner's NOTIFY can wake it in time.
    watch = ProjectionWatch(pool, database_url, poll_interval=3600)
    try:
        negotiation_id = await recorder.open(
            {"title": "Talks", "parties": [{"code": "A", "name": "A"}], "occurred_on": "2022-01-01"}
        )
        result = await recorder.record(negotiation_id, {"type": "issue.raised", "occurred_on": "2022-01-02",
                                                        "issue": "water", "title": "Water", "category": "other"})
        assert await watch.wait_for(result.checkpoint, timeout=60)
        assert await issue_status.fetch_one(pool, negotiation_id, "water") is not None
        assert {s.name for s in projector.stats() if s.holding} == set(PROJECTIONS)
        assert all(lag["events_behind"] == 0 for lag in await projection_lag(pool))
        # A checkpoint no projection has reached: False once the timeout passes.
        far = Checkpoint(result.checkpoint.txid + 1000, result.checkpoint.position + 1000)
        assert not await watch.wait_for(far, timeout=0.3)
    finally:
        await watch.close()
        await projector.stop()


async def test_lag_counts_events_and_seconds_behind_the_visible_head(database_url, pool, store, recorder):
    await RandomWorkload(recorder, seed=3).run(negotiations=1, commands=5)
    await wait_until_visible(pool)
    total = await pool.fetchval("SELECT count(*) FROM events")
    lags = await projection_lag(pool)
    assert [lag["name"] for lag in lags] == sorted(PROJECTIONS)
    assert all(lag["events_behind"] == total and lag["seconds_behind"] > 0 for lag in lags)
    await catch_up(database_url, store, PROJECTIONS["timeline"]())
    before = {lag["name"]: lag["updated_at"] for lag in lags}
    lags = {lag["name"]: lag for lag in await projection_lag(pool)}
    assert {k: v for k, v in lags["timeline"].items() if k != "updated_at"} == {
        "name": "timeline", "events_behind": 0, "seconds_behind": 0.0, "stuck": None}
    # The checkpoint moved, and its time with it; the others did not move.
    assert lags["timeline"]["updated_at"] > before["timeline"]
    assert lags["issue_status"]["updated_at"] == before["issue_status"]
    assert lags["issue_status"]["events_behind"] == total


async def test_batch_boundaries_do_not_change_what_is_served(database_url, pool, store, recorder, project):
    await RandomWorkload(recorder, seed=5).run(negotiations=2, commands=60)
    await project(batch_size=1)
    one_by_one = await served(pool)
    await pool.execute("TRUNCATE issue_status, negotiation_summary, negotiation_summary_issues, timeline, timeline_parties")
    await pool.execute("UPDATE projection_checkpoints SET txid = 0, position = 0, events_applied = 0")
    await project(batch_size=1000)
    assert await served(pool) == one_by_one


async def test_many_waiters_share_their_reads_of_the_checkpoints(database_url, pool, store, recorder):
    negotiation_id = await recorder.open(
        {"title": "Talks", "parties": [{"code": "A", "name": "A"}], "occurred_on": "2022-01-01"}
    )
    written = (await recorder.record(negotiation_id, {"type": "issue.raised", "occurred_on": "2022-01-02",
                                                      "issue": "water", "title": "Water", "category": "other"})).checkpoint
    # No periodic re-checks (hourly): reads happen on start and on notifications only.
    watch = ProjectionWatch(pool, database_url, poll_interval=3600)
    reads = 0
    read = watch._read_slowest

    async def counted():
        nonlocal reads
        reads += 1
        return await read()

    watch._read_slowest = counted
    try:
        waiters = [asyncio.create_task(watch.wait_for(written, timeout=120)) for _ in range(50)]
        await asyncio.sleep(0.5)
        assert not any(w.done() for w in waiters)
        for factory in PROJECTIONS.values():
            await catch_up(database_url, store, factory())
        assert all(await asyncio.gather(*waiters))
        # Unshared, each of the 50 waiters would read at least once on start and
        # once per wake-up: fewer reads than waiters means they shared them.
        assert reads < len(waiters), reads
    finally:
        await watch.close()


async def test_parley_project_runs_the_runner_as_its_own_worker(database_url, pool, recorder):
    import os
    import signal
    import sys

    env = {**os.environ, "PARLEY_DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "project", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        negotiation_id = await recorder.open(
            {"title": "Talks", "parties": [{"code": "A", "name": "A"}], "occurred_on": "2022-01-01"}
        )
        watch = ProjectionWatch(pool, database_url)
        try:
            assert await watch.wait_for(await last_written(pool), timeout=20)
        finally:
            await watch.close()
        assert await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'parley-projector:%'"
            " AND datname = current_database()"
        ) == len(PROJECTIONS)
        assert await pool.fetchval("SELECT slug FROM negotiation_summary WHERE negotiation_id = $1", negotiation_id)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0, stderr.decode()
