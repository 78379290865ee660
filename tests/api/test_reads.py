"""Read routes: lists and pagination, views, history, timeline, ETag/304,
consistency tokens, and their refusals."""

from __future__ import annotations

from domain.example import COMMANDS, OPENED


async def recorded_example(api) -> str:
    await api.open()
    return (await api.record("russia-ukraine-2022", {"commands": COMMANDS}))["consistency_token"]


async def test_negotiation_issue_and_timeline_views(api):
    token = await recorded_example(api)
    summary = await api.get("/negotiations/russia-ukraine-2022", consistency_token=token)
    assert summary["status"] == "active"
    assert {p["code"] for p in summary["parties"]} >= {"RU", "UA", "BY", "TR"}
    assert len(summary["rounds"]) == 4
    statuses = {i["key"]: i["status"] for i in summary["issues"]}
    assert statuses["ceasefire"] == "agreed"
    assert statuses["humanitarian-corridors"] == "partially_agreed"
    assert statuses["neutral-status"] == "proposal_on_table"
    same = await api.get(f"/negotiations/{summary['id']}", consistency_token=token)
    assert same == summary

    issues = await api.get("/negotiations/russia-ukraine-2022/issues", consistency_token=token)
    assert [i["key"] for i in issues["items"]] == sorted(statuses)
    assert issues["next"] is None
    agreed = await api.get("/negotiations/russia-ukraine-2022/issues", status="agreed")
    assert [i["key"] for i in agreed["items"]] == ["ceasefire"]

    neutral = await api.get("/negotiations/russia-ukraine-2022/issues/neutral-status", consistency_token=token)
    assert neutral["linked"] == [{"issue": "security-guarantees", "relation": "conditional_on"}]
    assert neutral["proposals"][0]["awaiting"] == ["UA"]

    timeline = await api.get("/negotiations/russia-ukraine-2022/timeline", consistency_token=token, limit=500)
    occurred = [entry["occurred_on"] for entry in timeline["items"]]
    assert occurred == sorted(occurred)
    assert all(entry["line"] for entry in timeline["items"])


async def test_history_is_paginated_with_a_link_header(api, client, keys):
    await recorded_example(api)
    path = "/negotiations/russia-ukraine-2022/issues/humanitarian-corridors/history"
    first = await client.get(path, params={"limit": 3}, headers=keys.headers("reader"))
    assert first.status_code == 200
    page = first.json()
    assert [e["version"] for e in page["items"]] == [1, 2, 3]
    assert page["next"] and f"cursor={page['next']}" in first.headers["link"]
    assert first.headers["link"].endswith('rel="next"')
    seen = page["items"]
    while page["next"]:
        page = await api.get(path, limit=3, cursor=page["next"])
        seen += page["items"]
    assert [e["version"] for e in seen] == list(range(1, len(seen) + 1))
    assert seen[0]["type"] == "issue.raised" and seen[0]["hash"]


