"""Bounded views (issue 15 finding 4): an issue or negotiation view no longer carries
every event id behind it (3,000 facts made every projection write and every read
carry 3,000 ids); the lineage is served by a paged route, with the /events paging
conventions and the other reads' time travel."""

from __future__ import annotations

import asyncio

BASE = "/negotiations/russia-ukraine-2022"


async def test_views_are_bounded_and_lineage_is_paged(api, client, keys):
    opened = await api.open()
    statements = [{"type": "statement.made", "occurred_on": f"2022-03-{day:02d}", "issue": "ceasefire",
                   "speaker": "UA", "summary": f"said {day}"} for day in range(1, 6)]
    recorded = await api.record("russia-ukraine-2022", {"commands": statements})
    issue_events = [e for e in recorded["events"] if e["stream_type"] == "issue"]
    await asyncio.sleep(0.01)
    retracted = await api.record("russia-ukraine-2022", {
        "type": "record.retracted", "occurred_on": "2022-03-20", "event_id": issue_events[2]["id"],
        "reason": "misquoted"})
    token = retracted["consistency_token"]

    view = await api.get(f"{BASE}/issues/ceasefire", consistency_token=token)
    summary = await api.get(BASE, consistency_token=token)
    assert "lineage" not in view and "lineage" not in summary
    assert view["version"] == len(issue_events) + 1
    listed = await api.get(f"{BASE}/issues", consistency_token=token)
    assert all("lineage" not in item for item in listed["items"])

    # The lineage: every live fact of the stream (the retraction too, not what it
    # retracted), in stream order, two per page, the next page in `next` and Link.
    live = [e["id"] for e in issue_events if e["id"] != issue_events[2]["id"]] + [retracted["events"][0]["id"]]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"{BASE}/issues/ceasefire/lineage", params=params, headers=keys.headers("reader"))
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) <= 2
        seen += [item["event_id"] for item in page["items"]]
        assert [set(item) for item in page["items"]] == [{"event_id", "version", "type"}] * len(page["items"])
        cursor = page["next"]
        if cursor is None:
            assert "link" not in response.headers
            break
        assert 'rel="next"' in response.headers["link"]
    assert seen == live and pages == 3

    # Time travel: the lineage of the view as it stood. In world time the
    # retraction (a correction of the record, acting in record time) applies to
    # every date viewed now: the statement of 2 March is not behind that view.
    at = await api.get(f"{BASE}/issues/ceasefire/lineage", as_of="2022-03-02")
    assert [i["event_id"] for i in at["items"]] == [e["id"] for e in issue_events[:2]] + [
        retracted["events"][0]["id"]]
    known = await api.get(f"{BASE}/issues/ceasefire/lineage", known_at=recorded["events"][-1]["recorded_at"])
    assert [i["event_id"] for i in known["items"]] == [e["id"] for e in issue_events]  # not yet retracted

    # The negotiation's own stream too.
    negotiation = await api.get(f"{BASE}/lineage")
    assert [i["event_id"] for i in negotiation["items"]] == [opened["events"][0]["id"]]

    # Mistakes are problems.
    await api.get(f"{BASE}/issues/nope/lineage", expect=404)
    await api.get("/negotiations/nope/lineage", expect=404)
    await api.get(f"{BASE}/issues/ceasefire/lineage", expect=400, cursor="garbage")
    await api.get(f"{BASE}/issues/ceasefire/lineage", expect=400, limit=100_000)
