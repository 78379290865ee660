"""Bounded view sizes (issue 15): GET /negotiations/{ref} inlines at most
INLINE_ISSUES issue briefs, with `issues_total` and `issues_next`, the cursor of
GET /negotiations/{ref}/issues for the rest; the view's size no longer grows with
the number of issues. Now and in the past (`as_of`, `known_at`), alike."""

from __future__ import annotations

from domain.example import OPENED
from projections.negotiation_summary import INLINE_ISSUES

REF = OPENED["slug"]


def raising(keys: list[str], on: str) -> dict:
    return {"commands": [
        {"type": "issue.raised", "occurred_on": on, "issue": key, "title": f"Issue {key}", "category": "other"}
        for key in keys
    ]}


async def raise_all(api, keys: list[str], on: str) -> dict:
    """Raised in batches of at most 100 commands (the batch limit): the last answer."""
    for start in range(0, len(keys), 100):
        answer = await api.record(REF, raising(keys[start:start + 100], on))
    return answer


async def all_issue_keys(api, view: dict, **params: str) -> list[str]:
    """The inlined briefs' keys, then every page from `issues_next`."""
    keys = [issue["key"] for issue in view["issues"]]
    cursor = view["issues_next"]
    while cursor is not None:
        page = await api.get(f"/negotiations/{REF}/issues", cursor=cursor, limit=50, **params)
        keys += [issue["key"] for issue in page["items"]]
        cursor = page["next"]
    return keys


async def test_the_negotiation_view_inlines_a_bounded_number_of_issues_and_points_to_the_rest(api, client, keys):
    await api.open()
    early = [f"issue-{n:03}" for n in range(INLINE_ISSUES + 30)]
    first = await raise_all(api, early, "2022-03-01")
    recorded_between = first["events"][-1]["recorded_at"]
    late = [f"issue-{n:03}" for n in range(INLINE_ISSUES + 30, 2 * INLINE_ISSUES + 40)]
    second = await raise_all(api, late, "2022-03-10")

    response = await client.get(f"/negotiations/{REF}", params={"consistency_token": second["consistency_token"]},
                                headers=keys.headers("reader"))
    assert response.status_code == 200, response.text
    view = response.json()
    total = len(early) + len(late)
    assert view["issues_total"] == total == sum(view["issue_counts"].values())
    assert [i["key"] for i in view["issues"]] == sorted(early + late)[:INLINE_ISSUES]
    assert view["issues_next"] is not None
    assert await all_issue_keys(api, view) == sorted(early + late)  # each once, in key order

    # The size is bounded: 110 more issues than before, hardly a byte more (the
    # counts' digits), where every issue once added its brief.
    before = await client.get(f"/negotiations/{REF}", params={"known_at": recorded_between},
                              headers=keys.headers("reader"))
    assert before.status_code == 200, before.text
    assert before.json()["issues_total"] == len(early)
    assert len(response.content) < len(before.content) + 100, (len(response.content), len(before.content))

    # In the past alike: world time (as_of) and record time (known_at), each
    # with its own rest paged at the same time.
    for params in ({"as_of": "2022-03-05"}, {"known_at": recorded_between}):
        past = await api.get(f"/negotiations/{REF}", **params)
        assert past["issues_total"] == len(early), params
        assert len(past["issues"]) == INLINE_ISSUES and past["issues_next"] is not None, params
        assert await all_issue_keys(api, past, **params) == early, params


async def test_a_negotiation_with_few_issues_inlines_them_all(api):
    await api.open()
    token = (await api.record(REF, raising(["water", "land"], "2022-03-01")))["consistency_token"]
    view = await api.get(f"/negotiations/{REF}", consistency_token=token)
    assert (view["issues_total"], view["issues_next"]) == (2, None)
    assert [i["key"] for i in view["issues"]] == ["land", "water"]
    # The time-travel fold serves the same bytes as the projection.
    assert await api.get(f"/negotiations/{REF}", as_of="2099-12-31") == view
