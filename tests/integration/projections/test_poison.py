"""A projection that meets an event it cannot apply stops at it and says so
(docs/operations.md, "A projection stuck at an event"); a database hiccup is
retried, never taken for a poison event; a rebuild after the fix resumes."""

from __future__ import annotations

import uuid

import msgspec

from projections import PROJECTIONS
from service.projection.checkpoints import read_checkpoint, read_stuck
from service.projection.rebuild import rebuild_all
from service.projection.runner import Projector
from service.projection.watch import projection_lag
from service.store.event_store import Checkpoint
from tests.integration.projections.conftest import last_written, wait_until_visible
from tests.integration.projections.test_runner import caught_up, eventually
from tests.pending_events import pending

TALKS = {"title": "Talks", "parties": [{"code": "A", "name": "A"}], "occurred_on": "2022-01-01"}
RAISE = {"type": "issue.raised", "occurred_on": "2022-01-02", "issue": "water", "title": "Water", "category": "other"}


async def _poisoned_log(store, recorder) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, int]:
    """One negotiation, then a `party.joined` whose data no payload has (as the old
    import let in), then a second negotiation recorded after it."""
    first = await recorder.open(TALKS)
    await recorder.record(first, RAISE)
    poison = msgspec.structs.replace(
        pending(first, type="party.joined", negotiation_id=first, unexpected=1), stream_type="negotiation"
    )
    await store.append([poison], {first: 1})
    second = await recorder.open({**TALKS, "title": "Later talks"})
    await recorder.record(second, RAISE)
    return first, poison.id, second, 2  # events before the poison one


async def stuck_rows(pool) -> dict[str, dict]:
    return {name: stuck for name in PROJECTIONS if (stuck := await read_stuck(pool, name)) is not None}


async def test_a_poison_event_stops_every_projection_at_it_and_is_reported(database_url, pool, store, recorder):
    first, poison_id, second, before = await _poisoned_log(store, recorder)
    await wait_until_visible(pool)
    projector = Projector(database_url, pool=pool, batch_size=100, poll_interval=0.05, lock_poll_interval=0.1)
    projector.start()
    try:
        async def all_stuck() -> bool:
            return len(await stuck_rows(pool)) == len(PROJECTIONS)

        await eventually(all_stuck)
        for name, stuck in (await stuck_rows(pool)).items():
            assert stuck["event_id"] == poison_id, name
            assert stuck["negotiation_id"] == first, name
            assert "party.joined" in stuck["error"] and "party" in stuck["error"], (name, stuck["error"])
            # Everything before the poison event is applied (the batch was split to
            # find it), nothing after it: the projection stops there.
            applied = await pool.fetchval("SELECT events_applied FROM projection_checkpoints WHERE name = $1", name)
            assert applied == before, name
        assert await pool.fetchval("SELECT count(*) FROM issue_status WHERE negotiation_id = $1", first) == 1
        assert await pool.fetchval("SELECT count(*) FROM negotiation_summary WHERE negotiation_id = $1", second) == 0
        # The lag that /health/ready reads names the stuck event.
        for lag in await projection_lag(pool):
            assert lag["stuck"]["event_id"] == poison_id and lag["events_behind"] == 3, lag
        assert all(s.stuck is not None for s in projector.stats())
        # It does not retry in a loop: the checkpoint row is not rewritten again.
        updated = await pool.fetchval("SELECT max(updated_at) FROM projection_checkpoints")
        errors = [s.errors for s in projector.stats()]
        await eventually(lambda: _slept(pool), within=60)
        assert await pool.fetchval("SELECT max(updated_at) FROM projection_checkpoints") == updated
        assert [s.errors for s in projector.stats()] == errors
    finally:
        await projector.stop()


async def _slept(pool) -> bool:
    # A wait measured by the database's clock (never asserted as a speed).
    await pool.execute("SELECT pg_sleep(0.5)")
    return True


