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



async def test_stream_caps_hold_across_two_app_instances_on_one_database(database_url, tmp_path, keys, monkeypatch):
    """The caps are the database's, not a process's (issue 15 finding 4): two app
    instances on one database share one per-key and one overall limit, and a
    stream closed on one gives its place back to the other."""
    import asyncio
    import time

    monkeypatch.setenv("PARLEY_MAX_STREAMS_PER_KEY", "3")
    monkeypatch.setenv("PARLEY_MAX_STREAMS", "4")
    one, two = make_app(database_url, tmp_path / "one"), make_app(database_url, tmp_path / "two")
    async with live_server(one) as base_one, httpx.AsyncClient(base_url=base_one, timeout=30) as http_one, \
            live_server(two) as base_two, httpx.AsyncClient(base_url=base_two, timeout=30) as http_two, \
            contextlib.AsyncExitStack() as on_one, contextlib.AsyncExitStack() as on_two:

        async def open_stream(http: httpx.AsyncClient, streams: contextlib.AsyncExitStack, role: str) -> int:
            response = await streams.enter_async_context(
                http.stream("GET", "/events/stream", headers=keys.headers(role)))
            if response.status_code != 200:
                await response.aread()
                if response.status_code == 429:
                    problem = problem_of(response)
                    assert problem["type"] == "urn:parley:problem:too-many-streams", problem
                    assert int(response.headers["retry-after"]) >= 1
                    refusals.append(problem["detail"])
            return response.status_code

        refusals: list[str] = []
        assert [await open_stream(http_one, on_one, "auditor") for _ in range(2)] == [200, 200]
        assert await open_stream(http_two, on_two, "auditor") == 200
        # The key holds its three streams over both instances: a fourth is refused on either.
        assert await open_stream(http_one, on_one, "auditor") == 429
        assert await open_stream(http_two, on_two, "auditor") == 429
        assert all("This API key" in detail for detail in refusals), refusals
        # Another key has room until the overall cap of 4, counted over both.
        assert await open_stream(http_one, on_one, "admin") == 200
        refusals.clear()
        assert await open_stream(http_two, on_two, "admin") == 429
        assert "This server has 4 streams open" in refusals[0], refusals

        # Streams closed on one instance give their places back to the other (once
        # the server has seen the client leave: bounded, and fails loudly).
        await on_one.aclose()
        deadline = time.monotonic() + 30
        while await open_stream(http_two, on_two, "admin") != 200:
            assert time.monotonic() < deadline, "closed streams were never given back within 30 s"
            await asyncio.sleep(0.2)
        assert await open_stream(http_two, on_two, "auditor") == 200
        assert await open_stream(http_two, on_two, "auditor") == 200
        assert await open_stream(http_one, on_one, "auditor") == 429  # 3 of 3 for the key, all on two


async def test_a_killed_process_holds_no_stream_places(database_url, tmp_path, keys, monkeypatch, processes):
    """`parley serve` killed with SIGKILL while its streams are open: the places it
    held are PostgreSQL's session locks, gone with its sessions, so another
    process on the database gets them (no heartbeat to wait out, nothing stale)."""
    import asyncio
    import signal
    import time

    from tests.integration.test_serve import free_port
    from tests.reliability.conftest import kill_group, start_serve, wait_ready

    caps = {"PARLEY_MAX_STREAMS_PER_KEY": "2", "PARLEY_MAX_STREAMS": "10"}
    for name, value in caps.items():
        monkeypatch.setenv(name, value)
    port, log = free_port(), tmp_path / "serve.log"
    serve = start_serve(database_url, port, log, **caps, PARLEY_DATA_DIR=str(tmp_path / "serve"))
    processes.append(serve)
    await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}", serve, log)
    app = make_app(database_url, tmp_path / "app")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as remote, \
            live_server(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as local, \
            contextlib.AsyncExitStack() as streams:
        for _ in range(2):
            held = await streams.enter_async_context(remote.stream("GET", "/events/stream",
                                                                   headers=keys.headers("auditor")))
            assert held.status_code == 200
        async with local.stream("GET", "/events/stream", headers=keys.headers("auditor")) as refused:
            assert refused.status_code == 429
        kill_group(serve, signal.SIGKILL)
        assert serve.poll() is not None
        deadline = time.monotonic() + 30
        while True:
            async with local.stream("GET", "/events/stream", headers=keys.headers("auditor")) as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "a killed process's places were still held after 30 s"
            await asyncio.sleep(0.2)
        with contextlib.suppress(httpx.HTTPError):
            await streams.aclose()
