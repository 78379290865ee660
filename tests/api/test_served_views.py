"""Issue status views served from a process's memory (service.read.served_views):
held between the issue projection's commits, dropped by each commit's notification
(whichever instance made it), never used for a read with a consistency token, nor
while the process's listener cannot be trusted.

The apps read the issue projection's checkpoint once an hour
(PARLEY_VIEW_CACHE_CHECK=3600), so a view that changes within the tests' deadlines
changed because a notification dropped it, not because that read noticed a commit. Changing `issue_status` by raw SQL, without the
projector's notification, is how a test sees what the memory holds."""

from __future__ import annotations

import asyncio
import json

import asyncpg
from litestar.testing import AsyncTestClient

from domain.example import COMMANDS, OPENED
from service.projection.checkpoints import PROJECTIONS_CHANNEL
from tests.api.conftest import make_app

BASE = "/negotiations/russia-ukraine-2022"
ISSUE = f"{BASE}/issues/leaders-meeting"
HOUR = 3600.0
# Far below HOUR: what arrives by then was not an expiry.
DEADLINE = 10.0

UA_POSITION = {
    "type": "position.stated", "occurred_on": "2022-03-20", "issue": "leaders-meeting", "party": "UA",
    "stance": "supports", "summary": "Ukraine wants the meeting", "claimed_by": ["UA"],
    "source": {"outlet": "RBC", "speaker": "Sergey Lavrov", "published_on": "2022-03-20"},
}  # fmt: skip


async def _recorded(client: AsyncTestClient, keys) -> str:
    """The example negotiation recorded; the token of its last write, read once."""
    recorder = keys.headers("recorder")
    assert (await client.post("/negotiations", json=OPENED, headers=recorder)).status_code == 201
    response = await client.post(f"{BASE}/commands", json={"commands": COMMANDS}, headers=recorder)
    assert response.status_code == 201, response.text
    token = response.json()["consistency_token"]
    assert (await client.get(ISSUE, params={"consistency_token": token}, headers=keys.headers("reader"))).status_code == 200
    # The notifications of the projections' last commits heard (milliseconds after
    # the token passed): a test's first read is then held, not dropped at once.
    await asyncio.sleep(0.5)
    return token


async def _changes_to(client: AsyncTestClient, keys, expected: bytes) -> bytes:
    """The plain read's body once it is `expected`, or the last one at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        body = (await client.get(ISSUE, headers=keys.headers("reader"))).content
        if body == expected or loop.time() > deadline:
            return body
        await asyncio.sleep(0.02)


async def _rewrite_behind_parley(database_url: str, summary: str) -> bytes:
    """The issue's stored view with another title, written without any notification."""
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("SELECT view_json FROM issue_status WHERE key = 'leaders-meeting'")
        view = json.loads(stored)
        view["title"] = summary
        rewritten = json.dumps(view, separators=(",", ":")).encode()
        await conn.execute("UPDATE issue_status SET view_json = $1 WHERE key = 'leaders-meeting'", rewritten)
        return rewritten
    finally:
        await conn.close()


