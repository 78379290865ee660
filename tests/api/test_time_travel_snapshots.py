"""Time travel from snapshots (issue 12 item 4): an issue `as_of` a world time
is answered from the issue projection's snapshots -- the metric
parley_time_travel_issue_views_total{source} says which -- and is byte for
byte the fold of the log, which the same read with a `known_at` after every
record still computes. Late facts and retractions rewrite or invalidate the
snapshots; an invalidated one is answered from the log, equal all the same."""

from __future__ import annotations

import datetime as dt

from tests.api.test_metrics import samples, scrape

BASE = "/negotiations/russia-ukraine-2022"
ISSUE = f"{BASE}/issues/grain"
# After every record: this read is always folded from the log.
EVERYTHING_RECORDED = "9999-12-30"


def day(n: int) -> str:
    return (dt.date(2022, 3, 1) + dt.timedelta(days=n)).isoformat()


def stated(n: int, on: str) -> dict:
    return {"type": "position.stated", "occurred_on": on, "issue": "grain", "party": ["RU", "UA"][n % 2],
            "stance": ["demands", "rejects", "accepts"][n % 3], "summary": f"statement {n}"}  # fmt: skip


async def served(client, keys) -> dict[str, float]:
    text = await scrape(client, keys)
    return {labels["source"]: value for name, labels, value in samples(text)
            if name == "parley_time_travel_issue_views_total"}  # fmt: skip


async def read(client, keys, path: str, **params: str) -> tuple[int, bytes]:
    response = await client.get(path, params=params, headers=keys.headers("reader"))
    return response.status_code, response.content


async def compare(client, keys, as_of: str, path: str = ISSUE) -> str:
    """The snapshot read equals the log fold; returns where the first came from."""
    before = await served(client, keys)
    got = await read(client, keys, path, as_of=as_of)
    middle = await served(client, keys)
    folded = await read(client, keys, path, as_of=as_of, known_at=EVERYTHING_RECORDED)
    after = await served(client, keys)
    assert after.get("log", 0) > middle.get("log", 0)  # the second read folded the log
    assert got == folded, (as_of, got, folded)
    snapshot = middle.get("snapshot", 0) - before.get("snapshot", 0)
    log = middle.get("log", 0) - before.get("log", 0)
    assert (snapshot > 0) != (log > 0), (before, middle)
    return "snapshot" if snapshot else "log"


async def caught_up(api, result: dict) -> None:
    await api.get(ISSUE, consistency_token=result["consistency_token"])


async def test_an_as_of_read_of_a_long_issue_is_served_from_the_snapshot(api, client, keys):
    await api.open()
    await api.record("russia-ukraine-2022", {"type": "issue.raised", "occurred_on": day(0), "issue": "grain",
                                             "title": "Grain exports", "category": "humanitarian"})  # fmt: skip
    last = None
    for n in range(60):  # days out of order: 0, 7, 14, 1, 8, ... (late facts all along)
        last = await api.record("russia-ukraine-2022", stated(n, day((n * 7) % 20)))
    await caught_up(api, last)
    for as_of in [day(0), day(3), day(9), day(19), day(40), f"{day(5)}T12:00:00+02:00"]:
        assert await compare(client, keys, as_of) == "snapshot", as_of
    # Before the issue (and before the negotiation): the same 404 either way.
    assert (await read(client, keys, ISSUE, as_of="2022-02-28"))[0] == 404
    assert await compare(client, keys, "2022-02-28") == "snapshot"
    # The list of issues in the past too.
    assert await compare(client, keys, day(9), f"{BASE}/issues") == "snapshot"


async def test_late_facts_and_retractions_rewrite_or_invalidate_the_snapshots(api, client, keys):
    await api.open()
    await api.record("russia-ukraine-2022", {"type": "issue.raised", "occurred_on": day(0), "issue": "grain",
                                             "title": "Grain exports", "category": "humanitarian"})  # fmt: skip
    for n in range(1, 40):  # 40 world times: more than the 32 kept live below the newest
        last = await api.record("russia-ukraine-2022", stated(n, day(n)))
    await caught_up(api, last)
    assert await compare(client, keys, day(3)) == "snapshot"

    # A late fact within the live folds: the rows after it are rewritten, still snapshots.
    late = await api.record("russia-ukraine-2022", stated(100, day(30)))
    await caught_up(api, late)
    for n in (29, 30, 35, 39):
        assert await compare(client, keys, day(n)) == "snapshot", n
    assert await compare(client, keys, day(3)) == "snapshot"

    # A late fact further back: the older rows after it are stale and read from the log.
    early = await api.record("russia-ukraine-2022", stated(101, f"{day(2)}T06:00:00+00:00"))
    await caught_up(api, early)
    assert await compare(client, keys, day(1)) == "snapshot"  # before it: untouched
    assert await compare(client, keys, day(2)) == "log"
    assert await compare(client, keys, day(4)) == "log"
    assert await compare(client, keys, day(38)) == "snapshot"
    assert await compare(client, keys, day(39)) == "snapshot"

    # Retracting it and disputing a recent fact: equal to the fold at every as_of.
    retracted = await api.record("russia-ukraine-2022", {"type": "record.retracted", "occurred_on": day(45),
                                                         "event_id": early["events"][0]["id"], "reason": "misdated"})  # fmt: skip
    await caught_up(api, retracted)
    disputed = await api.record("russia-ukraine-2022", {"type": "claim.disputed", "occurred_on": day(46),
                                                        "event_id": late["events"][0]["id"], "by": "UA",
                                                        "summary": "never said"})  # fmt: skip
    await caught_up(api, disputed)
    sources = {n: await compare(client, keys, day(n)) for n in (0, 1, 2, 5, 29, 30, 31, 39, 60)}
    assert sources[0] == sources[1] == "snapshot" and sources[5] == "log"
    assert sources[30] == sources[39] == sources[60] == "snapshot"
