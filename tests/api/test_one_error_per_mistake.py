"""One error per mistake (issue 16): the same mistake gets the same problem on every
route, every fault of a body is reported at once, filters and paging behave alike
everywhere, and OPTIONS lists every method of a path."""

from __future__ import annotations

import asyncio
import json
import uuid

from domain.example import COMMANDS


REF = "russia-ukraine-2022"
RAISE = {"type": "issue.raised", "issue": "security", "title": "Security", "category": "security_guarantees"}


def problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"urn:parley:problem:{slug}", body
    return body


async def test_every_date_mistake_is_invalid_date_with_a_sentence_and_an_example(api, client, keys):
    await api.open()
    recorder, auditor, reader = (keys.headers(r) for r in ("recorder", "auditor", "reader"))
    commands = f"/negotiations/{REF}/commands"
    for bad in ("26/09/2016", "2016-9-26", "2016-09-26T10:00:00", "2016-02-30", "yesterday", "2016-09-26T25:00Z"):
        body = problem(await client.post(commands, json={**RAISE, "occurred_on": bad}, headers=recorder),
                       422, "invalid-date")
        [field] = body["errors"]
        assert field["pointer"] == "/occurred_on"
        assert repr(bad) in field["detail"] and "e.g." in field["detail"], field
        assert "regex" not in body["detail"] and "length" not in body["detail"], body
    naive = problem(await client.post(commands, json={**RAISE, "occurred_on": "2016-09-26T10:00:00"},
                                      headers=recorder), 422, "invalid-date")
    assert "offset" in naive["detail"]
    # Nested and in a batch: the pointer names the field where it is.
    batch = {"commands": [{**RAISE, "occurred_on": "2022-03-01"},
                          {**RAISE, "issue": "other", "occurred_on": "2022-03-01",
                           "source": {"published_on": "16.03.2022"}}]}
    body = problem(await client.post(commands, json=batch, headers=recorder), 422, "invalid-date")
    assert [e["pointer"] for e in body["errors"]] == ["/commands/1/source/published_on"]
    # Query parameters: the same problem, naming the parameter.
    for path, params in (
        (f"/negotiations/{REF}", {"as_of": "26/09/2016"}),
        (f"/negotiations/{REF}/issues", {"known_at": "2022-13-01"}),
        (f"/negotiations/{REF}/issues/ceasefire", {"as_of": "2022-03-01T10:00:00"}),
        ("/events", {"recorded_before": "0.5"}),
        ("/events", {"recorded_after": "2022-03-16"}),
    ):
        response = await client.get(path, params=params, headers=auditor if path == "/events" else reader)
        body = problem(response, 422, "invalid-date")
        [(name, _)] = params.items()
        assert [(e["parameter"], e["in"]) for e in body["errors"]] == [(name, "query")]
        assert "e.g." in body["errors"][0]["detail"], body


async def test_every_fault_of_a_body_is_reported_at_once(api, client, keys):
    await api.open()
    recorder = keys.headers("recorder")
    body = problem(await client.post("/negotiations", json={}, headers=recorder), 400, "invalid-request")
    assert {e["pointer"] for e in body["errors"]} == {"/title", "/parties", "/occurred_on"}
    sent = {"type": "issue.raised", "issue": "Not A Key", "category": "nope", "occurred_on": "2022-03-01",
            "colour": "red", "source": {"url": "not a url", "outlet": ""}}
    body = problem(await client.post(f"/negotiations/{REF}/commands", json=sent, headers=recorder),
                   400, "invalid-request")
    assert {e["pointer"] for e in body["errors"]} == {
        "/issue", "/category", "/colour", "/title", "/source/url", "/source/outlet"
    }, body
    # A bad date among other faults is listed with them (the request is then a 400).
    batch = {"commands": [{**RAISE, "occurred_on": "01/03/2022"}, {"type": "party.joined", "occurred_on": "2022-03-01"}]}
    body = problem(await client.post(f"/negotiations/{REF}/commands", json=batch, headers=recorder),
                   400, "invalid-request")
    assert {e["pointer"] for e in body["errors"]} == {"/commands/0/occurred_on", "/commands/1/party"}
    dated = next(e for e in body["errors"] if e["pointer"] == "/commands/0/occurred_on")
    assert "e.g." in dated["detail"]
    # An unknown command type is one fault, at /type.
    body = problem(await client.post(f"/negotiations/{REF}/commands", json={"type": "nope", "occurred_on": "x"},
                                     headers=recorder), 400, "invalid-request")
    assert [e["pointer"] for e in body["errors"]] == ["/type"]