async def _notify_issue_commit(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_notify($1, 'issue_status')", PROJECTIONS_CHANNEL)
    finally:
        await conn.close()


async def test_a_view_is_held_until_the_issue_projection_commits(database_url, tmp_path, keys):
    async with AsyncTestClient(make_app(database_url, tmp_path, view_cache_check=HOUR)) as client:
        await _recorded(client, keys)
        held = (await client.get(ISSUE, headers=keys.headers("reader"))).content
        rewritten = await _rewrite_behind_parley(database_url, "Rewritten behind Parley's back")
        # Held: the table changed without a commit of the projection being heard.
        again = await client.get(ISSUE, headers=keys.headers("reader"))
        assert again.content == held and again.headers["etag"]
        # A notification of another projection's commit leaves it held.
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("SELECT pg_notify($1, 'timeline')", PROJECTIONS_CHANNEL)
        finally:
            await conn.close()
        await asyncio.sleep(0.3)
        assert (await client.get(ISSUE, headers=keys.headers("reader"))).content == held
        # The issue projection's commit drops it.
        await _notify_issue_commit(database_url)
        assert await _changes_to(client, keys, rewritten) == rewritten


async def test_a_command_reaches_a_held_view_of_another_instance(database_url, tmp_path, keys):
    async with AsyncTestClient(make_app(database_url, tmp_path / "a", view_cache_check=HOUR)) as one, \
            AsyncTestClient(make_app(database_url, tmp_path / "b", view_cache_check=HOUR)) as two:
        await _recorded(one, keys)
        before = (await two.get(ISSUE, headers=keys.headers("reader"))).content
        await _rewrite_behind_parley(database_url, "Rewritten behind Parley's back")
        assert (await two.get(ISSUE, headers=keys.headers("reader"))).content == before  # held by `two`
        response = await one.post(f"{BASE}/commands", json=UA_POSITION, headers=keys.headers("recorder"))
        assert response.status_code == 201, response.text
        token = response.json()["consistency_token"]
        # Through either instance, with the token: the table, with the position.
        after = (await two.get(ISSUE, params={"consistency_token": token}, headers=keys.headers("reader"))).content
        assert after != before and b"Ukraine wants the meeting" in after
        # Without it, `two` no longer serves what it held once it hears the commit.
        assert await _changes_to(two, keys, after) == after
        assert await _changes_to(one, keys, after) == after


async def test_a_read_with_a_token_never_comes_from_memory(database_url, tmp_path, keys):
    async with AsyncTestClient(make_app(database_url, tmp_path, view_cache_check=HOUR)) as client:
        token = await _recorded(client, keys)
        held = (await client.get(ISSUE, headers=keys.headers("reader"))).content
        rewritten = await _rewrite_behind_parley(database_url, "Only in the table")
        with_token = await client.get(ISSUE, params={"consistency_token": token}, headers=keys.headers("reader"))
        assert with_token.status_code == 200 and with_token.content == rewritten
        assert (await client.get(ISSUE, headers=keys.headers("reader"))).content == held


async def test_nothing_is_served_from_memory_while_the_listener_is_not_trusted(database_url, tmp_path, keys):
    app = make_app(database_url, tmp_path, view_cache_check=HOUR)
    async with AsyncTestClient(app) as client:
        await _recorded(client, keys)
        held = (await client.get(ISSUE, headers=keys.headers("reader"))).content
        rewritten = await _rewrite_behind_parley(database_url, "Read while not listening")
        assert (await client.get(ISSUE, headers=keys.headers("reader"))).content == held
        await app.state.runtime.invalidations.close()  # as when its connection is lost
        assert (await client.get(ISSUE, headers=keys.headers("reader"))).content == rewritten


async def test_a_check_interval_of_zero_holds_nothing(database_url, tmp_path, keys):
    async with AsyncTestClient(make_app(database_url, tmp_path, view_cache_check=0.0)) as client:
        await _recorded(client, keys)
        await client.get(ISSUE, headers=keys.headers("reader"))
        rewritten = await _rewrite_behind_parley(database_url, "Never held")
        assert (await client.get(ISSUE, headers=keys.headers("reader"))).content == rewritten


async def test_a_read_that_raced_a_commit_is_not_kept(database_url):
    """The generation rule, on a real listener: what was read before a commit was
    heard is not held, as it may be older than that commit."""
    import uuid

    from service.invalidation import Invalidations
    from service.read.served_views import ServedViews

    invalidations = Invalidations(database_url)
    views = ServedViews(check_every=HOUR)
    views.attach(invalidations)
    await invalidations.start()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    checking = asyncio.create_task(views.check_checkpoint(pool))
    try:
        while not views.enabled:
            await asyncio.sleep(0.01)
        negotiation = uuid.uuid4()
        generation = views.generation()  # a read starts...
        await _notify_issue_commit(database_url)  # ...a commit is heard before it ends
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while views.generation() == generation and loop.time() < deadline:
            await asyncio.sleep(0.01)
        views.keep(generation, negotiation, "k", b'{"version":1}')
        assert views.get(negotiation, "k") is None
        views.keep(views.generation(), negotiation, "k", b'{"version":2}')
        assert views.get(negotiation, "k") == b'{"version":2}'
    finally:
        checking.cancel()
        await asyncio.gather(checking, return_exceptions=True)
        await pool.close()
        await invalidations.close()


async def test_a_commit_not_heard_is_noticed_by_its_checkpoint(database_url, tmp_path, keys):
    """A commit whose notification never came (its process died in between): the
    checkpoint read every PARLEY_VIEW_CACHE_CHECK seconds moved, the views go."""
    async with AsyncTestClient(make_app(database_url, tmp_path, view_cache_check=0.2)) as client:
        await _recorded(client, keys)
        held = (await client.get(ISSUE, headers=keys.headers("reader"))).content
        rewritten = await _rewrite_behind_parley(database_url, "Committed, never announced")
        assert (await client.get(ISSUE, headers=keys.headers("reader"))).content == held
        conn = await asyncpg.connect(database_url)
        try:
            # The checkpoint as a commit moves it, without the notification.
            await conn.execute("UPDATE projection_checkpoints SET position = position + 1 WHERE name = 'issue_status'")
            assert await _changes_to(client, keys, rewritten) == rewritten != held
        finally:
            await conn.execute("UPDATE projection_checkpoints SET position = position - 1 WHERE name = 'issue_status'")
            await conn.close()