class BrokenOn:
    """A projection with a deterministic bug on one event, until it is fixed."""

    def __init__(self, inner, event_id: uuid.UUID) -> None:
        self.inner = inner
        self.name, self.tables, self.lock_id, self.schema = inner.name, inner.tables, inner.lock_id, inner.schema
        self.event_id = event_id
        self.broken = True

    def reset(self) -> None:
        self.inner.reset()

    async def apply(self, conn, facts, history) -> None:
        if self.broken and any(f.record.id == self.event_id for f in facts):
            raise ValueError(f"cannot fold {self.event_id}")
        await self.inner.apply(conn, facts, history)


async def test_a_rebuild_after_the_fix_clears_the_stuck_event_and_the_runner_resumes(
    database_url, pool, store, recorder
):
    negotiation_id = await recorder.open(TALKS)
    bad = await recorder.record(negotiation_id, RAISE)
    for day in range(3, 6):
        await recorder.record(negotiation_id, {"type": "issue.discussed", "issue": "water",
                                               "occurred_on": f"2022-01-0{day}"})
    await wait_until_visible(pool)
    [bad_event] = bad.events
    broken = {name: BrokenOn(factory(), bad_event.id) for name, factory in PROJECTIONS.items()}
    projector = Projector(database_url, pool=pool, batch_size=100, poll_interval=0.05, lock_poll_interval=0.1,
                          projections=broken)
    projector.start()
    try:
        async def stuck_on_it() -> bool:
            rows = await stuck_rows(pool)
            return len(rows) == len(PROJECTIONS) and all(r["event_id"] == bad_event.id for r in rows.values())

        await eventually(stuck_on_it)
        assert "cannot fold" in (await read_stuck(pool, "timeline"))["error"]
        for projection in broken.values():
            projection.broken = False  # the fix (a new release, in real life)
        await rebuild_all(pool, list(broken.values()), progress=None)
        assert await stuck_rows(pool) == {}
        extra = await recorder.record(negotiation_id, {"type": "issue.discussed", "issue": "water",
                                                       "occurred_on": "2022-01-09"})
        for name in PROJECTIONS:
            await eventually(lambda name=name: caught_up(pool, name))
            assert await read_checkpoint(pool, name) >= extra.checkpoint
        assert all(s.stuck is None for s in projector.stats())
        assert await pool.fetchval("SELECT count(*) FROM timeline WHERE negotiation_id = $1", negotiation_id) == 6
    finally:
        await projector.stop()


class LosesItsConnectionOnce:
    """A database hiccup inside a batch: the projector's own connection is killed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name, self.tables, self.lock_id, self.schema = inner.name, inner.tables, inner.lock_id, inner.schema
        self.killed = 0

    def reset(self) -> None:
        self.inner.reset()

    async def apply(self, conn, facts, history) -> None:
        if self.killed < 3:
            self.killed += 1
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        await self.inner.apply(conn, facts, history)


async def test_a_database_hiccup_is_retried_and_never_marks_an_event_stuck(database_url, pool, store, recorder):
    negotiation_id = await recorder.open(TALKS)
    await recorder.record(negotiation_id, RAISE)
    await wait_until_visible(pool)
    flaky = {name: LosesItsConnectionOnce(factory()) for name, factory in PROJECTIONS.items()}
    projector = Projector(database_url, pool=pool, batch_size=100, poll_interval=0.05, lock_poll_interval=0.1,
                          projections=flaky)
    projector.start()
    try:
        for name in PROJECTIONS:
            await eventually(lambda name=name: caught_up(pool, name))
        assert all(p.killed == 3 for p in flaky.values())
        assert await stuck_rows(pool) == {}
        assert all(s.stuck is None and s.errors >= 3 for s in projector.stats())
        assert await read_checkpoint(pool, "issue_status") == await last_written(pool)
        assert await read_checkpoint(pool, "issue_status") != Checkpoint(0, 0)
    finally:
        await projector.stop()
