"""Every reader of the log held to the gap-free rule, through the running app.

The case (tests/late_commit.py): a command appends its event and is held before
its commit; a later command commits meanwhile, with a higher position and a
later transaction. A reader that delivered the later event now would have moved
its checkpoint past the earlier one, and would skip it for good once it commits.
So each reader -- GET /events paged with a cursor, GET /events/stream resumed with
Last-Event-ID (with and without a filter), GET /audit/export, the projections --
must not deliver the later event while the earlier one is running, and must
deliver both once it has committed: exactly once, in (txid, position) order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from tests.late_commit import HOLD_MARKER, Hold, held_commits
from tests.reliability.conftest import live_server, make_app, parley_env, problem_of, start_parley

DAY = "2024-05-01"
PARTIES = [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}]
# How long one awaited step may take before the test fails loudly: long enough for a
# loaded machine, never a measure of speed.
CEILING = 60.0


def commit_order(event: dict[str, Any]) -> tuple[int, int]:
    txid, _, position = event["checkpoint"].partition(".")
    return int(txid), int(position)


@dataclass
class Scene:
    """Two negotiations: `held` (RU-UA talks A) and `other` (B)."""

    http: httpx.AsyncClient
    recorder: dict[str, str]
    auditor: dict[str, str]
    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def record(self, slug: str, name: str, summary: str, *, issue: str = "grain") -> dict[str, Any]:
        """position.stated on the issue; its event remembered under `name`."""
        response = await self.http.post(
            f"/negotiations/{slug}/commands",
            json={"type": "position.stated", "occurred_on": DAY, "issue": issue, "party": "RU",
                  "stance": "proposes", "summary": summary},
            headers=self.recorder,
        )
        assert response.status_code == 201, response.text
        [event] = response.json()["events"]
        event["consistency_token"] = response.json()["consistency_token"]
        self.events[name] = event
        return event

    async def open(self, slug: str) -> str:
        opened = await self.http.post(
            "/negotiations", json={"title": slug, "slug": slug, "occurred_on": DAY, "parties": PARTIES},
            headers=self.recorder,
        )
        assert opened.status_code == 201, opened.text
        raised = await self.http.post(
            f"/negotiations/{slug}/commands",
            json={"type": "issue.raised", "occurred_on": DAY, "issue": "grain", "title": "Grain",
                  "category": "humanitarian"},
            headers=self.recorder,
        )
        assert raised.status_code == 201, raised.text
        return opened.json()["negotiation_id"]


@contextlib.asynccontextmanager
async def scene(database_url: str, data_dir: Path, keys) -> AsyncIterator[Scene]:
    async with live_server(make_app(database_url, data_dir)) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=CEILING) as http:
            yield Scene(http, keys.headers("recorder"), keys.headers("auditor"))


async def hold_early_commit_late(s: Scene, hold: Hold) -> asyncio.Task:
    """`early` appended on A and held; `late` committed on B meanwhile. Returns the
    held request (it completes once the hold is released)."""
    early = asyncio.create_task(s.record("talks-a", "early", f"early ({HOLD_MARKER})"))
    await hold.until_waiting()
    late = await s.record("talks-b", "late", "late")
    assert not early.done(), "the early command must still be running"
    return early


async def finish(s: Scene, hold: Hold, early: asyncio.Task) -> None:
    await hold.release()
    await asyncio.wait_for(early, CEILING)
    early_event, late_event = s.events["early"], s.events["late"]
    # The case is the one claimed: the held event has the lower position and the
    # earlier transaction, and committed after the later one.
    assert early_event["position"] < late_event["position"]
    assert commit_order(early_event) < commit_order(late_event)
    await s.record("talks-a", "final", "final")


async def all_events(s: Scene) -> list[dict[str, Any]]:
    response = await s.http.get("/events", params={"limit": 1000}, headers=s.auditor)
    assert response.status_code == 200, response.text
    return response.json()["items"]


# -- GET /events, paged with a cursor -----------------------------------------------------


async def page_through(s: Scene, cursor: str | None, **params: Any) -> tuple[list[dict[str, Any]], str | None]:
    """A client paging one event at a time from `cursor` until a page comes back
    empty; returns what it got and the cursor to resume from."""
    got = []
    while True:
        query = {"limit": 1, **params, **({"cursor": cursor} if cursor else {})}
        response = await s.http.get("/events", params=query, headers=s.auditor)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        if not items:
            return got, cursor
        got += items
        cursor = items[-1]["checkpoint"]


async def test_events_pages_never_pass_a_running_transaction(database_url, tmp_path, keys):
    async with scene(database_url, tmp_path, keys) as s:
        await s.open("talks-a"), await s.open("talks-b")
        await s.record("talks-a", "before", "before")
        async with held_commits(database_url) as hold:
            early = await hold_early_commit_late(s, hold)
            during, cursor = await page_through(s, None)
            assert s.events["before"]["id"] in [e["id"] for e in during]
            assert s.events["late"]["id"] not in [e["id"] for e in during], "served past a running transaction"
            filtered, filtered_cursor = await page_through(s, None, type="position.stated")
            assert [e["id"] for e in filtered] == [s.events["before"]["id"]]
            await finish(s, hold, early)
        rest, _ = await page_through(s, cursor)
        assert [e["id"] for e in rest] == [s.events[n]["id"] for n in ("early", "late", "final")]
        everything = during + rest
        assert [e["id"] for e in everything] == [e["id"] for e in await all_events(s)]
        assert sorted(everything, key=commit_order) == everything
        filtered_rest, _ = await page_through(s, filtered_cursor, type="position.stated")
        assert [e["id"] for e in filtered_rest] == [s.events[n]["id"] for n in ("early", "late", "final")]


# -- GET /events/stream, resumed with Last-Event-ID ---------------------------------------


async def sse_messages(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    event_id, data = None, None
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data = msgspec.json.decode(line[6:])
        elif line == "" and data is not None:
            yield event_id, data
            event_id, data = None, None


@contextlib.asynccontextmanager
async def event_stream(s: Scene, last_event_id: str, **params: Any) -> AsyncIterator[Any]:
    """The stream resumed after `last_event_id`; `next()` awaits its next event."""
    headers = {**s.auditor, "Last-Event-ID": last_event_id}
    async with s.http.stream("GET", "/events/stream", headers=headers, params=params) as response:
        assert response.status_code == 200
        messages = sse_messages(response)

        async def next_event() -> dict[str, Any]:
            event_id, data = await asyncio.wait_for(anext(messages), CEILING)
            assert event_id == data["checkpoint"]
            return data

        yield next_event


async def test_the_event_stream_never_passes_a_running_transaction(database_url, tmp_path, keys):
    async with scene(database_url, tmp_path, keys) as s:
        await s.open("talks-a"), await s.open("talks-b")
        resume_from = await s.record("talks-a", "resume-from", "resume from here")
        await s.record("talks-a", "before", "before")
        async with held_commits(database_url) as hold:
            early = await hold_early_commit_late(s, hold)
            # Both streams connect while `early` runs and `late` is committed: their
            # first read sees `before` and must stop there.
            async with event_stream(s, resume_from["checkpoint"]) as everything, \
                    event_stream(s, resume_from["checkpoint"], negotiation=s.events["before"]["negotiation_id"]) as only_a:
                assert (await everything())["id"] == s.events["before"]["id"]
                assert (await only_a())["id"] == s.events["before"]["id"]
                await finish(s, hold, early)
                assert [(await everything())["id"] for _ in range(3)] == [
                    s.events[n]["id"] for n in ("early", "late", "final")
                ], "the stream must deliver the held event before the later one"
                assert [(await only_a())["id"] for _ in range(2)] == [
                    s.events[n]["id"] for n in ("early", "final")
                ], "the filtered stream must not skip the held event"
        # Resumed after the held event: the rest, once each.
        async with event_stream(s, s.events["early"]["checkpoint"]) as resumed:
            assert [(await resumed())["id"] for _ in range(2)] == [s.events[n]["id"] for n in ("late", "final")]


# -- GET /audit/export ----------------------------------------------------------------------


async def export(s: Scene, **params: Any) -> list[dict[str, Any]]:
    response = await s.http.get("/audit/export", params=params, headers=s.auditor)
    assert response.status_code == 200, response.text
    return [msgspec.json.decode(line) for line in response.content.splitlines() if line]


async def test_an_export_is_a_prefix_that_never_passes_a_running_transaction(database_url, tmp_path, keys):
    async with scene(database_url, tmp_path, keys) as s:
        negotiation_b = (await s.open("talks-a"), await s.open("talks-b"))[1]
        await s.record("talks-a", "before", "before")
        async with held_commits(database_url) as hold:
            early = await hold_early_commit_late(s, hold)
            during = await export(s)
            during_b = await export(s, negotiation=negotiation_b)
            assert during[-1]["id"] == s.events["before"]["id"], "the export passed a running transaction"
            assert s.events["late"]["id"] not in [e["id"] for e in during_b]
            await finish(s, hold, early)
        after = await export(s)
        assert after[: len(during)] == during, "a later export extends an earlier one"
        assert [e["id"] for e in after[len(during):]] == [s.events[n]["id"] for n in ("early", "late", "final")]
        assert sorted(after, key=commit_order) == after
        after_b = await export(s, negotiation=negotiation_b)
        assert after_b[: len(during_b)] == during_b and after_b[-1]["id"] == s.events["late"]["id"]


# -- the projections --------------------------------------------------------------------------


async def timeline_ids(s: Scene, slug: str, token: str) -> list[str]:
    response = await s.http.get(
        f"/negotiations/{slug}/timeline", params={"consistency_token": token, "limit": 200}, headers=s.recorder
    )
    assert response.status_code == 200, response.text
    return [item["event_id"] for item in response.json()["items"]]


async def issue_view(s: Scene, slug: str, token: str) -> dict[str, Any]:
    response = await s.http.get(
        f"/negotiations/{slug}/issues/grain", params={"consistency_token": token}, headers=s.recorder
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_projections_never_pass_a_running_transaction(database_url, tmp_path, keys):
    """The projection runner in the app, and `parley projections rebuild` run while
    the early command is held: neither may take the later event first."""
    async with scene(database_url, tmp_path, keys) as s:
        await s.open("talks-a"), await s.open("talks-b")
        before = await s.record("talks-a", "before", "before")
        assert before["id"] in await timeline_ids(s, "talks-a", before["consistency_token"])
        async with held_commits(database_url) as hold:
            early = await hold_early_commit_late(s, hold)
            # The read models cannot reflect `late` before `early`: the read waits for
            # them (the app's own bounded wait) and says they are behind.
            behind = await s.http.get(
                "/negotiations/talks-b/timeline",
                params={"consistency_token": s.events["late"]["consistency_token"]},
                headers=s.recorder,
            )
            assert (behind.status_code, problem_of(behind)["type"]) == (503, "urn:parley:problem:consistency-timeout")
            # A rebuild from the log now must stop before the running transaction too.
            for name in ("timeline", "issue_status"):
                rebuild = start_parley(
                    ["projections", "rebuild", name], parley_env(database_url), tmp_path / f"rebuild-{name}.log"
                )
                assert await asyncio.to_thread(rebuild.wait, CEILING) == 0, (tmp_path / f"rebuild-{name}.log").read_text()
            await finish(s, hold, early)
        a_ids = await timeline_ids(s, "talks-a", s.events["final"]["consistency_token"])
        b_ids = await timeline_ids(s, "talks-b", s.events["late"]["consistency_token"])
        for name, ids in (("before", a_ids), ("early", a_ids), ("final", a_ids), ("late", b_ids)):
            assert ids.count(s.events[name]["id"]) == 1, f"{name} must be on the timeline exactly once"
        view = await issue_view(s, "talks-a", s.events["final"]["consistency_token"])
        # before, early and final are position.stated on A's issue after issue.raised.
        assert (view["events"], view["positions"]["RU"]["summary"]) == (4, "final")
        assert (await issue_view(s, "talks-b", s.events["late"]["consistency_token"]))["events"] == 2
