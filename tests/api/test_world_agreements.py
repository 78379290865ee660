"""Two real post-signing processes recorded end to end through the HTTP API, with
world dates from public sources, read back at several `as_of` dates and
`known_at` instants.

* The Good Friday (Belfast) Agreement: multi-party talks chaired by George
  Mitchell; agreed and signed in Belfast on 10 April 1998; approved in the
  referendums of 22 May 1998 in Northern Ireland (71.1 % yes, turnout 81.1 %)
  and in Ireland (94.4 % yes, turnout 56.3 %); power devolved to the
  Northern Ireland Executive on 2 December 1999; IRA decommissioning
  completed, as the IICD reported, on 26 September 2005; devolved
  power-sharing government restored on 8 May 2007. (Implementation extents
  are the recorder's own reading, not an outside score.)
* The Arusha Accords for Rwanda: ceasefire signed in Arusha on 12 July 1992;
  peace agreement signed on 4 August 1993 between the Government of Rwanda
  and the Rwandan Patriotic Front, Tanzania facilitating; implementation
  stalled (an RPF battalion entered Kigali on 28 December 1993; the
  broad-based transitional government was never installed); the accords
  collapsed with the killings and renewed war from 7 April 1994.
"""

from __future__ import annotations

import pytest

from tests.api.test_commands import event_count, problem

GFA = {
    "title": "Northern Ireland multi-party talks",
    "slug": "good-friday",
    "parties": [{"code": "UK", "name": "United Kingdom"}, {"code": "IE", "name": "Ireland"},
                {"code": "UUP", "name": "Ulster Unionist Party"}, {"code": "SDLP", "name": "SDLP"},
                {"code": "SF", "name": "Sinn Féin"}],
    "mediators": [{"code": "US", "name": "United States (George Mitchell)"}],
    "occurred_on": "1996-06-10",
}
GFA_ISSUES = ["constitutional-status", "power-sharing", "decommissioning"]


def raised(key, title, category, day):
    return {"type": "issue.raised", "occurred_on": day, "issue": key, "title": title, "category": category}


GFA_SIGNING = [
    raised("constitutional-status", "Constitutional status of Northern Ireland", "constitutional", "1996-06-10"),
    raised("power-sharing", "Power-sharing institutions", "power_sharing", "1996-06-10"),
    raised("decommissioning", "Decommissioning of paramilitary arms", "disarmament_reintegration", "1996-06-10"),
    {"type": "agreement.reached", "occurred_on": "1998-04-10", "issues": GFA_ISSUES, "agreement_id": "belfast-agreement",
     "level": "final", "parties": ["UK", "IE", "UUP", "SDLP", "SF"], "summary": "The Belfast (Good Friday) Agreement"},
    {"type": "agreement.signed", "occurred_on": "1998-04-10", "agreement_id": "belfast-agreement",
     "parties": ["UK", "IE"], "venue": "Belfast"},
    {"type": "negotiation.concluded", "occurred_on": "1998-04-10", "outcome": "Belfast Agreement"},
    {"type": "agreement.ratified", "occurred_on": "1998-05-22", "agreement_id": "belfast-agreement", "by": "UK",
     "method": "referendum", "body": "Northern Ireland referendum", "result": {"yes": 71.1, "no": 28.9, "turnout": 81.1}},
    {"type": "agreement.ratified", "occurred_on": "1998-05-22", "agreement_id": "belfast-agreement", "by": "IE",
     "method": "referendum", "body": "Nineteenth Amendment referendum", "result": {"yes": 94.4, "no": 5.6, "turnout": 56.3}},
]
GFA_IMPLEMENTATION = [
    {"type": "agreement.implemented", "occurred_on": "1999-12-02", "agreement_id": "belfast-agreement",
     "extent": "intermediate", "summary": "Power devolved to the Northern Ireland Executive"},
    {"type": "statement.made", "occurred_on": "2005-09-26", "issue": "decommissioning", "speaker": "IICD",
     "summary": "The IRA has met its commitment to put all its arms beyond use"},
    {"type": "agreement.implemented", "occurred_on": "2005-09-26", "agreement_id": "belfast-agreement",
     "extent": "intermediate", "summary": "IRA decommissioning completed"},
    {"type": "agreement.implemented", "occurred_on": "2007-05-08", "agreement_id": "belfast-agreement",
     "extent": "full", "summary": "Devolved power-sharing government restored"},
]


async def statuses(api, slug, **params):
    view = await api.get(f"/negotiations/{slug}/issues", **params)
    return {issue["key"]: issue["status"] for issue in view["items"]}


async def agreement(api, slug, agreement_id, **params):
    return await api.get(f"/negotiations/{slug}/agreements/{agreement_id}", **params)


