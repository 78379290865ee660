"""Writers whose commits interleave (and land in the log out of stream order)."""

from __future__ import annotations

import asyncio
import random

import msgspec

from domain.status import fold_issue
from projections import PROJECTIONS, negotiation_summary
from projections.records import recorded_from_stored
from service.projection.runner import Projector
from service.projection.watch import ProjectionWatch
from service.store.event_store import Checkpoint
from tests.integration.projections.conftest import served


async def out_of_stream_order(pool) -> int:
    """Pairs of events of one stream whose commit order is not their version order."""
    return await pool.fetchval(
        """
        SELECT count(*) FROM events a JOIN events b ON a.stream_id = b.stream_id AND a.version < b.version
        WHERE (a.txid, a.position) > (b.txid, b.position)
        """
    )


async def test_concurrent_writers_still_produce_correct_counts(database_url, pool, store, recorder):
    parties = [{"code": "A", "name": "Aland"}, {"code": "B", "name": "Bland"}]
    negotiation_id = await recorder.open({"title": "Busy talks", "parties": parties, "occurred_on": "2022-01-01"})
    projector = Projector(database_url, pool=pool, batch_size=3, poll_interval=0.1, lock_poll_interval=0.1)
    projector.start()
    watch = ProjectionWatch(pool, database_url)
    try:
        # One forced inversion: the first writer has its transaction id, then
        # waits while a later transaction writes the same issue and commits.
        await recorder.record(negotiation_id, {"type": "issue.raised", "occurred_on": "2022-01-02",
                                               "issue": "shared", "title": "Shared", "category": "other"})
        go = asyncio.Event()
        early = asyncio.create_task(recorder.record(
            negotiation_id,
            {"type": "position.stated", "occurred_on": "2022-01-03", "issue": "shared", "party": "A",
             "stance": "demands", "summary": "first in txid, last in version"},
            txid_taken=go.wait,
        ))
        await asyncio.sleep(0.05)
        await recorder.record(negotiation_id, {"type": "proposal.made", "occurred_on": "2022-01-03", "issue": "shared",
                                               "proposal_id": "p", "by": "B", "to": ["A"], "summary": "s"})
        go.set()
        await early
        assert await out_of_stream_order(pool) >= 1

        # Eight writers on their own issues and on the shared one, each transaction
        # holding its id a random moment before it writes.
        rng = random.Random(1)

        written: list[Checkpoint] = []

        async def writer(w: int) -> None:
            key = f"issue-{w}"
            await recorder.record(negotiation_id, {"type": "issue.raised", "occurred_on": "2022-01-02", "issue": key,
                                                   "title": key, "category": "other"})
            for step in range(8):
                delay = rng.random() * 0.02
                target = "shared" if step % 3 == 0 else key
                body = (
                    {"type": "proposal.made", "occurred_on": "2022-01-04", "issue": target,
                     "proposal_id": f"w{w}-{step}", "by": "A", "to": ["B"], "summary": "offer"}
                    if step % 2 == 0
                    else {"type": "position.stated", "occurred_on": "2022-01-04", "issue": target,
                          "party": "B", "stance": "opposes", "summary": f"no {step}"}
                )
                result = await recorder.record(negotiation_id, body, txid_taken=lambda: asyncio.sleep(delay))
                written.append(result.checkpoint)
            if w % 2:
                result = await recorder.record(negotiation_id, {"type": "issue.dropped", "occurred_on": "2022-01-05",
                                                                "issue": key})
                written.append(result.checkpoint)

        await asyncio.gather(*(writer(w) for w in range(8)))
        # Each write's own checkpoint (its consistency token), not the visible
        # head: a transaction still running (a projector batch, say) holds the
        # visible head back.
        assert await watch.wait_for(max(written), timeout=20)

        summary = msgspec.json.decode(await negotiation_summary.fetch(pool, negotiation_id))
        expected: dict[str, int] = {}
        for row in await pool.fetch("SELECT DISTINCT stream_id FROM events WHERE stream_type = 'issue'"):
            records = [recorded_from_stored(e) for e in await store.read_stream(row["stream_id"])]
            status = fold_issue(records).status
            expected[status] = expected.get(status, 0) + 1
        assert summary["issue_counts"] == dict(sorted(expected.items()))
        assert summary["issue_counts"] == {"dropped": 4, "proposal_on_table": 5}
        total = await pool.fetchval("SELECT count(*) FROM events")
        for name in PROJECTIONS:
            assert await pool.fetchval(
                "SELECT events_applied FROM projection_checkpoints WHERE name = $1", name
            ) == total
        assert await pool.fetchval("SELECT count(*) FROM timeline") == total
        live = await served(pool)
    finally:
        await watch.close()
        await projector.stop()

    # And the live result is what one pass over the finished log gives.
    await pool.execute("TRUNCATE issue_status, negotiation_summary, negotiation_summary_issues, timeline, timeline_parties")
    await pool.execute("UPDATE projection_checkpoints SET txid = 0, position = 0, events_applied = 0")
    from tests.integration.projections.conftest import catch_up

    for factory in PROJECTIONS.values():
        await catch_up(database_url, store, factory(), batch_size=1000)
    assert await served(pool) == live
