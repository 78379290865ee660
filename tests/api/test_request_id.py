"""X-Request-Id: every routed response names its request, and the events a
request writes carry that id as their correlation_id (service.http.request_id)."""

from __future__ import annotations

import asyncio
import uuid

from domain.example import COMMANDS, OPENED


async def events_of(client, keys, negotiation_id: str, count: int) -> list[dict]:
    """The negotiation's events in /events once `count` are readable (a gap-free
    reader shows a commit once every earlier transaction has ended)."""
    for _ in range(600):
        response = await client.get("/events", params={"negotiation": negotiation_id}, headers=keys.headers("auditor"))
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        if len(items) >= count:
            return items
        await asyncio.sleep(0.05)
    raise AssertionError(f"/events showed {len(items)} of {count} events after 30 s")


async def test_a_generated_id_is_answered_and_stored_as_the_events_correlation_id(client, keys):
    opened = await client.post("/negotiations", json=OPENED, headers=keys.headers("recorder"))
    assert opened.status_code == 201, opened.text
    open_id = uuid.UUID(opened.headers["x-request-id"])
    negotiation_id = opened.json()["negotiation_id"]
    assert opened.json()["events"][0]["correlation_id"] == str(open_id)

    batch = await client.post(
        f"/negotiations/{negotiation_id}/commands",
        json={"commands": COMMANDS[:3]},
        headers=keys.headers("recorder"),
    )
    assert batch.status_code == 201, batch.text
    batch_id = batch.headers["x-request-id"]
    assert batch_id != str(open_id), "each request gets its own id"
    written = {e["id"] for e in batch.json()["events"]}
    assert len(written) >= 3

    by_correlation: dict[str, set[str]] = {}
    for event in await events_of(client, keys, negotiation_id, 1 + len(written)):
        by_correlation.setdefault(event["correlation_id"], set()).add(event["id"])
    assert by_correlation == {str(open_id): {opened.json()["events"][0]["id"]}, batch_id: written}


async def test_an_incoming_uuid_is_kept_and_anything_else_replaced(client, keys):
    given = uuid.uuid4()
    opened = await client.post(
        "/negotiations", json=OPENED, headers=keys.headers("recorder", **{"X-Request-Id": str(given).upper()})
    )
    assert opened.status_code == 201, opened.text
    assert opened.headers["x-request-id"] == str(given), "canonical lowercase form"
    assert opened.json()["events"][0]["correlation_id"] == str(given)

    # nginx's $request_id: 32 hex digits
    nginx = uuid.uuid4().hex
    recorded = await client.post(
        f"/negotiations/{opened.json()['negotiation_id']}/commands",
        json=COMMANDS[0],
        headers=keys.headers("recorder", **{"X-Request-Id": nginx}),
    )
    assert recorded.status_code == 201, recorded.text
    assert recorded.headers["x-request-id"] == str(uuid.UUID(nginx))
    assert {e["correlation_id"] for e in recorded.json()["events"]} == {str(uuid.UUID(nginx))}

    for junk in ("req-42", "x" * 5000, f"{given}; drop table events", ""):
        response = await client.get("/health/live", headers={"X-Request-Id": junk})
        assert response.status_code == 200
        assert [response.headers["x-request-id"]] == response.headers.get_list("x-request-id")
        replaced = uuid.UUID(response.headers["x-request-id"])
        assert str(replaced) != junk and replaced != given


async def test_refusals_carry_the_id_too(client, keys):
    unauthenticated = await client.post("/negotiations", json=OPENED)
    assert unauthenticated.status_code == 401
    uuid.UUID(unauthenticated.headers["x-request-id"])
    refused = await client.post("/negotiations", json={"title": 3}, headers=keys.headers("recorder"))
    assert refused.status_code in (400, 422), refused.text
    uuid.UUID(refused.headers["x-request-id"])


async def test_a_replay_answers_with_the_first_requests_correlation_id(client, keys):
    headers = keys.headers("recorder", **{"Idempotency-Key": "open-once"})
    first = await client.post("/negotiations", json=OPENED, headers=headers)
    replay = await client.post("/negotiations", json=OPENED, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["x-request-id"] != first.headers["x-request-id"]
    assert replay.json()["events"][0]["correlation_id"] == first.headers["x-request-id"]
