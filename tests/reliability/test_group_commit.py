"""Group commit on a long issue stream (service.write.group_commit), over real HTTP
to the app under a real uvicorn, on real PostgreSQL.

Commands that arrive while a stream's turn is held join the next batch. The
tests hold that turn themselves (the server runs in the test's event loop, so
the test can take the turn its requests then wait for), send requests one by
one until each is queued, and release it: the batch and its order are then
known, and each request's answer can be checked against what it would have been
answered alone. The log is checked too (GET /events): every acknowledged event
is in it exactly once, nothing refused is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from domain.issue import issue_stream_id
from tests.reliability.conftest import live_server, make_app, problem_of
from tests.reliability.test_real_concurrency import log_events, open_with_issue

DAY = "2024-05-01"
SLUG = "grain-talks"


def position(summary: str, party: str = "P1", **extra: Any) -> dict:
    return {"type": "position.stated", "occurred_on": DAY, "issue": "grain", "party": party,
            "stance": "supports", "summary": summary, **extra}  # fmt: skip


@contextlib.asynccontextmanager
async def served(database_url: str, data_dir) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app under uvicorn with every issue stream "long" once cached past
    version 2 (so that its commands take turns and commit in groups), a client,
    and the app's command service."""
    app = make_app(database_url, data_dir)
    async with live_server(app) as base_url:
        app.state.runtime.aggregates.turns_from = 2
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
            yield http, app.state.runtime.commands


async def long_issue(http: httpx.AsyncClient, recorder: dict[str, str]) -> uuid.UUID:
    negotiation = await open_with_issue(http, recorder, SLUG)
    for n in range(3):
        said = await http.post(f"/negotiations/{SLUG}/commands", json=position(f"warm {n}"), headers=recorder)
        assert said.status_code == 201, said.text
    return issue_stream_id(uuid.UUID(negotiation), "grain")


def without_version(problem: dict, version: int) -> str:
    """A problem's JSON with the stream's current version taken out (to compare
    the refusals of one request on two versions of a stream)."""
    text = json.dumps(problem, sort_keys=True)
    for said in (f'"current_version": {version}', f"version {version}", f"at {version}"):
        text = text.replace(said, said.replace(str(version), "N"))
    return text


async def until(check, what: str) -> None:
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def one_batch(http, commands, stream_id, sends: list[tuple[dict, dict[str, str]]]) -> list[httpx.Response]:
    """The requests `sends` (body, headers) in this order, all in one batch: the
    test holds the stream's turn while they queue, then lets the leader go."""
    groups = commands.groups
    turn = commands.cache.turns()
    assert await turn.enter(stream_id)
    batches = groups.batches
    tasks = []
    try:
        for n, (body, headers) in enumerate(sends):
            tasks.append(asyncio.create_task(http.post(f"/negotiations/{SLUG}/commands", json=body, headers=headers)))
            if n == 0:
                await until(lambda: groups.leading(stream_id), "the first request to lead")
            else:
                await until(lambda n=n: groups.waiting(stream_id) == n, f"request {n} to be queued")
    finally:
        turn.release()
    responses = await asyncio.gather(*tasks)
    assert groups.batches == batches + 1, "the requests were not recorded in one batch"
    return responses


