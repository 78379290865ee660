"""POST /negotiations and POST /negotiations/{ref}/commands: success and every refusal."""

from __future__ import annotations

import asyncpg

from domain.example import COMMANDS, OPENED
from domain.issue import issue_stream_id
from service.store.consistency import ConsistencyToken

PARTIES = [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}]


def problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"urn:parley:problem:{slug}", body
    assert body["status"] == status
    return body


async def event_count(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()


async def test_open_generates_id_and_slug_and_records_the_key_name(api, client, keys):
    response = await client.post(
        "/negotiations",
        json={"title": "Talks in Geneva", "parties": PARTIES, "occurred_on": "2022-03-01"},
        headers=keys.headers("recorder"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    [event] = body["events"]
    assert event["type"] == "negotiation.opened"
    assert event["data"]["slug"] == "talks-in-geneva"
    assert event["stream_id"] == body["negotiation_id"] == event["negotiation_id"]
    assert event["recorded_by"] == "recorder"
    assert event["recorded_at"].endswith("Z")
    assert response.headers["location"] == f"/negotiations/{body['negotiation_id']}"
    token = ConsistencyToken.parse(body["consistency_token"])
    assert token.checkpoint.token() == event["checkpoint"], "the token names the write's last event"
    assert token.lsn is not None, "and the primary's WAL position past its commit"


async def test_a_taken_slug_is_a_conflict(api, client, keys):
    await api.open()
    response = await client.post("/negotiations", json=OPENED, headers=keys.headers("recorder"))
    body = problem(response, 409, "slug-taken")
    assert body["errors"][0]["pointer"] == "/slug"


async def test_record_one_command_and_a_batch(api):
    opened = await api.open()
    one = await api.record("russia-ukraine-2022", COMMANDS[0])
    assert [e["type"] for e in one["events"]] == ["party.joined"]
    assert one["events"][0]["stream_id"] == opened["negotiation_id"]
    batch = await api.record(opened["negotiation_id"], {"commands": COMMANDS[1:4]})
    # ceasefire.agreed raises the default issue first, on the issue's own stream.
    assert [e["type"] for e in batch["events"]] == ["round.held", "round.held", "issue.raised", "ceasefire.agreed"]
    ceasefire_stream = str(issue_stream_id(__import__("uuid").UUID(opened["negotiation_id"]), "ceasefire"))
    assert batch["events"][-1]["stream_id"] == ceasefire_stream
    assert ConsistencyToken.parse(batch["consistency_token"]).checkpoint.token() == batch["events"][-1]["checkpoint"]


async def test_generated_item_ids_are_in_the_event_data(api):
    await api.open()
    result = await api.record(
        "russia-ukraine-2022",
        {"type": "ceasefire.proposed", "occurred_on": "2022-03-01", "by": "RU", "scope": "general"},
    )
    assert result["events"][-1]["data"]["ceasefire_id"].startswith("ceasefire-")


async def test_a_failed_command_in_a_batch_writes_nothing(api, client, keys, database_url):
    await api.open()
    before = await event_count(database_url)
    response = await client.post(
        "/negotiations/russia-ukraine-2022/commands",
        json={"commands": [COMMANDS[0], {**COMMANDS[1], "participants": ["RU", "XX"]}]},
        headers=keys.headers("recorder"),
    )
    body = problem(response, 422, "unknown-party")
    assert body["errors"][0]["pointer"] == "/commands/1/participants/1"
    assert await event_count(database_url) == before


async def test_expected_version_conflict_carries_the_current_version(api, client, keys):
    await api.open()
    await api.record("russia-ukraine-2022", {**COMMANDS[0], "expected_version": 1})
    response = await client.post(
        "/negotiations/russia-ukraine-2022/commands",
        json={**COMMANDS[13], "expected_version": 1},
        headers=keys.headers("recorder"),
    )
    body = problem(response, 409, "version-conflict")
    assert body["current_version"] == 2
    assert body["errors"][0]["pointer"] == "/expected_version"


async def test_if_match(api, client, keys):
    await api.open()
    path = "/negotiations/russia-ukraine-2022/commands"
    response = await client.post(path, json=COMMANDS[0], headers=keys.headers("recorder", **{"If-Match": '"7"'}))
    body = problem(response, 412, "precondition-failed")
    assert body["current_version"] == 1
    response = await client.post(path, json=COMMANDS[0], headers=keys.headers("recorder", **{"If-Match": '"1"'}))
    assert response.status_code == 201, response.text
    response = await client.post(path, json=COMMANDS[1], headers=keys.headers("recorder", **{"If-Match": "seven"}))
    body = problem(response, 400, "invalid-parameter")
    assert body["errors"][0]["parameter"] == "If-Match"
    assert body["errors"][0]["in"] == "header"
    # A new issue stream is at version 0.
    raise_issue = {"type": "issue.raised", "occurred_on": "2022-03-16", "issue": "prisoners", "title": "Prisoners",
                   "category": "prisoners_detainees"}
    response = await client.post(path, json=raise_issue, headers=keys.headers("recorder", **{"If-Match": '"0"'}))
    assert response.status_code == 201, response.text
    # A batch over two streams has no single version to match.
    two_issues = [{**raise_issue, "issue": "a", "title": "A"}, {**raise_issue, "issue": "b", "title": "B"}]
    response = await client.post(
        path, json={"commands": two_issues}, headers=keys.headers("recorder", **{"If-Match": '"0"'})
    )
    problem(response, 400, "invalid-parameter")
    # A batch on one stream matches the version before the request.
    response = await client.post(
        path, json={"commands": COMMANDS[1:3]}, headers=keys.headers("recorder", **{"If-Match": '"2"'})
    )
    assert response.status_code == 201, response.text
    response = await client.post(
        path, json={"commands": COMMANDS[1:3]}, headers=keys.headers("recorder", **{"If-Match": '"2"'})
    )
    problem(response, 412, "precondition-failed")


async def test_corrections_go_to_the_stream_of_the_event(api, client, keys):
    opened = await api.open()
    other = await api.open({**OPENED, "slug": "other", "title": "Other talks"})
    recorded = await api.record("russia-ukraine-2022", {"commands": COMMANDS[:4]})
    agreed = recorded["events"][-1]
    result = await api.record(
        "russia-ukraine-2022",
        {"type": "claim.disputed", "occurred_on": "2022-03-06", "event_id": agreed["id"], "by": "UA",
         "summary": "no ceasefire was observed"},
    )
    assert result["events"][0]["stream_id"] == agreed["stream_id"]
    retract = {"type": "record.retracted", "occurred_on": "2022-03-06", "event_id": recorded["events"][0]["id"],
               "reason": "wrong report"}
    result = await api.record(opened["negotiation_id"], retract)
    assert result["events"][0]["stream_id"] == opened["negotiation_id"]
    # An event of another negotiation is unknown here.
    response = await client.post(
        f"/negotiations/{other['negotiation_id']}/commands", json=retract, headers=keys.headers("recorder")
    )
    body = problem(response, 404, "unknown-event")
    assert body["errors"][0]["pointer"] == "/event_id"


async def test_unknown_negotiation_and_issue(api, client, keys):
    response = await client.post(
        "/negotiations/no-such-talks/commands", json=COMMANDS[0], headers=keys.headers("recorder")
    )
    problem(response, 404, "unknown-negotiation")
    await api.open()
    response = await client.post(
        "/negotiations/russia-ukraine-2022/commands",
        json={"type": "issue.discussed", "occurred_on": "2022-03-16", "issue": "unheard-of"},
        headers=keys.headers("recorder"),
    )
    body = problem(response, 404, "unknown-issue")
    assert body["errors"][0]["pointer"] == "/issue"


async def test_validation_errors_point_at_the_field(api, client, keys):
    await api.open()
    path = "/negotiations/russia-ukraine-2022/commands"
    cases = [
        ({**COMMANDS[0], "party": {"code": 5, "name": "x"}}, "/party/code"),
        ({**COMMANDS[0], "colour": "red"}, "/colour"),
        ({"type": "party.joined", "party": {"code": "BY", "name": "Belarus"}}, "/occurred_on"),
        ({"type": "no.such.type", "occurred_on": "2022-03-01"}, "/type"),
        ({"commands": [COMMANDS[0], {**COMMANDS[1], "level": "cosmic"}]}, "/commands/1/level"),
        ({"commands": []}, "/commands"),
        ([1, 2], ""),
    ]
    for body, pointer in cases:
        response = await client.post(path, json=body, headers=keys.headers("recorder"))
        found = problem(response, 400, "invalid-request")
        assert [e["pointer"] for e in found["errors"]] == [pointer], (body, found)
    # Every date mistake is invalid-date (tests/api/test_one_error_per_mistake.py).
    response = await client.post(path, json={**COMMANDS[0], "occurred_on": "yesterday"}, headers=keys.headers("recorder"))
    assert [e["pointer"] for e in problem(response, 422, "invalid-date")["errors"]] == ["/occurred_on"]
    # A date with the right shape that does not exist is the domain's to refuse.
    response = await client.post(path, json={**COMMANDS[0], "occurred_on": "2022-02-30"}, headers=keys.headers("recorder"))
    found = problem(response, 422, "invalid-date")
    assert found["errors"][0]["pointer"] == "/occurred_on"


async def test_hostile_bodies_are_refused_before_the_database(api, client, keys, database_url):
    await api.open()
    before = await event_count(database_url)
    path = "/negotiations/russia-ukraine-2022/commands"
    auth = keys.headers("recorder", **{"Content-Type": "application/json"})
    nul = b'{"type": "party.joined", "occurred_on": "2022-03-01", "party": {"code": "BY", "name": "Bela\\u0000rus"}}'
    body = problem(await client.post(path, content=nul, headers=auth), 400, "invalid-request")
    assert body["errors"][0]["pointer"] == "/party/name"
    problem(await client.post(path, content=b'{"type": "\xff\xfe"}', headers=auth), 400, "malformed-json")
    problem(await client.post(path, content=b"[" * 100_000 + b"]" * 100_000, headers=auth), 400, "invalid-request")
    problem(await client.post(path, content=b'{"note": ' + b"[" * 5000, headers=auth), 400, "malformed-json")
    problem(await client.post(path, content=b'{"type": "party.joined",', headers=auth), 400, "malformed-json")
    problem(await client.post(path, content=b"", headers=auth), 400, "body-required")
    huge = {**COMMANDS[0], "note": "x" * (2 * 1024 * 1024)}
    problem(await client.post(path, json=huge, headers=keys.headers("recorder")), 413, "payload-too-large")
    long_note = {**COMMANDS[0], "note": "x" * 100_000}
    body = problem(await client.post(path, json=long_note, headers=keys.headers("recorder")), 400, "invalid-request")
    assert body["errors"][0]["pointer"] == "/note"
    response = await client.post(path, content=b"type=party.joined", headers=keys.headers(
        "recorder", **{"Content-Type": "application/x-www-form-urlencoded"}))
    problem(response, 415, "unsupported-media-type")
    problem(await client.post("/negotiations", content=b"{}", headers=keys.headers("recorder")), 415,
            "unsupported-media-type")
    assert await event_count(database_url) == before


async def test_unknown_route_and_method_are_problems(client, keys):
    problem(await client.get("/no/such/route", headers=keys.headers("reader")), 404, "not-found")
    problem(await client.delete("/negotiations", headers=keys.headers("admin")), 405, "method-not-allowed")


async def test_concurrent_commands_on_one_stream_are_all_recorded(api, client, keys):
    """Without expected_version, a lost race is decided again: no spurious 409."""
    import asyncio

    await api.open()
    statements = [
        {"type": "statement.made", "occurred_on": "2022-03-16", "speaker": f"speaker {i}", "summary": "said so"}
        for i in range(16)
    ]
    responses = await asyncio.gather(
        *(client.post("/negotiations/russia-ukraine-2022/commands", json=s, headers=keys.headers("recorder"))
          for s in statements)
    )
    assert [r.status_code for r in responses] == [201] * 16, [r.text for r in responses if r.status_code != 201]
    versions = sorted(r.json()["events"][0]["version"] for r in responses)
    assert versions == list(range(2, 18))


async def test_a_world_time_with_no_instant_in_utc_is_refused_not_a_500(api, client, keys):
    # 0001-01-01T00:00+01:00 is a real local time whose UTC instant falls before
    # year 1: every sort and fold of the fact would overflow, so it is refused as
    # a date (and nothing is written), like 2022-02-30.
    await api.open()
    for occurred_on in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"):
        response = await client.post(
            "/negotiations/russia-ukraine-2022/commands",
            json={"type": "negotiation.suspended", "occurred_on": occurred_on},
            headers=keys.headers("recorder"),
        )
        body = problem(response, 422, "invalid-date")
        assert body["errors"][0]["pointer"] == "/occurred_on"
    status = await api.get("/negotiations/russia-ukraine-2022")
    assert status["status"] == "active"
