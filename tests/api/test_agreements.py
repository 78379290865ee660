"""Agreement lifecycle through the HTTP API: one agreement on several issues,
steps naming only the agreement, and bad input as 4xx problems that write nothing."""

from __future__ import annotations

import pytest

from tests.api.test_commands import event_count, problem

OPEN = {
    "title": "Havana talks",
    "slug": "havana",
    "parties": [{"code": "CO", "name": "Colombia"}, {"code": "FARC", "name": "FARC-EP"}],
    "mediators": [{"code": "NO", "name": "Norway"}],
    "occurred_on": "2012-10-18",
}
SETUP = [
    {"type": "issue.raised", "occurred_on": "2012-10-18", "issue": "land", "title": "Rural reform", "category": "land"},
    {"type": "issue.raised", "occurred_on": "2012-10-18", "issue": "victims", "title": "Victims", "category": "victims"},
    {"type": "agreement.reached", "occurred_on": "2016-08-24", "issues": ["land", "victims"], "agreement_id": "final",
     "level": "final", "parties": ["CO", "FARC"], "summary": "Final agreement"},
]


@pytest.fixture
async def havana(api):
    await api.open(OPEN)
    await api.record("havana", {"commands": SETUP})
    return api


async def test_steps_name_only_the_agreement_and_reach_every_issue(havana):
    body = await havana.record("havana", {"type": "agreement.signed", "occurred_on": "2016-09-26",
                                          "agreement_id": "final", "parties": ["CO", "FARC"], "venue": "Cartagena"})
    assert [(e["type"], e["data"]["issue"]) for e in body["events"]] == [
        ("agreement.signed", "land"), ("agreement.signed", "victims")]
    body = await havana.record("havana", {"type": "agreement.rejected", "occurred_on": "2016-10-02", "agreement_id": "final",
                                   "by": "CO", "method": "referendum", "result": {"yes": 49.78, "no": 50.21, "turnout": 37.43}})
    for key in ("land", "victims"):
        view = await havana.get(f"/negotiations/havana/issues/{key}", consistency_token=body["consistency_token"])
        [a] = view["agreements"]
        assert (view["status"], a["state"], a["in_force"], a["issues"]) == ("rejected", "rejected", False, ["land", "victims"])
        assert a["ratifications"] == [{"by": "CO", "method": "referendum", "outcome": "rejected", "occurred_on": "2016-10-02",
                                       "body": None, "result": {"yes": 49.78, "no": 50.21, "turnout": 37.43}}]


REFUSALS = [
    ({"type": "agreement.signed", "agreement_id": "nope", "parties": ["CO"]}, 422, "unknown-agreement", "/agreement_id"),
    ({"type": "agreement.ratified", "agreement_id": "final", "by": "NO", "method": "council"}, 422, "not-agreement-party", "/by"),
    ({"type": "agreement.superseded", "agreement_id": "final", "by_agreement": "nope"}, 422, "unknown-agreement", "/by_agreement"),
    ({"type": "agreement.implemented", "agreement_id": "final", "extent": "most"}, 400, None, "/extent"),
]


@pytest.mark.parametrize("command, status, slug, pointer", REFUSALS)
async def test_bad_steps_are_problems_that_write_nothing(havana, client, keys, database_url, command, status, slug, pointer):
    before = await event_count(database_url)
    response = await client.post("/negotiations/havana/commands", json={"occurred_on": "2016-10-03", **command},
                                 headers=keys.headers("recorder"))
    if slug is None:
        assert response.status_code == status, response.text
        body = response.json()
    else:
        body = problem(response, status, slug)
    assert body["errors"][0]["pointer"] == pointer, body
    assert await event_count(database_url) == before


async def test_ratifying_a_rejected_agreement_and_withdrawing_twice(havana, client, keys, database_url):
    await havana.record("havana", {"type": "agreement.rejected", "occurred_on": "2016-10-02", "agreement_id": "final",
                                   "by": "CO", "method": "referendum"})
    before = await event_count(database_url)
    response = await client.post("/negotiations/havana/commands", headers=keys.headers("recorder"), json={
        "type": "agreement.ratified", "occurred_on": "2016-11-30", "agreement_id": "final", "by": "CO", "method": "legislature"})
    body = problem(response, 409, "agreement-not-in-force")
    assert body["errors"][0]["pointer"] == "/agreement_id"
    assert await event_count(database_url) == before


