"""Negotiation and Issue are eventsourcing aggregates evolved by stored records."""

import copy

import pytest
from eventsourcing.domain import Aggregate, OriginatorVersionError

from domain.issue import Issue
from domain.negotiation import Negotiation
from tests.unit.gwt import cmd, given

NS = "neutral-status"


def world():
    return given(
        cmd("issue.raised", issue=NS, title="Neutral status", category="political_status"),
        cmd("proposal.made", issue=NS, proposal_id="p1", by="RU", to=["UA"], summary="s"),
    )


def test_aggregates_built_on_the_library():
    w = world()
    assert isinstance(w.negotiation, Aggregate) and isinstance(w.issues[NS], Aggregate)
    assert w.negotiation.id == w.id and w.negotiation.version == 1
    assert w.issues[NS].version == 2 and w.issues[NS].key == NS


def test_one_library_event_class_carries_every_fact():
    # The meaning of a fact is its payload's fold handler, not a nested class per type.
    w = world()
    issue = Issue.from_events(w.stream(NS))
    assert issue.fold.records == w.stream(NS)
    for aggregate in (Issue, Negotiation):
        event_classes = {name for name, value in vars(aggregate).items() if isinstance(value, type) and issubclass(value, Aggregate.Event)}
        # the library's own Event/Created, redefined per aggregate, and ours: Opened and Fact
        assert event_classes <= {"Event", "Created", "Opened", "Fact"}


def test_rebuilt_from_the_log_equals_the_evolved_state():
    w = world()
    rebuilt = Issue.from_events(w.stream(NS))
    assert rebuilt.fold.view() == w.issues[NS].fold.view()


def test_the_library_refuses_records_out_of_order():
    w = world()
    stream = w.stream(NS)
    issue = Issue.from_events(stream[:1])
    with pytest.raises(OriginatorVersionError):
        issue.apply(stream[1].__class__(**{**{f: getattr(stream[1], f) for f in stream[1].__struct_fields__}, "version": 5}))


def test_streams_must_start_with_their_opening_fact():
    w = world()
    with pytest.raises(ValueError):
        Issue.from_events(w.stream(NS)[1:])
    with pytest.raises(ValueError):
        Negotiation.from_events(w.stream(NS))
    with pytest.raises(ValueError):
        w.negotiation.apply(w.stream(NS)[1])


def test_a_copy_is_independent():
    w = world()
    working = copy.deepcopy(w.issues[NS])
    record = w.decide(cmd("proposal.accepted", issue=NS, proposal_id="p1", by="UA"))
    w._store(record)
    assert working.fold.view().proposals[0].status == "open"
    assert w.issues[NS].fold.view().proposals[0].status == "accepted"
