"""GET /negotiations takes as_of and known_at like every other read route (issue 13
leftover): the list as it stood in world time and in record time, computed from the
log with the same fold; with nothing filtered out, the projection's bytes."""

from __future__ import annotations

import asyncio

from domain.example import OPENED

SECOND = {**OPENED, "title": "Later talks", "slug": "later-talks", "occurred_on": "2023-05-01"}


def slugs(page: dict) -> list[str]:
    return [item["slug"] for item in page["items"]]


async def test_the_list_travels_in_world_and_record_time(api, client, keys):
    await api.open()
    await asyncio.sleep(0.01)
    second = await api.open(SECOND)
    first_recorded = (await api.get("/events", role="auditor"))["items"][0]["recorded_at"]
    await asyncio.sleep(0.01)
    concluded = await api.record("russia-ukraine-2022", {
        "type": "negotiation.concluded", "occurred_on": "2022-04-10", "outcome": "talks broke off"})
    token = concluded["consistency_token"]

    now = await api.get("/negotiations", consistency_token=token)
    assert slugs(now) == ["russia-ukraine-2022", "later-talks"]
    assert now["items"][0]["status"] == "concluded"

    # World time: the later talks had not opened; the first were still active.
    past = await api.get("/negotiations", as_of="2022-03-15")
    assert slugs(past) == ["russia-ukraine-2022"]
    assert past["items"][0]["status"] == "active"
    assert past["items"][0]["version"] == 1
    assert slugs(await api.get("/negotiations", as_of="2022-03-15", status="concluded")) == []
    assert slugs(await api.get("/negotiations", as_of="2022-04-10", status="concluded")) == ["russia-ukraine-2022"]
    assert slugs(await api.get("/negotiations", as_of="2022-01-01")) == []

    # Record time: before the second was recorded, only the first was known.
    assert slugs(await api.get("/negotiations", known_at=first_recorded)) == ["russia-ukraine-2022"]
    assert slugs(await api.get("/negotiations", known_at=second["events"][0]["recorded_at"])) == [
        "russia-ukraine-2022", "later-talks"]
    assert (await api.get("/negotiations", known_at=second["events"][0]["recorded_at"]))["items"][0][
        "status"] == "active"

    # Paging in the past: the same cursor conventions.
    page = await api.get("/negotiations", as_of="2100-01-01", limit=1)
    assert slugs(page) == ["russia-ukraine-2022"] and page["next"]
    rest = await api.get("/negotiations", as_of="2100-01-01", limit=1, cursor=page["next"])
    assert slugs(rest) == ["later-talks"] and rest["next"] is None

    # Nothing filtered out: the projection's bytes and ETag.
    projected = await client.get("/negotiations", headers=keys.headers("reader"))
    folded = await client.get("/negotiations", params={"known_at": "2100-01-01T00:00:00Z"},
                              headers=keys.headers("reader"))
    assert folded.status_code == projected.status_code == 200
    assert folded.content == projected.content
    assert folded.headers["etag"] == projected.headers["etag"]

    # A bad time is the other routes' 422 invalid-date problem on the parameter.
    bad = await client.get("/negotiations", params={"as_of": "2022-13-01"}, headers=keys.headers("reader"))
    assert bad.status_code == 422 and bad.json()["type"].endswith("invalid-date"), bad.text
