"""timeline: given recorded events, then one line per fact in world-time order."""

from __future__ import annotations

from domain import world_time
from projections import timeline
from tests.integration.projections.conftest import record_example


async def _all(pool, negotiation_id, limit=5):
    items, cursor = [], None
    while True:
        page = await timeline.fetch(pool, negotiation_id, cursor, limit=limit)
        items += page.items
        if (cursor := page.next) is None:
            return items


async def test_every_fact_has_one_line_in_world_time_order(pool, store, recorder, project):
    negotiation_id = await record_example(recorder)
    await project()

    entries = await _all(pool, negotiation_id)
    events = await store.read_log(negotiation_id=negotiation_id, limit=10_000)
    assert sorted(e.event_id for e in entries) == sorted(e.id for e in events)
    keys = [(world_time.sort_key(e.occurred_on), e.position) for e in entries]
    assert keys == sorted(keys)
    first = entries[0]
    assert first.type == "negotiation.opened"
    assert "Russia" in first.line and "Ukraine" in first.line  # names, not codes
    corridor = next(e for e in entries if e.type == "corridor.rejected")
    assert corridor.issue == "humanitarian-corridors"
    assert corridor.stream_type == "issue"
    assert all(e.line for e in entries)
    assert not any(e.retracted or e.disputed for e in entries)


async def test_corrections_flag_the_fact_they_correct(pool, recorder, project):
    negotiation_id = await recorder.open(
        {"title": "Talks", "parties": [{"code": "A", "name": "Aland"}, {"code": "B", "name": "Bland"}],
         "occurred_on": "2022-01-01"}
    )
    made = await recorder.record(negotiation_id, {"type": "ceasefire.agreed", "occurred_on": "2022-01-02",
                                                  "ceasefire_id": "x", "scope": "general", "parties": ["A", "B"]})
    ceasefire = made.events[-1].id
    dispute = await recorder.record(negotiation_id, {"type": "claim.disputed", "occurred_on": "2022-01-03",
                                                     "event_id": str(ceasefire), "by": "B", "summary": "never agreed"})
    statement = await recorder.record(negotiation_id, {"type": "statement.made", "occurred_on": "2022-01-01",
                                                       "speaker": "Someone", "party": "A", "summary": "hello"})
    await project()
    entries = {e.event_id: e for e in await _all(pool, negotiation_id)}
    assert entries[ceasefire].disputed and not entries[ceasefire].retracted
    assert entries[ceasefire].issue == "ceasefire"
    assert entries[dispute.events[0].id].issue == "ceasefire"  # found though the dispute names no issue
    # A statement dated the first day sorts with that day, before later facts.
    order = [e.event_id for e in await _all(pool, negotiation_id)]
    assert order.index(statement.events[0].id) < order.index(ceasefire)

    await recorder.record(negotiation_id, {"type": "record.retracted", "occurred_on": "2022-01-04",
                                           "event_id": str(dispute.events[0].id), "reason": "withdrawn"})
    await recorder.record(negotiation_id, {"type": "record.retracted", "occurred_on": "2022-01-04",
                                           "event_id": str(statement.events[0].id), "reason": "misquoted"})
    await project()
    entries = {e.event_id: e for e in await _all(pool, negotiation_id)}
    assert not entries[ceasefire].disputed  # its dispute was retracted
    assert entries[dispute.events[0].id].retracted
    assert entries[statement.events[0].id].retracted
    assert len(entries) == 7  # opened, raised, agreed, disputed, statement, two retractions: all kept
