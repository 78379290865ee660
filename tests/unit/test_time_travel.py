"""select_known: world time (as_of) and record time (known_at)."""

import datetime as dt

import pytest

from domain.status import fold_issue, fold_negotiation, select_known
from tests.unit.gwt import T0, cmd, given

NS = "neutral-status"


def scenario():
    w = given(
        cmd("issue.raised", "2022-03-01", issue=NS, title="Neutral status", category="political_status"),
        cmd("proposal.made", "2022-03-05", issue=NS, proposal_id="p1", by="RU", to=["UA"], summary="s"),
        cmd("proposal.accepted", "2022-03-10T15:00:00+02:00", issue=NS, proposal_id="p1", by="UA", claimed_by=["RU"]),
    )
    accepted = w.last()
    # recorded later, about the acceptance: Ukraine disputes it, then it is retracted
    w.given(cmd("claim.disputed", "2022-03-20", event_id=str(accepted.id), by="UA", summary="never accepted"))
    disputed_at = w.last().recorded_at
    w.given(cmd("record.retracted", "2022-03-21", event_id=str(accepted.id), reason="misreported"))
    return w, accepted, disputed_at


def status(w, **kw):
    return fold_issue(select_known(w.stream(NS), **kw))


def test_as_of_world_time():
    w, _, _ = scenario()
    assert status(w, as_of="2022-03-01").status == "raised"
    assert status(w, as_of="2022-03-05").status == "proposal_on_table"


def test_corrections_act_in_record_time_even_as_of_an_earlier_world_date():
    w, accepted, _ = scenario()
    # As of 11 March in the world, the acceptance had "happened" -- but it has
    # since been retracted, and the view applies what is known now.
    v = status(w, as_of="2022-03-11")
    assert v.status == "proposal_on_table" and v.retracted == [str(accepted.id)]


def test_known_at_shows_the_record_as_it_stood():
    w, accepted, disputed_at = scenario()
    before_corrections = status(w, known_at=disputed_at - dt.timedelta(microseconds=1))
    assert before_corrections.status == "agreed_in_principle" and before_corrections.disputes == []
    disputed_only = status(w, known_at=disputed_at)
    assert disputed_only.status == "agreed_in_principle"
    assert disputed_only.proposals[0].disputed is True
    assert status(w).status == "proposal_on_table"


def test_day_and_instant_boundaries():
    w, _, _ = scenario()
    # accepted at 13:00 UTC on the 10th: as_of the 10th (whole day) includes it
    # and its later corrections; as_of 12:59 UTC includes neither (v2: a
    # correction of a fact outside the window is outside it too).
    assert len(select_known(w.stream(NS), as_of="2022-03-10")) == 5
    assert len(select_known(w.stream(NS), as_of=dt.datetime(2022, 3, 10, 12, 59, tzinfo=dt.timezone.utc))) == 2


def test_known_at_before_anything():
    w, _, _ = scenario()
    assert select_known(w.stream(NS), known_at=T0 - dt.timedelta(days=1)) == []


def test_naive_known_at_is_refused():
    w, _, _ = scenario()
    with pytest.raises(ValueError):
        select_known(w.stream(NS), known_at=dt.datetime(2022, 3, 10))


def test_negotiation_time_travel():
    w = given(cmd("party.joined", "2022-03-10", party={"code": "BY", "name": "Belarus"}, role="host"))
    assert "BY" not in [p.code for p in fold_negotiation(select_known(w.stream(), as_of="2022-03-09")).parties]
    assert "BY" in [p.code for p in fold_negotiation(select_known(w.stream(), as_of="2022-03-10")).parties]
