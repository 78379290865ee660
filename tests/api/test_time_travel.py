"""as_of (world time) and known_at (record time) over a scripted history, computed
from the log; with nothing filtered out they equal the projections' bytes."""

from __future__ import annotations

import asyncio

from domain.example import COMMANDS

BASE = "/negotiations/russia-ukraine-2022"


def proposal_status(issue: dict) -> str | None:
    return issue["proposals"][0]["status"] if issue["proposals"] else None


async def test_world_and_record_time(api, client, keys):
    await api.open()
    raised = await api.record("russia-ukraine-2022", {
        "type": "issue.raised", "occurred_on": "2022-03-01", "issue": "prisoners", "title": "Prisoner exchange",
        "category": "prisoners_detainees"})
    await asyncio.sleep(0.01)
    proposed = await api.record("russia-ukraine-2022", {
        "type": "proposal.made", "occurred_on": "2022-03-05", "issue": "prisoners", "proposal_id": "all-for-all",
        "by": "UA", "to": ["RU"], "summary": "exchange all for all"})
    await asyncio.sleep(0.01)
    accepted = await api.record("russia-ukraine-2022", {
        "type": "proposal.accepted", "occurred_on": "2022-03-10", "issue": "prisoners", "proposal_id": "all-for-all",
        "by": "RU"})
    await asyncio.sleep(0.01)
    retracted = await api.record("russia-ukraine-2022", {
        "type": "record.retracted", "occurred_on": "2022-03-12", "event_id": accepted["events"][0]["id"],
        "reason": "the acceptance was misreported"})
    token = retracted["consistency_token"]
    recorded_at = {name: result["events"][-1]["recorded_at"] for name, result in
                   [("raised", raised), ("proposed", proposed), ("accepted", accepted), ("retracted", retracted)]}
    issue = f"{BASE}/issues/prisoners"

    now = await api.get(issue, consistency_token=token)
    assert proposal_status(now) == "open" and now["status"] == "proposal_on_table"

    # World time.
    assert (await api.get(issue, as_of="2022-03-03"))["status"] == "raised"
    assert proposal_status(await api.get(issue, as_of="2022-03-07")) == "open"
    # The retraction is a correction of the record: it applies to every world time viewed now.
    assert proposal_status(await api.get(issue, as_of="2022-03-11")) == "open"
    await api.get(issue, expect=404, as_of="2022-02-28")
    assert [i["key"] for i in (await api.get(f"{BASE}/issues", as_of="2022-02-28"))["items"]] == []

    # Record time: the record as it stood, including facts retracted since.
    assert proposal_status(await api.get(issue, known_at=recorded_at["accepted"])) == "accepted"
    assert proposal_status(await api.get(issue, known_at=recorded_at["proposed"])) == "open"
    assert (await api.get(issue, known_at=recorded_at["raised"]))["status"] == "raised"
    both = await api.get(issue, known_at=recorded_at["accepted"], as_of="2022-03-07")
    assert proposal_status(both) == "open"
    await api.get(BASE, expect=404, known_at="2000-01-01")

    summary = await api.get(BASE, known_at=recorded_at["accepted"])
    assert [i["key"] for i in summary["issues"]] == ["prisoners"]

    # Nothing filtered out: the same bytes as the projections serve.
    for path in (BASE, f"{BASE}/issues", issue):
        projected = await client.get(path, headers=keys.headers("reader"))
        folded = await client.get(path, params={"as_of": "2100-01-01"}, headers=keys.headers("reader"))
        assert folded.content == projected.content, path
        assert folded.headers["etag"] == projected.headers["etag"]


async def test_the_example_report_folds_the_same_from_the_log(api, client, keys):
    await api.open()
    token = (await api.record("russia-ukraine-2022", {"commands": COMMANDS}))["consistency_token"]
    await api.get(BASE, consistency_token=token)
    for path in (BASE, f"{BASE}/issues", f"{BASE}/issues/humanitarian-corridors", f"{BASE}/issues/neutral-status"):
        projected = await client.get(path, headers=keys.headers("reader"))
        folded = await client.get(path, params={"known_at": "2100-01-01T00:00:00Z"}, headers=keys.headers("reader"))
        assert folded.status_code == projected.status_code == 200
        assert folded.content == projected.content, path


async def test_times_at_the_edge_of_the_calendar_are_invalid_dates(api, client, keys):
    # A day's end, or an instant in UTC, that Python's calendar cannot hold is a
    # client's mistake (422 invalid-date on the parameter), not a 500.
    await api.open()
    await api.record("russia-ukraine-2022", {"commands": COMMANDS})
    cases = [("as_of", "9999-12-31"), ("as_of", "9999-12-31T23:00:00-05:00"),
             ("as_of", "0001-01-01T00:00:00+01:00"), ("known_at", "9999-12-31")]
    for path in (BASE, f"{BASE}/issues", f"{BASE}/issues/ceasefire"):
        for name, value in cases:
            response = await client.get(path, params={name: value}, headers=keys.headers("reader"))
            assert response.status_code == 422, (path, name, value, response.text)
            assert response.json()["type"].endswith("invalid-date"), response.text
