"""Retracting one copy of a fact recorded on several issues retracts the fact (issue
13 leftover): one agreement step covering several issues is one fact, stored once
on each covered issue; a retraction naming any copy retracts every live copy in
the same write, so no issue keeps a fact the record says was wrong."""

from __future__ import annotations

from tests.api.test_agreements import OPEN, SETUP
from tests.api.test_commands import event_count


async def test_retracting_one_copy_retracts_every_copy(api, client, keys, database_url):
    await api.open(OPEN)
    await api.record("havana", {"commands": SETUP})
    signed = await api.record("havana", {"type": "agreement.signed", "occurred_on": "2016-09-26",
                                         "agreement_id": "final", "parties": ["CO", "FARC"], "venue": "Cartagena"})
    copies = {e["data"]["issue"]: e["id"] for e in signed["events"]}
    streams = {e["id"]: e["stream_id"] for e in signed["events"]}
    assert sorted(copies) == ["land", "victims"]

    body = await api.record("havana", {"type": "record.retracted", "occurred_on": "2016-09-27",
                                       "event_id": copies["victims"], "reason": "the signing was misreported"})
    # One retraction per copy, each on its copy's stream, naming that copy.
    assert sorted((e["stream_id"], e["data"]["event_id"]) for e in body["events"]) == sorted(
        (streams[event_id], event_id) for event_id in copies.values())
    token = body["consistency_token"]
    for key in ("land", "victims"):
        view = await api.get(f"/negotiations/havana/issues/{key}", consistency_token=token)
        [agreement] = view["agreements"]
        assert agreement["state"] == "reached" and agreement["signed_by"] == [], (key, agreement)
        assert copies[key] in view["retracted"]
    summary = await api.get("/negotiations/havana", consistency_token=token)
    assert [a["state"] for a in summary["agreements"]] == ["reached"]
    assert (await api.get("/negotiations/havana/agreements/final"))["state"] == "reached"

    # Each copy is retracted now: naming either again is the usual 409, and writes nothing.
    before = await event_count(database_url)
    for event_id in copies.values():
        again = await client.post("/negotiations/havana/commands", headers=keys.headers("recorder"), json={
            "type": "record.retracted", "occurred_on": "2016-09-28", "event_id": event_id, "reason": "twice"})
        assert again.status_code == 409 and again.json()["type"].endswith("already-retracted"), again.text
    assert await event_count(database_url) == before


async def test_retracting_a_multi_issue_agreement_removes_it_from_every_issue(api):
    await api.open(OPEN)
    reached = await api.record("havana", {"commands": SETUP})
    copies = {e["id"]: e["stream_id"] for e in reached["events"] if e["type"] == "agreement.reached"}
    land_copy = next(e["id"] for e in reached["events"]
                     if e["type"] == "agreement.reached" and e["data"]["issue"] == "land")
    body = await api.record("havana", {"type": "record.retracted", "occurred_on": "2016-08-25",
                                       "event_id": land_copy, "reason": "no such agreement"})
    assert sorted((e["stream_id"], e["data"]["event_id"]) for e in body["events"]) == sorted(
        (stream_id, event_id) for event_id, stream_id in copies.items())
    token = body["consistency_token"]
    for key in ("land", "victims"):
        view = await api.get(f"/negotiations/havana/issues/{key}", consistency_token=token)
        assert view["agreements"] == [] and view["status"] == "raised", (key, view["status"])
    await api.get("/negotiations/havana/agreements/final", expect=404)
    assert (await api.get("/negotiations/havana", consistency_token=token))["agreements"] == []
