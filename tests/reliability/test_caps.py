"""Bounded cost (issue 15 finding 4): open event streams are capped per API key and
in all, and one more is a 429 problem with Retry-After, not another open stream."""

from __future__ import annotations

import contextlib

import httpx

from tests.reliability.conftest import live_server, make_app, problem_of


async def test_event_streams_are_capped_per_key_and_in_all(database_url, tmp_path, keys, monkeypatch):
    monkeypatch.setenv("PARLEY_MAX_STREAMS_PER_KEY", "2")
    monkeypatch.setenv("PARLEY_MAX_STREAMS", "3")
    app = make_app(database_url, tmp_path)
    async with live_server(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http, \
            contextlib.AsyncExitStack() as streams:

        async def open_stream(role: str) -> httpx.Response:
            response = await streams.enter_async_context(
                http.stream("GET", "/events/stream", headers=keys.headers(role)))
            if response.status_code != 200:
                await response.aread()
            return response

        assert [(await open_stream("auditor")).status_code for _ in range(2)] == [200, 200]
        refused = await open_stream("auditor")
        assert refused.status_code == 429
        assert problem_of(refused)["type"] == "urn:parley:problem:too-many-streams"
        assert int(refused.headers["retry-after"]) >= 1
        # Another key still has room, until the server's cap.
        assert (await open_stream("admin")).status_code == 200
        assert (await open_stream("admin")).status_code == 429
    # Closed streams give their places back.
    async with live_server(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        async with http.stream("GET", "/events/stream", headers=keys.headers("auditor")) as again:
            assert again.status_code == 200


async def test_a_record_time_filter_reads_an_index_range_not_the_whole_log(database_url):
    """GET /events?recorded_after= on a log of 3,000 events: the plan of the very
    statement the store runs reads an index range (events_recorded_at, migration
    0030), never a sequential scan of the whole log (what main did)."""
    import datetime as dt
    import uuid

    import asyncpg
    import msgspec

    from service.store import log_reader
    from service.store.event_store import EventStore, PendingEvent

    conn = await asyncpg.connect(database_url)
    try:
        store = EventStore(None)  # type: ignore[arg-type]
        for batch in range(30):
            async with conn.transaction():
                await store.append([
                    PendingEvent(id=uuid.uuid4(), stream_id=uuid.uuid4(), stream_type="negotiation",
                                 type="negotiation.opened", schema_version=1,
                                 data=msgspec.json.encode({"title": f"t{batch}-{n}"}), occurred_on="2022-03-01",
                                 recorded_by="test")
                    for n in range(100)
                ], conn=conn)
        await conn.execute("ANALYZE events")
        latest = await conn.fetchval("SELECT max(recorded_at) FROM events")
        sql = getattr(log_reader, "log_sql", None)
        statement = sql(timed=True) if sql else log_reader._LOG_SQL
        plan = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN " + statement, "0", 0, 100, None, 0, None, None, None, latest - dt.timedelta(microseconds=1),
            None))
        # Which index wins depends on the planner's estimate for the gap-free bound
        # (a long transaction elsewhere on the server makes events_commit_order look
        # cheap); what must never happen is a scan of the whole log.
        assert "Seq Scan" not in plan, plan
        assert "events_recorded_at" in plan or "events_commit_order" in plan, plan
    finally:
        await conn.close()
