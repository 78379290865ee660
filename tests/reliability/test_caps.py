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