async def test_a_batch_answers_each_request_with_its_own_events_and_loses_none(database_url, tmp_path, keys):
    recorder, auditor = keys.headers("recorder"), keys.headers("auditor")
    async with served(database_url, tmp_path) as (http, commands):
        stream_id = await long_issue(http, recorder)
        sends = []
        for n in range(8):
            request_id = str(uuid.uuid4())
            sends.append((position(f"batched {n}", party=f"P{n + 1}"), {**recorder, "X-Request-Id": request_id}))
        responses = await one_batch(http, commands, stream_id, sends)
        versions = []
        for (body, headers), response in zip(sends, responses):
            assert response.status_code == 201, response.text
            [event] = response.json()["events"]
            assert (event["data"]["summary"], event["data"]["party"]) == (body["summary"], body["party"])
            assert event["correlation_id"] == headers["X-Request-Id"]
            assert event["stream_id"] == str(stream_id)
            versions.append(event["version"])
        # In arrival order, one after the other, after the 4 events before (raised + 3).
        assert versions == list(range(5, 13))
        events = [r.json()["events"][0] for r in responses]
        assert len({e["checkpoint"].split(".")[0] for e in events}) == 1, "one transaction for the batch"
        assert all(e["receipt"] for e in events) and len({e["receipt"] for e in events}) == 8
        # Each token names its own event: a read with it sees at least that version.
        for response, version in zip(responses, versions):
            read = await http.get(f"/negotiations/{SLUG}/issues/grain", headers=recorder,
                                  params={"consistency_token": response.json()["consistency_token"]})
            assert read.status_code == 200, read.text
            assert read.json()["version"] >= version
        tokens = [r.json()["consistency_token"] for r in responses]
        assert len(set(tokens)) == len(tokens), "each answer's token names its own last event"
        logged = await log_events(http, auditor, str(uuid.UUID(responses[0].json()["negotiation_id"])),
                                  "position.stated")
        batched = [e for e in logged if e["data"]["summary"].startswith("batched")]
        assert [e["id"] for e in batched] == [r.json()["events"][0]["id"] for r in responses]
        assert [e["version"] for e in logged if e["stream_id"] == str(stream_id)] == list(range(2, 13))


async def test_a_refused_request_in_the_middle_of_a_batch_gets_its_problem_and_the_others_commit(
    database_url, tmp_path, keys
):
    recorder, auditor = keys.headers("recorder"), keys.headers("auditor")
    async with served(database_url, tmp_path) as (http, commands):
        stream_id = await long_issue(http, recorder)
        # The stream is at version 4. Requests 0-1 commit (5, 6); 2: a party no one
        # named; 3: If-Match on the version before it (6): commits (7); 4: If-Match
        # on a version it is not at; 5: expected_version stale; 6-7 commit (8, 9).
        sends = [
            (position("first"), recorder),
            (position("second"), recorder),
            (position("unknown party", party="XX"), recorder),
            (position("matched"), {**recorder, "If-Match": '"6"'}),
            (position("stale if-match"), {**recorder, "If-Match": '"4"'}),
            (position("stale expected", expected_version=4), recorder),
            (position("seventh"), recorder),
            (position("eighth"), recorder),
        ]
        responses = await one_batch(http, commands, stream_id, sends)
        statuses = [r.status_code for r in responses]
        assert statuses == [201, 201, 422, 201, 412, 409, 201, 201], [r.text[:200] for r in responses]
        assert problem_of(responses[2])["type"] == "urn:parley:problem:unknown-party"
        stale = problem_of(responses[4])
        assert (stale["type"], stale["current_version"], stale["stream_id"]) == (
            "urn:parley:problem:precondition-failed", 7, str(stream_id))
        conflict = problem_of(responses[5])
        assert (conflict["type"], conflict["current_version"]) == ("urn:parley:problem:version-conflict", 7)
        committed = [(r.json()["events"][0]["data"]["summary"], r.json()["events"][0]["version"])
                     for r in responses if r.status_code == 201]
        assert committed == [("first", 5), ("second", 6), ("matched", 7), ("seventh", 8), ("eighth", 9)]
        # Each refusal is the problem the request gets alone on the same state: the
        # stream is at 9 now, so the stale ones are refused again, naming 9.
        alone = [await http.post(f"/negotiations/{SLUG}/commands", json=body, headers=headers)
                 for body, headers in (sends[2], sends[4], sends[5])]
        assert [r.status_code for r in alone] == [422, 412, 409]
        assert problem_of(alone[0]) == problem_of(responses[2])
        for batched, single in ((responses[4], alone[1]), (responses[5], alone[2])):
            assert without_version(problem_of(batched), 7) == without_version(problem_of(single), 9)
        logged = await log_events(http, auditor, responses[0].json()["negotiation_id"], "position.stated")
        summaries = [e["data"]["summary"] for e in logged]
        assert summaries == ["warm 0", "warm 1", "warm 2", "first", "second", "matched", "seventh", "eighth"]


