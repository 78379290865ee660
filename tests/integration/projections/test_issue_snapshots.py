"""The issue projection's snapshots for time travel (projections/issue_snapshots.py)
on a real database: for a random workload (timed facts that start before the
day's whole-day facts, retractions, disputes) every snapshot answer equals the
log fold at many as_of values, whatever the batch size; a rebuild writes the
same rows; a stream the projection has not caught up with is never answered."""

from __future__ import annotations

import msgspec

from domain.records import Recorded
from domain.status import fold_issue, select_known
from projections import issue_snapshots
from projections.issue_status import IssueStatusProjection
from projections.records import recorded_from_stored
from service.projection.rebuild import rebuild
from service.read.windows import TimeTravel
from service.store.event_store import EventStore
from tests.integration.projections.conftest import catch_up
from tests.integration.projections.workload import RandomWorkload

AS_OF = ["2022-02-27", "2022-02-28", *(f"2022-03-{d:02d}" for d in range(1, 30)),
         "2022-03-04T21:00:00+00:00", "2022-03-09T23:59:59+03:00", "2022-03-15T00:00:00+03:00"]  # fmt: skip


def folded(records: list[Recorded], as_of) -> bytes | None:
    selected = select_known(records, as_of=as_of)
    if not selected or selected[0].type != "issue.raised":
        return None
    return msgspec.json.encode(fold_issue(selected))


async def issue_streams(pool) -> dict:
    rows = await pool.fetch("SELECT stream_id, version FROM streams WHERE stream_type = 'issue'")
    return {r["stream_id"]: r["version"] for r in rows}


async def snapshot_rows(pool) -> list[tuple]:
    rows = await pool.fetch("SELECT * FROM issue_snapshots ORDER BY stream_id, boundary")
    heads = await pool.fetch("SELECT * FROM issue_snapshot_heads ORDER BY stream_id")
    return [tuple(r) for r in rows] + [tuple(r) for r in heads]


async def check_against_the_log(pool, store: EventStore) -> int:
    versions = await issue_streams(pool)
    answered = 0
    for stream_id, version in versions.items():
        records = [recorded_from_stored(e) for e in await store.read_stream(stream_id)]
        for text in AS_OF:
            as_of = TimeTravel.parse(text, None).as_of
            found = (await issue_snapshots.snapshots_at(pool, {stream_id: version}, as_of)).get(stream_id)
            if found is not None:
                answered += 1
                assert found.view_json == folded(records, as_of), (stream_id, text)
    return answered


async def test_snapshots_equal_the_log_fold_in_any_batches_and_after_a_rebuild(database_url, pool, store, recorder):
    workload = RandomWorkload(recorder, seed=12)
    await workload.run(negotiations=2, commands=220)
    await catch_up(database_url, store, IssueStatusProjection(), batch_size=3)
    in_small_batches = await snapshot_rows(pool)
    answered = await check_against_the_log(pool, store)
    streams = len(await issue_streams(pool))
    assert streams >= 4 and answered == streams * len(AS_OF)  # nothing stale in this workload

    await rebuild(pool, "issue_status", batch_size=500, progress=None)
    assert await snapshot_rows(pool) == in_small_batches


async def test_a_stream_the_projection_is_behind_on_is_folded_from_the_log(database_url, pool, store, recorder):
    workload = RandomWorkload(recorder, seed=7)
    await workload.run(negotiations=1, commands=40)
    await catch_up(database_url, store, IssueStatusProjection())
    versions = await issue_streams(pool)
    stream_id, version = max(versions.items(), key=lambda item: item[1])
    assert (await issue_snapshots.snapshots_at(pool, {stream_id: version}, TimeTravel.parse("2022-03-28", None).as_of))

    negotiation_id = next(iter(workload.negotiations))
    key = await pool.fetchval("SELECT key FROM issue_status WHERE stream_id = $1", stream_id)
    await recorder.record(negotiation_id, {"type": "issue.discussed", "occurred_on": "2022-03-01", "issue": key,
                                           "summary": "late news"})  # fmt: skip
    now = await store.stream_version(stream_id)
    assert now == version + 1
    for text in ("2022-02-28", "2022-03-01", "2022-03-28"):
        as_of = TimeTravel.parse(text, None).as_of
        assert await issue_snapshots.snapshots_at(pool, {stream_id: now}, as_of) == {}
    await catch_up(database_url, store, IssueStatusProjection())
    assert await check_against_the_log(pool, store) > 0


async def test_snapshots_left_behind_by_a_runner_without_them_are_rewritten(database_url, pool, store, recorder):
    """A runner of a version without snapshots (a rolling upgrade) moves the issue
    rows on but not the snapshots; the next batch of this version finds them
    valid through another version than the row, refolds the stream and rewrites
    every snapshot row (here: rows spoiled on purpose, heads one version back)."""
    workload = RandomWorkload(recorder, seed=5)
    await workload.run(negotiations=1, commands=60)
    await catch_up(database_url, store, IssueStatusProjection())
    versions = await issue_streams(pool)
    stream_id = max(versions, key=versions.get)
    await pool.execute("UPDATE issue_snapshots SET view_json = 'spoilt' WHERE stream_id = $1", stream_id)
    await pool.execute("UPDATE issue_snapshot_heads SET valid_through = valid_through - 1 WHERE stream_id = $1",
                       stream_id)  # fmt: skip
    key = await pool.fetchval("SELECT key FROM issue_status WHERE stream_id = $1", stream_id)
    await recorder.record(next(iter(workload.negotiations)), {"type": "issue.discussed", "occurred_on": "2022-03-28",
                                                              "issue": key, "summary": "more"})  # fmt: skip
    await catch_up(database_url, store, IssueStatusProjection())
    assert await check_against_the_log(pool, store) == len(versions) * len(AS_OF)
    after = await snapshot_rows(pool)
    await rebuild(pool, "issue_status", batch_size=500, progress=None)
    assert await snapshot_rows(pool) == after