async def test_ratifying_a_superseded_agreement_is_a_problem(havana, client, keys, database_url):
    # Havana: the revised agreement of 24 November 2016 replaced the one the plebiscite rejected.
    await havana.record("havana", {"commands": [
        {**SETUP[2], "occurred_on": "2016-11-24", "agreement_id": "revised", "summary": "Revised final agreement"},
        {"type": "agreement.superseded", "occurred_on": "2016-11-24", "agreement_id": "final", "by_agreement": "revised"}]})
    before = await event_count(database_url)
    response = await client.post("/negotiations/havana/commands", headers=keys.headers("recorder"), json={
        "type": "agreement.ratified", "occurred_on": "2016-11-30", "agreement_id": "final", "by": "CO", "method": "legislature"})
    body = problem(response, 409, "agreement-not-in-force")
    assert body["errors"][0]["pointer"] == "/agreement_id"
    assert await event_count(database_url) == before
    # The agreement that replaced it can be ratified (Congress, 30 November 2016).
    done = await havana.record("havana", {"type": "agreement.ratified", "occurred_on": "2016-11-30",
                                          "agreement_id": "revised", "by": "CO", "method": "legislature"})
    views = await havana.get("/negotiations/havana/agreements", consistency_token=done["consistency_token"])
    assert {a["agreement_id"]: a["state"] for a in views["items"]} == {"final": "superseded", "revised": "ratified"}


async def test_withdrawing_twice_is_a_problem(api, client, keys, database_url):
    await api.open({**OPEN, "parties": [*OPEN["parties"], {"code": "US", "name": "United States"}]})
    await api.record("havana", {"commands": [
        SETUP[0], {**SETUP[2], "issues": [], "issue": "land", "parties": ["CO", "FARC", "US"]},
        {"type": "agreement.withdrawn", "occurred_on": "2018-05-08", "agreement_id": "final", "by": "US"}]})
    before = await event_count(database_url)
    response = await client.post("/negotiations/havana/commands", headers=keys.headers("recorder"), json={
        "type": "agreement.withdrawn", "occurred_on": "2018-05-09", "agreement_id": "final", "by": "US"})
    assert problem(response, 409, "already-withdrawn")["errors"][0]["pointer"] == "/by"
    assert await event_count(database_url) == before
    view = await api.get("/negotiations/havana/issues/land")
    assert (view["status"], view["agreements"][0]["withdrawn_by"]) == ("withdrawn", ["US"])


async def test_negotiating_after_the_conclusion_is_a_problem_until_reopened(havana, client, keys, database_url):
    await havana.record("havana", {"type": "negotiation.concluded", "occurred_on": "2016-09-26", "outcome": "signed"})
    await havana.record("havana", {"type": "agreement.rejected", "occurred_on": "2016-10-02", "agreement_id": "final",
                                   "by": "CO", "method": "referendum"})
    before = await event_count(database_url)
    proposal = {"type": "proposal.made", "occurred_on": "2016-10-10", "issue": "land", "by": "CO", "summary": "changes"}
    response = await client.post("/negotiations/havana/commands", headers=keys.headers("recorder"), json=proposal)
    body = problem(response, 409, "negotiation-concluded")
    assert body["errors"][0]["pointer"] == "/occurred_on" and "negotiation.reopened" in body["detail"]
    assert await event_count(database_url) == before
    await havana.record("havana", {"type": "negotiation.reopened", "occurred_on": "2016-10-05", "reason": "renegotiation"})
    await havana.record("havana", proposal)


async def test_sentences_read_as_english(havana, client, keys):
    # Issue 13: the timeline once read "reached a in principle agreement" and
    # problems "a issue.raised event".
    raised = await havana.record("havana", {"commands": [
        {"type": "issue.raised", "occurred_on": "2013-05-26", "issue": "drugs", "title": "Illicit drugs", "category": "drugs"},
        {"type": "agreement.reached", "occurred_on": "2014-05-16", "issue": "drugs", "agreement_id": "drugs-2014",
         "level": "in_principle", "parties": ["CO", "FARC"], "summary": "Solution to the problem of illicit drugs"}]})
    timeline = await havana.get("/negotiations/havana/timeline", consistency_token=raised["consistency_token"])
    assert "Colombia and FARC-EP reached an agreement in principle 'Solution to the problem of illicit drugs' on drugs" in [
        entry["line"] for entry in timeline["items"]]
    response = await client.post("/negotiations/havana/commands", headers=keys.headers("recorder"), json={
        "type": "record.retracted", "occurred_on": "2014-05-17", "event_id": raised["events"][0]["id"],
        "reason": "entered by mistake"})
    body = problem(response, 422, "not-retractable")
    assert body["detail"].startswith("an issue.raised event cannot be retracted"), body
