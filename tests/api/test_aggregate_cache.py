"""The command path's aggregate cache (service.write.aggregate_cache) never serves stale
state: two app instances on one database, each with its own cache, see each
other's writes, and a failed or retried request leaves nothing behind."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from litestar.testing import AsyncTestClient

from domain.issue import Issue, issue_stream_id
from projections.records import recorded_from_stored
from service.store.event_store import EventStore
from tests.api.conftest import make_app

OPENED = {"title": "Grain talks", "slug": "grain-talks", "occurred_on": "2022-07-01",
          "parties": [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}]}
BASE = "/negotiations/grain-talks"
ISSUE = "grain"


def proposal(pid: str) -> dict:
    return {"type": "proposal.made", "occurred_on": "2022-07-02", "issue": ISSUE, "proposal_id": pid,
            "by": "RU", "to": ["UA"], "summary": "ships leave Odesa"}


def accept(pid: str) -> dict:
    return {"type": "proposal.accepted", "occurred_on": "2022-07-03", "issue": ISSUE, "proposal_id": pid, "by": "UA"}


def problem_type(response) -> str:
    return response.json()["type"].removeprefix("urn:parley:problem:")


async def stream_view(database_url: str, stream_id: uuid.UUID, version: int | None = None):
    """(version, view) of the issue folded from the stored stream, whole or up to `version`."""
    conn = await asyncpg.connect(database_url)
    try:
        events = await EventStore(conn).read_stream(stream_id, conn=conn)  # type: ignore[arg-type]
    finally:
        await conn.close()
    if version is not None:
        events = [e for e in events if e.version <= version]
    return events[-1].version, Issue.from_events(recorded_from_stored(e) for e in events).fold.view()


async def assert_a_fold_of_the_stream(app, database_url: str, stream_id: uuid.UUID) -> None:
    """What an instance holds is absent or exactly the fold of a prefix of the committed stream."""
    entry = cached(app, stream_id)
    if entry is not None:
        assert entry == await stream_view(database_url, stream_id, entry[0])


def cached(app, stream_id: uuid.UUID):
    held = app.state.runtime.aggregates._entries.get(stream_id)
    return None if held is None else (held[0], held[1].fold.view())


async def test_two_instances_never_see_stale_cached_state(database_url, tmp_path, keys):
    app_a, app_b = make_app(database_url, tmp_path / "a"), make_app(database_url, tmp_path / "b")
    async with AsyncTestClient(app_a) as a, AsyncTestClient(app_b) as b:
        recorder = keys.headers("recorder")
        opened = await a.post("/negotiations", json=OPENED, headers=recorder)
        assert opened.status_code == 201, opened.text
        stream_id = issue_stream_id(uuid.UUID(opened.json()["negotiation_id"]), ISSUE)

        async def post(client, body, status=201):
            response = await client.post(f"{BASE}/commands", json=body, headers=recorder)
            assert response.status_code == status, response.text
            return response

        await post(a, {"type": "issue.raised", "occurred_on": "2022-07-01", "issue": ISSUE,
                       "title": "Grain exports", "category": "humanitarian"})
        await post(a, proposal("p1"))  # A caches the issue at version 2
        assert cached(app_a, stream_id) == await stream_view(database_url, stream_id)
        await post(b, accept("p1"))  # through B: A's cached fold is now behind the stream
        assert cached(app_a, stream_id)[0] == 2

        # A reads the tail: the proposal is already accepted (closed), not open.
        refused = await post(a, accept("p1"), 409)
        assert problem_type(refused) == "proposal-closed"
        withdrawn = await post(a, {**accept("p1"), "type": "proposal.withdrawn", "by": "RU"}, 409)
        assert problem_type(withdrawn) == "proposal-closed"
        # A failed request drops what it took; it caches nothing.
        assert cached(app_a, stream_id) is None

        # A failing batch evolves the cached fold with its first command, then fails:
        # that evolved fold must not survive (p2 was never recorded).
        await post(a, proposal("p2"))
        assert cached(app_a, stream_id) == await stream_view(database_url, stream_id)
        batch = await post(a, {"commands": [proposal("p3"), accept("no-such-proposal")]}, 422)
        assert problem_type(batch) == "unknown-proposal"
        assert problem_type(await post(a, accept("p3"), 422)) == "unknown-proposal"
        await post(a, accept("p2"))
        assert cached(app_a, stream_id) == await stream_view(database_url, stream_id)

        # Alternating instances, every decision on the other's writes.
        for n in range(4, 10):
            await post(a if n % 2 else b, proposal(f"p{n}"))
            await post(b if n % 2 else a, accept(f"p{n}"))
            assert problem_type(await post(a, accept(f"p{n}"), 409)) == "proposal-closed"
            assert problem_type(await post(b, accept(f"p{n}"), 409)) == "proposal-closed"

        # Concurrent requests through one instance: races are lost and retried
        # (without the cache); every entry left is the fold of the committed stream.
        responses = await asyncio.gather(*(post(a if n % 3 else b, proposal(f"q{n}")) for n in range(12)))
        versions = sorted(r.json()["events"][0]["version"] for r in responses)
        assert versions == list(range(versions[0], versions[0] + 12))
        for app in (app_a, app_b):
            await assert_a_fold_of_the_stream(app, database_url, stream_id)
        for n in range(12):
            await post(b if n % 2 else a, accept(f"q{n}"))
        # The last accept went through B: B holds the whole stream's fold; A holds
        # nothing or the fold of a prefix (an older entry, never a wrong one).
        assert cached(app_b, stream_id) == await stream_view(database_url, stream_id)
        await assert_a_fold_of_the_stream(app_a, database_url, stream_id)