async def test_filters_refuse_unknown_values_everywhere(api, client, keys):
    await api.open()
    reader = keys.headers("reader")
    for path, params in (
        (f"/negotiations/{REF}/issues", {"category": "nope"}),
        (f"/negotiations/{REF}/issues", {"status": "bogus"}),
        ("/negotiations", {"status": "asleep"}),
        ("/negotiations", {"party": "not a code"}),
    ):
        body = problem(await client.get(path, params=params, headers=reader), 400, "invalid-parameter")
        assert [e["parameter"] for e in body["errors"]] == list(params), body
    # Every status of the vocabulary is a filter value (v2's included).
    for status in ("withdrawn", "implementing", "rejected", "raised"):
        assert (await client.get(f"/negotiations/{REF}/issues", params={"status": status},
                                 headers=reader)).status_code == 200


async def test_a_consistency_token_that_is_malformed_or_unknown_is_the_same_problem(api, client, keys):
    await api.open()
    for token in ("zz", "1", "99999999.99999999"):
        body = problem(await client.get(f"/negotiations/{REF}", params={"consistency_token": token},
                                        headers=keys.headers("reader")), 400, "invalid-parameter")
        assert [e["parameter"] for e in body["errors"]] == ["consistency_token"]
        assert "regex" not in body["detail"]


async def test_the_log_takes_a_negotiation_by_slug_as_every_route_does(api, client, keys):
    opened = await api.open()
    await api.record(REF, {**RAISE, "occurred_on": "2022-03-01"})
    auditor = keys.headers("auditor")
    for _ in range(200):  # the gap-free log shows a commit once no older transaction is open
        by_id = (await client.get("/events", params={"negotiation": opened["negotiation_id"]},
                                  headers=auditor)).json()
        if len(by_id["items"]) == 2:
            break
        await asyncio.sleep(0.05)
    by_slug = (await client.get("/events", params={"negotiation": REF}, headers=auditor)).json()
    assert len(by_id["items"]) == 2 and by_slug == by_id
    export = await client.get("/audit/export", params={"negotiation": REF}, headers=auditor)
    assert export.status_code == 200 and len(export.text.splitlines()) == 2
    # A negotiation that exists but has no event in the page is an empty page...
    for narrower in ({"type": "corridor.rejected"}, {"recorded_before": "2000-01-01T00:00:00Z"}):
        page = await client.get("/events", params={"negotiation": REF, **narrower}, headers=auditor)
        assert page.status_code == 200 and page.json()["items"] == [], page.text
    # ...one that does not exist, by id or by slug, is the 404 every route names it with
    # (the log, its stream and the export alike), never an empty page.
    for unknown in ("no-such-talks", "00000000-0000-4000-8000-000000000000", str(uuid.uuid4())):
        for route in ("/events", "/events/stream", "/audit/export"):
            body = problem(await client.get(route, params={"negotiation": unknown}, headers=auditor),
                           404, "unknown-negotiation")
            assert unknown in body["detail"], body
    problem(await client.get("/events", params={"negotiation": "Not a slug"}, headers=auditor),
            400, "invalid-parameter")


async def test_the_issue_list_honours_limit_and_pages_with_a_cursor(api, client, keys):
    await api.open()
    await api.record(REF, {"commands": COMMANDS})
    reader = keys.headers("reader")
    everything = (await client.get(f"/negotiations/{REF}/issues", headers=reader)).json()
    keys_all = [v["key"] for v in everything["items"]]
    assert len(keys_all) > 4 and everything["next"] is None
    for travel in ({}, {"as_of": "2099-01-01"}):
        seen: list[str] = []
        params: dict = {"limit": 2, **travel}
        while True:
            page = await client.get(f"/negotiations/{REF}/issues", params=params, headers=reader)
            assert page.status_code == 200, page.text
            body = page.json()
            assert len(body["items"]) <= 2
            seen += [v["key"] for v in body["items"]]
            if body["next"] is None:
                assert "link" not in page.headers
                break
            assert 'rel="next"' in page.headers["link"] and "limit=2" in page.headers["link"]
            params = {**params, "cursor": body["next"]}
        assert seen == keys_all, travel
    problem(await client.get(f"/negotiations/{REF}/issues", params={"limit": 0}, headers=reader),
            400, "invalid-parameter")
    problem(await client.get(f"/negotiations/{REF}/issues", params={"cursor": "nonsense"}, headers=reader),
            400, "invalid-parameter")


async def test_time_travel_before_the_opening_is_a_404_on_every_view(api, client, keys):
    """Documented in docs/client-guide.md: before the negotiation existed there is
    nothing to show, on the negotiation or on its issues (not an empty list)."""
    await api.open()
    await api.record(REF, {"commands": COMMANDS})
    reader = keys.headers("reader")
    for travel in ({"as_of": "2000-01-01"}, {"known_at": "2000-01-01"}):
        problem(await client.get(f"/negotiations/{REF}", params=travel, headers=reader), 404, "unknown-negotiation")
        problem(await client.get(f"/negotiations/{REF}/issues", params=travel, headers=reader),
                404, "unknown-negotiation")
        response = await client.get(f"/negotiations/{REF}/issues/ceasefire", params=travel, headers=reader)
        assert response.status_code == 404, response.text
    # After the opening, before an issue was raised: the list is empty, the issue a 404.
    issues = await client.get(f"/negotiations/{REF}/issues", params={"as_of": "2022-02-28"}, headers=reader)
    assert issues.status_code == 200 and issues.json()["items"] == []
    problem(await client.get(f"/negotiations/{REF}/issues/ceasefire", params={"as_of": "2022-02-28"},
                             headers=reader), 404, "unknown-issue")


