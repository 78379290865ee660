"""A poison event in the log (data no payload decodes, as the old `parley import`
let in) through the real app: /health/ready is not ready and names the
projection and the event; reads of that negotiation answer a 503 problem naming
it instead of a 500 or a silently stale view; other negotiations are served."""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec

from domain.example import OPENED
from service.store.event_store import EventStore
from tests.pending_events import pending

RAISE = {"type": "issue.raised", "occurred_on": "2022-03-01", "issue": "water", "title": "Water", "category": "other"}


async def _ready(client) -> tuple[int, dict]:
    response = await client.get("/health/ready")
    return response.status_code, response.json()


async def test_a_poison_event_is_reported_by_health_and_by_reads(api, client, pool):
    poisoned = (await api.open({**OPENED, "slug": "poisoned"}))["negotiation_id"]
    healthy = (await api.open({**OPENED, "slug": "healthy", "title": "Other talks"}))["negotiation_id"]
    await api.record(healthy, RAISE)
    event = msgspec.structs.replace(
        pending(uuid.UUID(poisoned), type="party.joined", negotiation_id=uuid.UUID(poisoned), unexpected=1),
        stream_type="negotiation",
    )
    await EventStore(pool).append([event], {uuid.UUID(poisoned): 1})

    deadline = time.monotonic() + 60  # a ceiling that fails loudly, not a speed claim
    while (await _ready(client))[0] != 503:
        assert time.monotonic() < deadline, "health never reported the stuck projection"
        await asyncio.sleep(0.1)
    status, body = await _ready(client)
    assert body["status"] == "unavailable" and body["database"] == "reachable"
    stuck = {p["name"]: p["stuck"] for p in body["projections"] if p.get("stuck")}
    deadline = time.monotonic() + 60
    while len(stuck) < 3:
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)
        stuck = {p["name"]: p["stuck"] for p in (await _ready(client))[1]["projections"] if p.get("stuck")}
    assert set(stuck) == {"issue_status", "negotiation_summary", "timeline"}
    for name, detail in stuck.items():
        assert detail["event_id"] == str(event.id) and detail["negotiation_id"] == poisoned, name
        assert "missing required field `party`" in detail["error"], detail

    headers = api.keys.headers("reader")
    for path, projection in (
        (f"/negotiations/{poisoned}", "negotiation_summary"),
        (f"/negotiations/{poisoned}/issues", "issue_status"),
        (f"/negotiations/{poisoned}/timeline", "timeline"),
    ):
        response = await client.get(path, headers=headers)
        assert response.status_code == 503, (path, response.text)
        problem = response.json()
        assert problem["type"] == "urn:parley:problem:projection-stuck", problem
        assert problem["projection"] == projection and problem["event_id"] == str(event.id), problem
        assert response.headers["content-type"].startswith("application/problem+json")
    # Time travel folds the log itself: the event it cannot read is named, not a 500.
    response = await client.get(f"/negotiations/{poisoned}", params={"as_of": "2022-03-20"}, headers=headers)
    assert response.status_code == 503, response.text
    assert response.json()["type"] == "urn:parley:problem:event-unreadable"
    assert response.json()["event_id"] == str(event.id)
    # So do commands on that negotiation: 503 naming the event, nothing written.
    before = await pool.fetchval("SELECT count(*) FROM events")
    response = await client.post(f"/negotiations/{poisoned}/commands", json=RAISE, headers=api.keys.headers("recorder"))
    assert response.status_code == 503, response.text
    assert response.json()["event_id"] == str(event.id)
    assert await pool.fetchval("SELECT count(*) FROM events") == before
    # The other negotiation, recorded before the poison event, is still served.
    assert (await api.get(f"/negotiations/{healthy}/issues/water"))["status"] == "raised"
