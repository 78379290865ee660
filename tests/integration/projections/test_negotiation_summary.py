"""negotiation_summary: given recorded events, then these rows and pages."""

from __future__ import annotations

import msgspec
import pytest

from domain.status import fold_negotiation
from projections import negotiation_summary
from projections.cursors import InvalidCursor
from projections.negotiation_summary import NegotiationListItem, NegotiationSummary
from projections.records import recorded_from_stored
from tests.integration.projections.conftest import record_example


async def test_the_example_report_summary_has_parties_rounds_and_issue_counts(pool, store, recorder, project):
    negotiation_id = await record_example(recorder)
    await project()

    raw = await negotiation_summary.fetch(pool, negotiation_id)
    summary = msgspec.json.decode(raw, type=NegotiationSummary)
    assert summary.slug == "russia-ukraine-2022"
    assert summary.status == "active"
    assert [p.code for p in summary.parties] == ["RU", "UA", "BY", "TR"]
    assert [r.round_id for r in summary.rounds] == ["belarus-1", "belarus-2", "belarus-3", "antalya"]
    assert summary.issue_counts == {
        "agreed": 1,
        "partially_agreed": 1,
        "proposal_on_table": 2,
        "raised": 1,
        "under_discussion": 2,
    }
    assert [i.key for i in summary.issues] == sorted(i.key for i in summary.issues)
    # The negotiation part is exactly the domain's fold of its stream.
    records = [recorded_from_stored(e) for e in await store.read_stream(negotiation_id)]
    view = msgspec.json.decode(raw)
    assert (view.pop("issues_total"), view.pop("issues_next")) == (7, None)  # all seven inlined
    del view["issue_counts"], view["issues"]
    assert view.pop("agreements") == []  # the report records no agreement (they come from the issues)
    assert view == msgspec.to_builtins(fold_negotiation(records))

    row = await pool.fetchrow("SELECT * FROM negotiation_summary WHERE negotiation_id = $1", negotiation_id)
    assert row["rounds"] == 4
    assert row["parties"] == ["BY", "RU", "TR", "UA"]
    assert "lineage" not in row  # served by its own paged route (migration 0034)
    assert row["created_position"] == records[0].position
    assert await negotiation_summary.fetch_version(pool, negotiation_id) == records[-1].version


async def test_refs_resolve_by_id_or_slug(pool, recorder, project):
    negotiation_id = await record_example(recorder)
    await project()
    assert await negotiation_summary.resolve_ref(pool, "russia-ukraine-2022") == negotiation_id
    assert await negotiation_summary.resolve_ref(pool, str(negotiation_id)) == negotiation_id
    assert await negotiation_summary.resolve_ref(pool, "nothing-here") is None
    assert await negotiation_summary.resolve_ref(pool, "00000000-0000-0000-0000-000000000000") is None


async def test_the_list_pages_with_an_opaque_cursor_and_filters(pool, recorder, project):
    ids = []
    for i in range(5):
        ids.append(
            await recorder.open(
                {"title": f"Talks {i}", "parties": [{"code": "A", "name": "A"}, {"code": f"X{i % 2}", "name": "X"}],
                 "occurred_on": "2022-01-01"}
            )
        )
    await recorder.record(ids[3], {"type": "negotiation.suspended", "occurred_on": "2022-01-02"})
    await project()

    seen = []
    page = await negotiation_summary.list_negotiations(pool, limit=2)
    while True:
        seen += [msgspec.json.decode(raw, type=NegotiationListItem).id for raw in page.items]
        if page.next is None:
            break
        page = await negotiation_summary.list_negotiations(pool, page.next, limit=2)
    assert seen == [str(i) for i in ids]

    suspended = await negotiation_summary.list_negotiations(pool, status="suspended")
    assert [msgspec.json.decode(raw)["id"] for raw in suspended.items] == [str(ids[3])]
    with_x1 = await negotiation_summary.list_negotiations(pool, party="X1")
    assert [msgspec.json.decode(raw)["id"] for raw in with_x1.items] == [str(ids[1]), str(ids[3])]
    assert with_x1.next is None

    with pytest.raises(InvalidCursor):
        await negotiation_summary.list_negotiations(pool, "garbage!")


async def test_issue_counts_follow_status_changes(pool, recorder, project):
    negotiation_id = await recorder.open(
        {"title": "Talks", "parties": [{"code": "A", "name": "A"}, {"code": "B", "name": "B"}],
         "occurred_on": "2022-01-01"}
    )
    for key in ("one", "two"):
        await recorder.record(negotiation_id, {"type": "issue.raised", "occurred_on": "2022-01-02", "issue": key,
                                               "title": key, "category": "other"})
    await project()
    counts = lambda raw: msgspec.json.decode(raw)["issue_counts"]  # noqa: E731
    assert counts(await negotiation_summary.fetch(pool, negotiation_id)) == {"raised": 2}

    await recorder.record(negotiation_id, {"type": "issue.dropped", "occurred_on": "2022-01-03", "issue": "two"})
    await project()
    assert counts(await negotiation_summary.fetch(pool, negotiation_id)) == {"dropped": 1, "raised": 1}
