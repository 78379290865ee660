"""A rebuild's tables against the live projection's, row for row and column for
column (served bytes, jsonb copies, snapshot rows and heads, the summary's issue
briefs, the timeline's party names), on a real database: the in-memory fold
with its rows COPYed in (projections.bulk), and the same with memory so small
that negotiations are evicted and their later facts go through the
projections' own batches."""

from __future__ import annotations

from projections import PROJECTIONS
from projections.issue_status import IssueStatusProjection
from projections.negotiation_summary import NegotiationSummaryProjection
from projections.timeline import TimelineProjection
from service.projection.rebuild import rebuild, rebuild_all
from tests.integration.projections.workload import RandomWorkload

# Every table of every projection, with the columns that order it.
ORDER = {
    "issue_status": "stream_id",
    "issue_snapshots": "stream_id, boundary",
    "issue_snapshot_heads": "stream_id",
    "negotiation_summary_issues": "stream_id",
    "negotiation_summary": "negotiation_id",
    "timeline_parties": "negotiation_id, code",
    "timeline": "event_id",
}


async def every_row(pool) -> dict[str, list[tuple]]:
    tables = [t for factory in PROJECTIONS.values() for t in factory.tables]
    assert sorted(tables) == sorted(ORDER)
    rows = {}
    for table in tables:
        # Identifiers from the fixed list above; jsonb compared as its text.
        found = await pool.fetch(f"SELECT to_jsonb(t)::text AS row FROM {table} t ORDER BY {ORDER[table]}")
        rows[table] = [r["row"] for r in found]
    return rows


def count_batches(monkeypatch) -> dict[str, int]:
    """How many batches each projection class applied (the live path)."""
    calls = dict.fromkeys(PROJECTIONS, 0)
    for cls in (IssueStatusProjection, NegotiationSummaryProjection, TimelineProjection):
        original = cls.apply

        async def counted(self, conn, facts, history, original=original, name=cls.name):
            calls[name] += 1
            await original(self, conn, facts, history)

        monkeypatch.setattr(cls, "apply", counted)
    return calls


async def test_a_rebuild_writes_every_row_the_live_projections_write(pool, recorder, project, monkeypatch):
    workload = RandomWorkload(recorder, seed=31)
    await workload.run(negotiations=4, commands=260)
    await project(batch_size=3)
    live = await every_row(pool)
    assert len(live["issue_snapshots"]) > len(live["issue_status"]) >= 4
    assert len(live["timeline"]) == workload.recorded

    calls = count_batches(monkeypatch)
    await rebuild_all(pool, batch_size=25, progress=None)
    assert calls == dict.fromkeys(PROJECTIONS, 0)  # all of it folded in memory and COPYed
    assert await every_row(pool) == live

    # Memory for one event: every negotiation not in the batch is evicted, and
    # its later facts are applied on top of the rows written for it.
    await rebuild_all(pool, batch_size=10, held_events=1, progress=None)
    assert all(n > 0 for n in calls.values()), calls
    assert await every_row(pool) == live


async def test_one_projection_rebuilt_alone_writes_the_same_rows(pool, recorder, project):
    workload = RandomWorkload(recorder, seed=8)
    await workload.run(negotiations=2, commands=120)
    await project(batch_size=5)
    live = await every_row(pool)
    for name in PROJECTIONS:
        await rebuild(pool, name, batch_size=40, progress=None)
        assert await every_row(pool) == live, name