async def test_options_allows_every_method_of_the_path(client, keys, tmp_path):
    from tests.api.test_openapi import current

    document = json.loads(current(tmp_path))
    checked = 0
    for path, operations in document["paths"].items():
        concrete = path.replace("{ref}", REF).replace("{key}", "ceasefire").replace("{tree_size}", "1")
        concrete = concrete.replace("{tile}", "0/000")
        response = await client.options(concrete)
        assert response.status_code == 204, (path, response.text)
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed == {m.upper() for m in operations} | {"OPTIONS"}, (path, allowed)
        checked += 1
    assert checked == len(document["paths"])
    allow = (await client.options("/negotiations", headers=keys.headers("reader"))).headers["allow"]
    assert allow == "GET, OPTIONS, POST"
    # A method the path does not have is a 405 whose Allow says the same.
    refused = await client.delete("/negotiations", headers=keys.headers("admin"))
    assert refused.status_code == 405
    assert {m.strip() for m in refused.headers["allow"].split(",")} >= {"GET", "POST"}





async def test_if_match_takes_the_etag_that_the_view_served(api, client, keys):
    from domain.issue import issue_stream_id

    opened = await api.open()
    negotiation_id = opened["negotiation_id"]
    raised = await api.record(REF, {"commands": [{**RAISE, "occurred_on": "2022-03-01"},
                                                 {**RAISE, "issue": "territory", "category": "territory",
                                                  "occurred_on": "2022-03-01"}]})
    reader, path = keys.headers("reader"), f"/negotiations/{REF}/commands"
    # Views are read with the last write's consistency token: without it a view may
    # still be catching up, and its ETag changes between the two reads below.
    last = {"token": raised["consistency_token"]}

    async def etag(url: str) -> str:
        token = {"consistency_token": last["token"]}
        response = await client.get(url, headers=reader, params=token)
        assert response.status_code == 200, response.text
        again = await client.get(url, headers={**reader, "If-None-Match": response.headers["etag"]}, params=token)
        assert again.status_code == 304  # the tag still serves conditional reads
        return response.headers["etag"]

    async def post(body, tag):
        response = await client.post(path, json=body, headers=keys.headers("recorder", **{"If-Match": tag}))
        if response.status_code == 201:
            last["token"] = response.json()["consistency_token"]
        return response

    discuss = {"type": "issue.discussed", "issue": "security", "occurred_on": "2022-03-02"}
    position = {"type": "position.stated", "issue": "territory", "party": "UA", "stance": "rejects",
                "summary": "no", "occurred_on": "2022-03-02"}
    security = await etag(f"/negotiations/{REF}/issues/security")
    assert (await post(discuss, security)).status_code == 201
    stale = problem(await post(discuss, security), 412, "precondition-failed")
    assert stale["stream_id"] == str(issue_stream_id(uuid.UUID(negotiation_id), "security"))
    assert stale["current_version"] == 2
    # A batch over several streams: the 412 names the stream whose ETag is stale.
    territory = await etag(f"/negotiations/{REF}/issues/territory")
    both = {"commands": [position, discuss]}
    named = problem(await post(both, f"{territory}, {security}"), 412, "precondition-failed")
    assert named["stream_id"] == str(issue_stream_id(uuid.UUID(negotiation_id), "security")), named
    fresh = await etag(f"/negotiations/{REF}/issues/security")
    assert (await post(both, f"{territory}, {fresh}")).status_code == 201
    # A bare version cannot say which of several streams it means: 400, not a 412.
    problem(await post({"commands": [position, discuss]}, '"3"'), 400, "invalid-parameter")
    # The negotiation's ETag guards the negotiation's stream.
    negotiation = await etag(f"/negotiations/{REF}")
    join = {"type": "party.joined", "party": {"code": "TR", "name": "Turkey"}, "role": "host",
            "occurred_on": "2022-03-03"}
    assert (await post(join, negotiation)).status_code == 201
    stale = problem(await post({**join, "party": {"code": "UN", "name": "UN"}}, negotiation),
                    412, "precondition-failed")
    assert stale["stream_id"] == negotiation_id
    # What is neither an ETag of a view nor a version is a 400 naming the header.
    body = problem(await post(join, '"deadbeef"'), 400, "invalid-parameter")
    assert body["errors"][0]["parameter"] == "If-Match"