async def test_list_pagination_and_filters(api, client, keys):
    for i in range(5):
        opened = await api.open({**OPENED, "slug": f"talks-{i}", "title": f"Talks {i}"})
    await api.record("talks-3", {"type": "party.joined", "occurred_on": "2022-03-01",
                                 "party": {"code": "TR", "name": "Turkey"}, "role": "mediator"})
    token = (await api.record("talks-4", {"type": "negotiation.suspended", "occurred_on": "2022-03-02"}))[
        "consistency_token"]
    slugs, cursor = [], None
    while True:
        params = {"limit": 2, "consistency_token": token, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/negotiations", params=params, headers=keys.headers("reader"))
        body = response.json()
        slugs += [item["slug"] for item in body["items"]]
        cursor = body["next"]
        if not cursor:
            assert "link" not in response.headers
            break
        assert 'rel="next"' in response.headers["link"]
    assert slugs == [f"talks-{i}" for i in range(5)]
    suspended = await api.get("/negotiations", status="suspended")
    assert [item["slug"] for item in suspended["items"]] == ["talks-4"]
    with_turkey = await api.get("/negotiations", party="TR")
    assert [item["slug"] for item in with_turkey["items"]] == ["talks-3"]
    assert opened["negotiation_id"]


async def test_etag_and_if_none_match(api, client, keys):
    token = await recorded_example(api)
    for path in ("/negotiations", "/negotiations/russia-ukraine-2022", "/negotiations/russia-ukraine-2022/issues",
                 "/negotiations/russia-ukraine-2022/issues/ceasefire",
                 "/negotiations/russia-ukraine-2022/issues/ceasefire/history",
                 "/negotiations/russia-ukraine-2022/timeline"):
        first = await client.get(path, params={"consistency_token": token}, headers=keys.headers("reader"))
        assert first.status_code == 200, (path, first.text)
        tag = first.headers["etag"]
        again = await client.get(path, headers=keys.headers("reader", **{"If-None-Match": tag}))
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag, path
        weak = await client.get(path, headers=keys.headers("reader", **{"If-None-Match": f'"other", W/{tag}'}))
        assert weak.status_code == 304
    # A write changes the negotiation's ETag.
    before = (await client.get("/negotiations/russia-ukraine-2022", headers=keys.headers("reader"))).headers["etag"]
    token = (await api.record("russia-ukraine-2022", {"type": "negotiation.suspended", "occurred_on": "2022-03-17"}))[
        "consistency_token"]
    after = await client.get("/negotiations/russia-ukraine-2022", params={"consistency_token": token},
                             headers=keys.headers("reader", **{"If-None-Match": before}))
    assert after.status_code == 200 and after.json()["status"] == "suspended"


async def test_read_refusals(api, client, keys):
    await recorded_example(api)
    cases = [
        ("/negotiations/nope", {}, 404, "unknown-negotiation", None),
        ("/negotiations/russia-ukraine-2022/issues/nope", {}, 404, "unknown-issue", None),
        ("/negotiations/russia-ukraine-2022/issues/nope/history", {}, 404, "unknown-issue", None),
        ("/negotiations/nope/timeline", {}, 404, "unknown-negotiation", None),
        ("/negotiations", {"cursor": "garbage"}, 400, "invalid-parameter", "cursor"),
        ("/negotiations", {"status": "asleep"}, 400, "invalid-parameter", "status"),
        ("/negotiations", {"limit": "0"}, 400, "invalid-parameter", "limit"),
        ("/negotiations/russia-ukraine-2022/timeline", {"cursor": "x"}, 400, "invalid-parameter", "cursor"),
        ("/negotiations/russia-ukraine-2022", {"as_of": "last tuesday"}, 422, "invalid-date", "as_of"),
        ("/negotiations/russia-ukraine-2022/issues", {"known_at": "2022-13-01"}, 422, "invalid-date", "known_at"),
        ("/negotiations/russia-ukraine-2022", {"as_of": "2022-03-01T10:00:00"}, 422, "invalid-date", "as_of"),
        ("/negotiations/russia-ukraine-2022", {"consistency_token": "abc"}, 400, "invalid-parameter",
         "consistency_token"),
        ("/negotiations/russia-ukraine-2022", {"as_of": "2022-01-01"}, 404, "unknown-negotiation", None),
    ]
    for path, params, status, slug, parameter in cases:
        response = await client.get(path, params=params, headers=keys.headers("reader"))
        assert response.status_code == status, (path, params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["type"] == f"urn:parley:problem:{slug}", (path, body)
        if parameter:
            assert [e["parameter"] for e in body["errors"]] == [parameter], body


async def test_a_token_the_read_models_cannot_reach_is_a_503(api, client, keys, monkeypatch):
    from service.projection.watch import ProjectionWatch

    token = (await api.open())["consistency_token"]

    async def never(self, checkpoint, timeout=5.0):
        return False

    monkeypatch.setattr(ProjectionWatch, "wait_for", never)
    response = await client.get("/negotiations/russia-ukraine-2022", params={"consistency_token": token},
                                headers=keys.headers("reader"))
    assert response.status_code == 503
    assert response.json()["type"] == "urn:parley:problem:consistency-timeout"
    assert response.headers["retry-after"] == "1"
    # A token that names no write could only ever time out: refused at once.
    response = await client.get("/negotiations/russia-ukraine-2022", params={"consistency_token": "99999999.1"},
                                headers=keys.headers("reader"))
    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == "consistency_token"


async def test_forged_cursors_with_out_of_range_numbers_are_400(api, client, keys):
    # Cursors are opaque but not signed: a client can forge one. Numbers no column
    # can hold, or digits int() refuses, are a client's mistake (400), never a 500.
    from projections import cursors

    await recorded_example(api)
    history = "/negotiations/russia-ukraine-2022/issues/humanitarian-corridors/history"
    timeline = "/negotiations/russia-ukraine-2022/timeline"
    cases = [
        (history, cursors.encode("history.v1", "99999999999")),
        (history, cursors.encode("history.v1", "2147483647")),
        (history, cursors.encode("history.v1", "\u00b2")),
        ("/negotiations", cursors.encode("negotiations.v1", "99999999999999999999")),
        ("/negotiations", cursors.encode("negotiations.v1", "\u00b2")),
        (timeline, cursors.encode("timeline.v1", "2022-03-01T00:00:00+00:00", "99999", "1")),
        (timeline, cursors.encode("timeline.v1", "2022-03-01T00:00:00+00:00", "0", "99999999999999999999")),
    ]
    for path, cursor in cases:
        response = await client.get(path, params={"cursor": cursor}, headers=keys.headers("reader"))
        assert response.status_code == 400, (path, cursor, response.text)
        assert response.json()["type"].endswith("invalid-parameter"), response.text
