"""issue_status: given recorded events, then these rows."""

from __future__ import annotations

import msgspec

from domain.issue import issue_stream_id
from domain.status import IssueView, fold_issue, lineage
from projections import issue_status
from projections.records import recorded_from_stored
from tests.integration.projections.conftest import record_example


async def test_the_example_report_gives_each_issue_the_domain_fold_as_served_json(pool, store, recorder, project):
    negotiation_id = await record_example(recorder)
    await project()

    rows = await pool.fetch("SELECT * FROM issue_status WHERE negotiation_id = $1 ORDER BY key", negotiation_id)
    statuses = {r["key"]: r["status"] for r in rows}
    assert statuses == {
        "ceasefire": "agreed",
        "humanitarian-corridors": "partially_agreed",
        "leaders-meeting": "under_discussion",
        "nato-membership": "raised",
        "neutral-status": "proposal_on_table",
        "security-guarantees": "under_discussion",
        "weapons-in-ukraine": "proposal_on_table",
    }
    for row in rows:
        records = [recorded_from_stored(e) for e in await store.read_stream(row["stream_id"])]
        expected = msgspec.json.encode(fold_issue(records))
        assert bytes(row["view_json"]) == expected
        assert await issue_status.fetch_one(pool, negotiation_id, row["key"]) == expected
        assert row["version"] == records[-1].version
        assert row["updated_position"] == records[-1].position
        assert "lineage" not in row  # served by its own paged route (migration 0034)
        assert msgspec.json.decode(row["view"].encode()) == msgspec.json.decode(expected)

    corridors = next(r for r in rows if r["key"] == "humanitarian-corridors")
    assert corridors["category"] == "humanitarian"
    assert corridors["parties"] == ["RU", "UA"]


async def test_queries_filter_by_status_category_and_party(pool, recorder, project):
    negotiation_id = await record_example(recorder)
    await project()

    def keys(raws: list[msgspec.Raw]) -> list[str]:
        return [msgspec.json.decode(raw, type=IssueView).key for raw in raws]

    assert keys(await issue_status.fetch_for_negotiation(pool, negotiation_id, status="proposal_on_table")) == [
        "neutral-status",
        "weapons-in-ukraine",
    ]
    assert keys(await issue_status.fetch_for_negotiation(pool, negotiation_id, category="security_guarantees")) == [
        "nato-membership",
        "security-guarantees",
    ]
    assert "weapons-in-ukraine" in keys(await issue_status.fetch_for_negotiation(pool, negotiation_id, party="UA"))
    assert len(await issue_status.fetch_for_negotiation(pool, negotiation_id)) == 7
    assert await issue_status.fetch_one(pool, negotiation_id, "no-such-issue") is None


async def test_a_retraction_returns_the_status_to_what_it_was_without_the_retracted_fact(pool, store, recorder, project):
    negotiation_id = await recorder.open(
        {"title": "Talks", "parties": [{"code": "A", "name": "Aland"}, {"code": "B", "name": "Bland"}],
         "occurred_on": "2022-01-01"}
    )
    await recorder.record(negotiation_id, {"type": "issue.raised", "occurred_on": "2022-01-02", "issue": "border",
                                           "title": "Border", "category": "territory"})
    await recorder.record(negotiation_id, {"type": "proposal.made", "occurred_on": "2022-01-03", "issue": "border",
                                           "proposal_id": "line", "by": "A", "to": ["B"], "summary": "a line"})
    await project()
    before = await issue_status.fetch_one(pool, negotiation_id, "border")
    assert msgspec.json.decode(before)["status"] == "proposal_on_table"

    accepted = await recorder.record(negotiation_id, {"type": "proposal.accepted", "occurred_on": "2022-01-04",
                                                      "issue": "border", "proposal_id": "line", "by": "B"})
    await project()
    assert msgspec.json.decode(await issue_status.fetch_one(pool, negotiation_id, "border"))["status"] == (
        "agreed_in_principle"
    )

    retraction = await recorder.record(negotiation_id, {"type": "record.retracted", "occurred_on": "2022-01-05",
                                                        "event_id": str(accepted.events[0].id), "reason": "misreported"})
    await project()
    after = msgspec.json.decode(await issue_status.fetch_one(pool, negotiation_id, "border"))
    assert after["status"] == "proposal_on_table"
    was = msgspec.json.decode(before)
    # The same view as before the accepted fact, except for what records the correction.
    for field in ("status", "positions", "proposals", "agreements", "items", "item_counts", "disputes"):
        assert after[field] == was[field]
    assert after["retracted"] == [str(accepted.events[0].id)]
    row = await pool.fetchrow(
        "SELECT status, version FROM issue_status WHERE stream_id = $1", issue_stream_id(negotiation_id, "border")
    )
    assert row["status"] == "proposal_on_table"
    # The row names its stream and version; the events behind it are that
    # stream's live facts (domain.status.lineage, served paged from the log).
    records = [recorded_from_stored(e) for e in await store.read_stream(issue_stream_id(negotiation_id, "border"))]
    assert row["version"] == records[-1].version
    behind = lineage(records, "issue")
    assert str(accepted.events[0].id) not in behind and str(retraction.events[0].id) in behind