async def test_idempotency_keys_in_a_batch_each_replay_their_own_answer(database_url, tmp_path, keys):
    recorder, auditor = keys.headers("recorder"), keys.headers("auditor")
    async with served(database_url, tmp_path) as (http, commands):
        stream_id = await long_issue(http, recorder)
        used = {**recorder, "Idempotency-Key": f"used-{uuid.uuid4()}"}
        first = await http.post(f"/negotiations/{SLUG}/commands", json=position("keyed before"), headers=used)
        assert first.status_code == 201, first.text
        used_too = {**recorder, "Idempotency-Key": f"used-too-{uuid.uuid4()}"}
        said = await http.post(f"/negotiations/{SLUG}/commands", json=position("keyed before 2"), headers=used_too)
        assert said.status_code == 201, said.text
        keyed = [{**recorder, "Idempotency-Key": f"key-{n}-{uuid.uuid4()}"} for n in range(3)]
        sends = [
            (position("keyed 0"), keyed[0]),
            (position("keyed before"), used),  # a retry of an answered request: its replay
            (position("keyed 1"), keyed[1]),
            (position("another body"), used_too),  # a used key with another body: 422
            (position("keyed 2"), keyed[2]),
            (position("keyed 2"), keyed[2]),  # the same key twice at once: 409 in use
            (position("no key"), recorder),
        ]
        responses = await one_batch(http, commands, stream_id, sends)
        assert [r.status_code for r in responses] == [201, 201, 201, 422, 201, 409, 201]
        assert responses[1].headers["idempotent-replayed"] == "true"
        assert responses[1].content == first.content
        assert problem_of(responses[3])["type"] == "urn:parley:problem:idempotency-key-reused"
        assert problem_of(responses[5])["type"] == "urn:parley:problem:idempotency-key-in-use"
        assert responses[5].headers["retry-after"] == "1"
        # Retries now replay each request's own answer, byte for byte.
        for (body, headers), original in zip(sends, responses):
            if original.status_code != 201 or "idempotent-replayed" in original.headers or "Idempotency-Key" not in headers:
                continue
            retry = await http.post(f"/negotiations/{SLUG}/commands", json=body, headers=headers)
            assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
            assert retry.content == original.content
            assert retry.json()["events"][0]["data"]["summary"] == body["summary"]
        logged = await log_events(http, auditor, first.json()["negotiation_id"], "position.stated")
        summaries = [e["data"]["summary"] for e in logged]
        assert summaries == ["warm 0", "warm 1", "warm 2", "keyed before", "keyed before 2", "keyed 0", "keyed 1",
                             "keyed 2", "no key"]


async def test_concurrent_commands_on_a_long_issue_through_two_instances(database_url, tmp_path, keys):
    """Two app instances (two caches, two group commits) on one long issue: their
    batches race for the stream's head, the loser decides its whole batch again;
    every acknowledged command is in the log once, none twice."""
    recorder, auditor = keys.headers("recorder"), keys.headers("auditor")
    async with served(database_url, tmp_path) as (one, first), served(database_url, tmp_path) as (two, second):
        await long_issue(one, recorder)
        await two.post(f"/negotiations/{SLUG}/commands", json=position("warm two"), headers=recorder)
        races = first.stats.lost_races + second.stats.lost_races
        summaries = []
        for round_ in range(12):
            bodies = [position(f"round {round_}.{n}") for n in range(8)]
            responses = await asyncio.gather(*(
                (one if n % 2 else two).post(f"/negotiations/{SLUG}/commands", json=body, headers=recorder)
                for n, body in enumerate(bodies)
            ))
            assert [r.status_code for r in responses] == [201] * 8, [r.text[:200] for r in responses]
            for body, response in zip(bodies, responses):
                assert response.json()["events"][0]["data"]["summary"] == body["summary"]
            summaries += [b["summary"] for b in bodies]
        races = first.stats.lost_races + second.stats.lost_races - races
        grouped = first.groups.requests - first.groups.batches + second.groups.requests - second.groups.batches
        print(f"\ntwo instances, 12 rounds of 8: {races} lost races, {grouped} requests joined a batch")
        negotiation = responses[0].json()["negotiation_id"]
        logged = [e["data"]["summary"] for e in await log_events(one, auditor, negotiation, "position.stated")]
        assert sorted(s for s in logged if s.startswith("round")) == sorted(summaries)
        assert grouped > 0, "no request joined another's batch: the test did not meet group commit"