async def test_the_good_friday_agreement_from_the_table_to_the_ground(api):
    await api.open(GFA)
    signed = await api.record("good-friday", {"commands": GFA_SIGNING})
    implemented = await api.record("good-friday", {"commands": GFA_IMPLEMENTATION})
    token = implemented["consistency_token"]

    every = lambda status: dict.fromkeys(GFA_ISSUES, status)  # noqa: E731
    assert await statuses(api, "good-friday", as_of="1998-04-09") == every("raised")
    assert await statuses(api, "good-friday", as_of="1998-04-10") == every("agreed")
    assert await statuses(api, "good-friday", as_of="2000-01-01") == every("implementing")
    assert await statuses(api, "good-friday", as_of="2006-01-01") == every("implementing")
    assert await statuses(api, "good-friday", consistency_token=token) == every("implemented")

    on_signing = await agreement(api, "good-friday", "belfast-agreement", as_of="1998-04-10")
    assert (on_signing["state"], on_signing["signed_by"], on_signing["ratifications"], on_signing["issues"]) == (
        "signed", ["UK", "IE"], [], GFA_ISSUES)
    after_referendums = await agreement(api, "good-friday", "belfast-agreement", as_of="1998-05-22")
    assert after_referendums["state"] == "ratified" and after_referendums["in_force"] is True
    assert [(r["by"], r["method"], r["outcome"], r["result"]["yes"], r["result"]["turnout"])
            for r in after_referendums["ratifications"]] == [
        ("UK", "referendum", "ratified", 71.1, 81.1), ("IE", "referendum", "ratified", 94.4, 56.3)]
    in_2006 = await agreement(api, "good-friday", "belfast-agreement", as_of="2006-01-01")
    assert in_2006["implementation"] == {"extent": "intermediate", "occurred_on": "2005-09-26"}
    now = await agreement(api, "good-friday", "belfast-agreement", consistency_token=token)
    assert (now["state"], now["implementation"]) == ("implemented", {"extent": "full", "occurred_on": "2007-05-08"})

    # known_at: the record as it stood once the signing and referendums were entered.
    entered = signed["events"][-1]["recorded_at"]
    then = await agreement(api, "good-friday", "belfast-agreement", known_at=entered)
    assert (then["state"], then["implementation"], len(then["ratifications"])) == ("ratified", None, 2)
    assert await statuses(api, "good-friday", known_at=entered) == every("agreed")
    # known_at at the opening: nothing of the talks' issues or agreements was on record yet.
    opened_at = (await api.get("/events", role="auditor", limit=1))["items"][0]["recorded_at"]
    assert await statuses(api, "good-friday", known_at=opened_at) == {}
    await api.get("/negotiations/good-friday/agreements/belfast-agreement", expect=404, known_at=opened_at)
    # known_at once the implementation reports were entered: the record as it stands now,
    # and, combined with as_of, the implementation as it stood in 2000.
    reported = implemented["events"][-1]["recorded_at"]
    assert await agreement(api, "good-friday", "belfast-agreement", known_at=reported) == now
    assert await statuses(api, "good-friday", known_at=reported) == every("implemented")
    back_then = await agreement(api, "good-friday", "belfast-agreement", known_at=reported, as_of="2000-01-01")
    assert (back_then["state"], back_then["implementation"]) == (
        "implemented", {"extent": "intermediate", "occurred_on": "1999-12-02"})
    # The agreement is listed once in the negotiation, however many issues it covers.
    negotiation = await api.get("/negotiations/good-friday", consistency_token=token)
    assert negotiation["status"] == "concluded" and negotiation["concluded_on"] == "1998-04-10"
    assert [a["agreement_id"] for a in negotiation["agreements"]] == ["belfast-agreement"]
    assert negotiation["agreements"][0] == now
    past = await api.get("/negotiations/good-friday", as_of="1998-04-10")
    assert [a["state"] for a in past["agreements"]] == ["signed"]
    # Each covered issue's view holds the same agreement.
    for key in GFA_ISSUES:
        view = await api.get(f"/negotiations/good-friday/issues/{key}", as_of="2000-01-01")
        assert view["agreements"][0]["implementation"] == {"extent": "intermediate", "occurred_on": "1999-12-02"}
        assert view["last_activity_on"] <= "2000-01-01"
    # The timeline, as of the referendums, reads as English and stops there.
    timeline = await api.get("/negotiations/good-friday/timeline", as_of="1998-05-22")
    lines = [entry["line"] for entry in timeline["items"]]
    assert any("reached a final agreement 'The Belfast (Good Friday) Agreement'" in line for line in lines)
    assert any(line.startswith("Ireland ratified agreement belfast-agreement") for line in lines)
    assert not any("implemented" in line for line in lines)
    assert all(entry["occurred_on"] <= "1998-05-22" for entry in timeline["items"])


