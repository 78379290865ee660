"""Conflicting commands sent at the same time to the app under a real uvicorn.

Litestar's AsyncTestClient finishes each request before it starts the next, so
`asyncio.gather` over it never races; here every request has its own TCP
connection to a real server, and the requests of one round are in flight
together. Each test counts the races it met (lost races retried by the command
service, from `parley_command_retries_total`; idempotency keys found in use) and
prints them, and asserts there were some: a test of concurrency that met no
race would prove nothing.

Every outcome is checked against the log itself (GET /events), not only against
the responses: exactly one winner per round means exactly one event per round.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import live_server, make_app, problem_of

# Rounds per test: one round is 8 conflicting requests in flight together. Each
# round that overlaps at all loses races, so a dozen rounds meet races for sure.
ROUNDS = 12
CONTENDERS = 8
PARTIES = [{"code": f"P{n}", "name": f"Party {n}"} for n in range(CONTENDERS + 1)]
DAY = "2024-05-01"


@contextlib.asynccontextmanager
async def served(database_url: str, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The real app behind a real uvicorn, and an HTTP client to it."""
    async with live_server(make_app(database_url, data_dir)) as base_url:
        limits = httpx.Limits(max_connections=4 * CONTENDERS, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http:
            yield http


async def lost_races(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    match = re.search(r"^parley_command_retries_total (\d+)(\.0)?$", response.text, re.MULTILINE)
    assert match, "the command service's lost-race counter is missing from /metrics"
    return int(match[1])


async def log_events(http: httpx.AsyncClient, headers: dict[str, str], negotiation: str, type_: str) -> list[dict]:
    """Every event of one type in one negotiation, from the auditor's log."""
    items, cursor = [], None
    while True:
        params: dict[str, Any] = {"negotiation": negotiation, "type": type_, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = await http.get("/events", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        if (cursor := page["next"]) is None:
            return items


async def open_with_issue(http: httpx.AsyncClient, recorder: dict[str, str], slug: str) -> str:
    opened = await http.post(
        "/negotiations",
        json={"title": f"Talks {slug}", "slug": slug, "occurred_on": DAY, "parties": PARTIES},
        headers=recorder,
    )
    assert opened.status_code == 201, opened.text
    raised = await http.post(
        f"/negotiations/{slug}/commands",
        json={"type": "issue.raised", "occurred_on": DAY, "issue": "grain", "title": "Grain", "category": "humanitarian"},
        headers=recorder,
    )
    assert raised.status_code == 201, raised.text
    return opened.json()["negotiation_id"]


def assert_problem(response: httpx.Response, status: int, slug: str, pointer: str | None = None) -> None:
    body = problem_of(response)
    assert (response.status_code, body["type"]) == (status, f"urn:parley:problem:{slug}"), response.text
    if pointer is not None:
        assert [e["pointer"] for e in body["errors"]] == [pointer], response.text


def accept(proposal_id: str, by: str) -> dict:
    return {"type": "proposal.accepted", "occurred_on": DAY, "issue": "grain", "proposal_id": proposal_id, "by": by}


async def race_accepts(
    clients: list[httpx.AsyncClient], recorder: dict[str, str], slug: str, copies: bool
) -> list[tuple[str, str]]:
    """ROUNDS rounds: a proposal open to any taker, then 8 acceptances of it at once
    (by 8 parties, or 8 copies of one party's), spread over `clients`. Returns the
    id and consistency token of each winning event."""
    winners = []
    for round_ in range(ROUNDS):
        pid = f"p{round_}"
        made = await clients[0].post(
            f"/negotiations/{slug}/commands",
            json={"type": "proposal.made", "occurred_on": DAY, "issue": "grain", "proposal_id": pid, "by": "P0",
                  "summary": "ships leave the port"},
            headers=recorder,
        )
        assert made.status_code == 201, made.text
        bodies = [accept(pid, "P1" if copies else f"P{n + 1}") for n in range(CONTENDERS)]
        responses = await asyncio.gather(*(
            clients[n % len(clients)].post(f"/negotiations/{slug}/commands", json=body, headers=recorder)
            for n, body in enumerate(bodies)
        ))
        won = [r for r in responses if r.status_code == 201]
        assert len(won) == 1, [(r.status_code, r.text[:200]) for r in responses]
        [event] = won[0].json()["events"]
        assert (event["type"], event["data"]["proposal_id"]) == ("proposal.accepted", pid)
        for lost in (r for r in responses if r is not won[0]):
            assert_problem(lost, 409, "proposal-closed", "/proposal_id")
        winners.append((event["id"], won[0].json()["consistency_token"]))
    return winners


@pytest.mark.parametrize("copies", [False, True], ids=["8 parties", "8 copies of one party's"])
async def test_answers_to_one_proposal_at_once_exactly_one_acceptance_wins(database_url, tmp_path, keys, copies):
    recorder, auditor = keys.headers("recorder"), keys.headers("auditor")
    async with served(database_url, tmp_path) as http:
        negotiation = await open_with_issue(http, recorder, "grain-talks")
        before = await lost_races(http, auditor)
        winners = await race_accepts([http], recorder, "grain-talks", copies=copies)
        races = await lost_races(http, auditor) - before
        print(f"\n8 {'copies' if copies else 'parties'} x {ROUNDS} rounds: {races} lost races retried")
        accepted = await log_events(http, auditor, negotiation, "proposal.accepted")
        assert [e["id"] for e in accepted] == [id_ for id_, _ in winners], "one acceptance per proposal"
        issue = (await http.get("/negotiations/grain-talks/issues/grain", headers=recorder,
                                params={"consistency_token": winners[-1][1]})).json()
        assert {p["proposal_id"]: p["status"] for p in issue["proposals"]} == {f"p{r}": "accepted" for r in range(ROUNDS)}
        assert races > 0, "no request lost a race: the test did not meet concurrency"


async def test_concurrent_retractions_of_one_fact_record_one(database_url, tmp_path, keys):
    recorder, auditor = keys.headers("recorder"), keys.headers("auditor")
    async with served(database_url, tmp_path) as http:
        negotiation = await open_with_issue(http, recorder, "grain-talks")
        before = await lost_races(http, auditor)
        winners = []
        for round_ in range(ROUNDS):
            said = await http.post(
                "/negotiations/grain-talks/commands",
                json={"type": "statement.made", "occurred_on": DAY, "speaker": "P1", "summary": f"claim {round_}"},
                headers=recorder,
            )
            assert said.status_code == 201, said.text
            fact = said.json()["events"][0]["id"]
            retraction = {"type": "record.retracted", "occurred_on": DAY, "event_id": fact, "reason": "misreported"}
            responses = await asyncio.gather(*(
                http.post("/negotiations/grain-talks/commands", json=retraction, headers=recorder)
                for _ in range(CONTENDERS)
            ))
            won = [r for r in responses if r.status_code == 201]
            assert len(won) == 1, [(r.status_code, r.text[:200]) for r in responses]
            assert won[0].json()["events"][0]["data"]["event_id"] == fact
            for lost in (r for r in responses if r is not won[0]):
                assert_problem(lost, 409, "already-retracted", "/event_id")
            winners.append(won[0].json()["events"][0]["id"])
        races = await lost_races(http, auditor) - before
        print(f"\n8 retractions x {ROUNDS} rounds: {races} lost races retried")
        retracted = await log_events(http, auditor, negotiation, "record.retracted")
        assert [e["id"] for e in retracted] == winners, "the log holds exactly one retraction per fact"
        assert races > 0, "no request lost a race: the test did not meet concurrency"


async def race_one_key(
    clients: list[httpx.AsyncClient], keys, slug: str, round_: int
) -> Counter:
    """8 identical requests with one Idempotency-Key at once: exactly one original,
    the others replays of it (byte for byte) or 409 idempotency-key-in-use."""
    key = f"retry-{uuid.uuid4()}"
    headers = keys.headers("recorder", **{"Idempotency-Key": key})
    body = {"type": "statement.made", "occurred_on": DAY, "speaker": "P2", "summary": f"retried {round_}"}
    responses = await asyncio.gather(*(
        clients[n % len(clients)].post(f"/negotiations/{slug}/commands", json=body, headers=headers)
        for n in range(CONTENDERS)
    ))
    originals = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    assert len(originals) == 1, [(r.status_code, dict(r.headers), r.text[:200]) for r in responses]
    seen: Counter = Counter(original=1)
    for response in responses:
        if response is originals[0]:
            continue
        if response.status_code == 201:
            assert response.headers["idempotent-replayed"] == "true"
            assert response.content == originals[0].content
            seen["replayed"] += 1
        else:
            assert_problem(response, 409, "idempotency-key-in-use")
            assert response.headers["retry-after"] == "1"
            seen["in use"] += 1
    # The key is settled now: a late retry is a replay.
    late = await clients[-1].post(f"/negotiations/{slug}/commands", json=body, headers=headers)
    assert late.status_code == 201 and late.headers["idempotent-replayed"] == "true"
    assert late.content == originals[0].content
    return seen


async def test_concurrent_retries_of_one_idempotency_key_write_once(database_url, tmp_path, keys):
    auditor = keys.headers("auditor")
    async with served(database_url, tmp_path) as http:
        negotiation = await open_with_issue(http, keys.headers("recorder"), "grain-talks")
        seen: Counter = Counter()
        for round_ in range(ROUNDS):
            seen += await race_one_key([http], keys, "grain-talks", round_)
        print(f"\n8 retries of one key x {ROUNDS} rounds: {dict(seen)}")
        statements = await log_events(http, auditor, negotiation, "statement.made")
        assert [e["data"]["summary"] for e in statements] == [f"retried {r}" for r in range(ROUNDS)]
        assert seen["in use"] > 0, "no retry found its key in use: the test did not meet concurrency"


async def test_two_app_instances_racing_on_one_database(database_url, tmp_path, keys):
    """As `parley serve --workers 2` or two nodes: each instance has its own
    process state (aggregate cache, pools); the database alone decides."""
    recorder, auditor = keys.headers("recorder"), keys.headers("auditor")
    async with served(database_url, tmp_path) as one, served(database_url, tmp_path) as two:
        negotiation = await open_with_issue(one, recorder, "grain-talks")
        # Both instances run in this test's process, whose prometheus_client
        # registry they share: either one's /metrics counts the races of both.
        before = await lost_races(one, auditor)
        winners = await race_accepts([one, two], recorder, "grain-talks", copies=False)
        races = await lost_races(two, auditor) - before
        seen: Counter = Counter()
        for round_ in range(ROUNDS):
            seen += await race_one_key([one, two], keys, "grain-talks", round_)
        print(f"\ntwo instances: {races} lost races retried; one key retried through both: {dict(seen)}")
        for http in (one, two):
            accepted = await log_events(http, auditor, negotiation, "proposal.accepted")
            assert [e["id"] for e in accepted] == [id_ for id_, _ in winners]
            statements = await log_events(http, auditor, negotiation, "statement.made")
            assert len(statements) == ROUNDS
        assert races > 0, "no request lost a race: the instances did not meet concurrency"
        assert seen["in use"] + seen["replayed"] > 0


async def test_more_commands_at_once_than_pooled_connections_all_complete(database_url, tmp_path, keys):
    """Each command holds one pooled connection from its first statement to its
    answer (the wake-up and the stored answer included), never a second one: with
    four times as many commands in flight as the pool has connections, every one
    completes and the database stays reachable. (Taking a second connection while
    holding the first deadlocked the pool for good.)"""
    in_flight = 40  # the API pool holds 10
    async with live_server(make_app(database_url, tmp_path)) as base_url:
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=0)
        # The timeout is a ceiling that fails loudly on a deadlock, not a speed claim.
        async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http:
            recorder = keys.headers("recorder")
            slug = "pool-talks"
            await open_with_issue(http, recorder, slug)
            for attempt in range(3):
                responses = await asyncio.gather(*(
                    http.post(f"/negotiations/{slug}/commands", headers={
                        **recorder, "Idempotency-Key": f"pool-{attempt}-{n}" if n % 2 else f"pool-{attempt}-shared"},
                        json={"type": "statement.made", "occurred_on": DAY, "speaker": "P1",
                              "summary": f"statement {attempt}.{n}"})
                    for n in range(in_flight)
                ), return_exceptions=True)
                failures = [r for r in responses if isinstance(r, Exception)]
                assert not failures, failures[:3]
                statuses = Counter(r.status_code for r in responses)
                # Odd ones have their own keys; the even ones share one key (one write,
                # replays or key-in-use for the others; the bodies differ, so reused).
                assert statuses[201] >= in_flight // 2 + 1, statuses
                assert set(statuses) <= {201, 409, 422}, statuses
            ready = await http.get("/health/ready")
            assert ready.status_code == 200, ready.text