ARUSHA = {
    "title": "Arusha peace process",
    "slug": "arusha",
    "parties": [{"code": "RW", "name": "Government of Rwanda"}, {"code": "RPF", "name": "Rwandan Patriotic Front"}],
    "mediators": [{"code": "TZ", "name": "Tanzania"}],
    "occurred_on": "1992-07-12",
}
ARUSHA_ISSUES = ["power-sharing", "armed-forces", "refugees"]
ARUSHA_SIGNING = [
    {"type": "ceasefire.agreed", "occurred_on": "1992-07-12", "ceasefire_id": "arusha-1992", "scope": "general",
     "parties": ["RW", "RPF"]},
    raised("power-sharing", "Broad-based transitional government", "power_sharing", "1992-07-12"),
    raised("armed-forces", "Integration of the armed forces", "security_sector", "1992-07-12"),
    raised("refugees", "Return of refugees", "displaced_persons", "1992-07-12"),
    {"type": "agreement.reached", "occurred_on": "1993-08-04", "issues": ARUSHA_ISSUES, "agreement_id": "arusha-accords",
     "level": "final", "parties": ["RW", "RPF"], "summary": "Peace Agreement between the Government of Rwanda and the RPF"},
    {"type": "agreement.signed", "occurred_on": "1993-08-04", "agreement_id": "arusha-accords", "parties": ["RW", "RPF"],
     "venue": "Arusha"},
    {"type": "negotiation.concluded", "occurred_on": "1993-08-04", "outcome": "Arusha Accords signed"},
    {"type": "agreement.implemented", "occurred_on": "1993-12-28", "agreement_id": "arusha-accords",
     "extent": "minimal", "summary": "RPF battalion stationed in Kigali; transitional institutions not installed"},
]
ARUSHA_COLLAPSE = [
    {"type": "agreement.violated", "occurred_on": "1994-04-07", "agreement_id": "arusha-accords", "alleged_by": "RPF",
     "against": ["RW"], "summary": "Killings and renewed war after the president's plane was shot down"},
    {"type": "ceasefire.violated", "occurred_on": "1994-04-07", "ceasefire_id": "arusha-1992", "alleged_by": "RPF"},
    {"type": "ceasefire.ended", "occurred_on": "1994-04-08", "ceasefire_id": "arusha-1992", "reason": "collapsed"},
]


async def test_the_arusha_accords_signed_stalled_and_collapsed(api, client, keys, database_url):
    await api.open(ARUSHA)
    signed = await api.record("arusha", {"commands": ARUSHA_SIGNING})
    # A new round after the conclusion is a negotiating fact: refused, nothing written.
    before = await event_count(database_url)
    response = await client.post("/negotiations/arusha/commands", headers=keys.headers("recorder"), json={
        "type": "round.held", "occurred_on": "1994-02-23", "venue": "Kigali", "level": "delegation"})
    body = problem(response, 409, "negotiation-concluded")
    assert body["errors"][0]["pointer"] == "/occurred_on"
    assert await event_count(database_url) == before
    collapsed = await api.record("arusha", {"commands": ARUSHA_COLLAPSE})
    token = collapsed["consistency_token"]

    every = lambda status: dict.fromkeys(ARUSHA_ISSUES, status)  # noqa: E731
    assert await statuses(api, "arusha", as_of="1993-08-03") == {**every("raised"), "ceasefire": "agreed"}
    assert await statuses(api, "arusha", as_of="1993-09-01") == {**every("agreed"), "ceasefire": "agreed"}
    assert await statuses(api, "arusha", as_of="1994-01-01") == {**every("implementing"), "ceasefire": "agreed"}
    assert await statuses(api, "arusha", as_of="1994-04-07") == {**every("violated"), "ceasefire": "violated"}
    now = await statuses(api, "arusha", consistency_token=token)
    assert now == {**every("violated"), "ceasefire": "under_discussion"}  # an ended ceasefire is history

    stalled = await agreement(api, "arusha", "arusha-accords", as_of="1994-01-01")
    assert (stalled["state"], stalled["implementation"], stalled["violations"]) == (
        "implemented", {"extent": "minimal", "occurred_on": "1993-12-28"}, 0)
    after = await agreement(api, "arusha", "arusha-accords", consistency_token=token)
    assert (after["state"], after["violations"], after["in_force"]) == ("violated", 1, True)
    # As recorded before the collapse was entered, whatever the world date asked.
    entered = signed["events"][-1]["recorded_at"]
    known = await agreement(api, "arusha", "arusha-accords", known_at=entered)
    assert (known["state"], known["violations"]) == ("implemented", 0)
    assert await statuses(api, "arusha", known_at=entered, as_of="1994-12-31") == {
        **every("implementing"), "ceasefire": "agreed"}
    # Known once the collapse was entered: the record as it stands now.
    reported = collapsed["events"][-1]["recorded_at"]
    assert await statuses(api, "arusha", known_at=reported) == now
    known_after = await agreement(api, "arusha", "arusha-accords", known_at=reported)
    assert (known_after["state"], known_after["violations"]) == ("violated", 1)
    ceasefire = await api.get("/negotiations/arusha/issues/ceasefire", consistency_token=token)
    assert [(i["id"], i["state"], i["end_reason"]) for i in ceasefire["items"]] == [("arusha-1992", "ended", "collapsed")]


@pytest.mark.parametrize("path", ["agreements/nope", "agreements/nope?as_of=1999-01-01"])
async def test_an_unknown_agreement_is_a_404_problem(api, client, keys, path):
    await api.open(GFA)
    response = await client.get(f"/negotiations/good-friday/{path}", headers=keys.headers("reader"))
    problem(response, 404, "unknown-agreement")
