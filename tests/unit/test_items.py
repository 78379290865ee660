"""Ceasefires and humanitarian corridors: items with a life cycle."""

import pytest

from domain import errors
from tests.unit.gwt import cmd, given

CF = "ceasefire"
HC = "humanitarian-corridors"


def cf(step, cid="c1", **kw):
    return cmd(f"ceasefire.{step}", ceasefire_id=cid, **kw)


def co(step, cid="k1", **kw):
    return cmd(f"corridor.{step}", corridor_id=cid, **kw)


PROPOSE_CF = cf("proposed", by="RU", scope="local", area="Mariupol", starts_at="2022-03-05", ends_at="2022-03-06")
PROPOSE_CO = co("proposed", by="RU", **{"from": "Kharkiv"}, to="Belgorod", window="09:00-21:00")


class TestCeasefires:
    def test_proposed_agreed_violated_ended(self):
        w = given()
        w.then(PROPOSE_CF, "issue.raised", "ceasefire.proposed")
        w.then(cf("agreed", parties=["RU", "UA"]), "ceasefire.agreed")
        [item] = w.issue(CF).items
        assert (item.kind, item.id, item.state, item.by, item.scope, item.area, item.parties) == (
            "ceasefire", "c1", "agreed", "RU", "local", "Mariupol", ["RU", "UA"])
        w.then(cf("violated", alleged_by="UA", against=["RU"]), "ceasefire.violated")
        w.then(cf("violated", alleged_by="RU", against=["UA"]), "ceasefire.violated")
        item = w.issue(CF).items[0]
        assert (item.state, item.violations) == ("violated", 2)
        assert w.issue(CF).status == "violated"
        w.then(cf("ended", reason="collapsed"), "ceasefire.ended")
        item = w.issue(CF).items[0]
        assert (item.state, item.end_reason) == ("ended", "collapsed")

    def test_agreed_without_proposal_introduces_the_item(self):
        w = given()
        w.then(cf("agreed", scope="humanitarian", parties=["RU", "UA"]), "issue.raised", "ceasefire.agreed")
        assert w.issue(CF).items[0].state == "agreed"

    def test_times_are_normalised(self):
        [_, event] = given().decide(cf("proposed", by="RU", scope="local", starts_at="2022-03-05T09:00Z"))
        assert event.data.starts_at == "2022-03-05T09:00:00+00:00"

    @pytest.mark.parametrize(
        "command, error, pointer",
        [
            (cf("proposed", by="RU", scope="local"), errors.ItemIdReused, "/ceasefire_id"),
            (cf("proposed", cid="c2", by="FR", scope="local"), errors.UnknownParty, "/by"),
            (cf("proposed", cid="c2", by="RU", scope="local", starts_at="2022-03-05", ends_at="2022-03-04"), errors.InvalidDateRange, "/ends_at"),
            (cf("proposed", cid="c2", by="RU", scope="local", starts_at="2022-13-05"), errors.InvalidDate, "/starts_at"),
            (cf("agreed", ends_at="2022-03-04"), errors.InvalidDateRange, "/ends_at"),
            (cf("agreed", cid="c2"), errors.MissingDetail, "/scope"),
            (cf("rejected", by="RU"), errors.OwnProposal, "/by"),
            (cf("rejected", cid="c9", by="UA"), errors.UnknownItem, "/ceasefire_id"),
            (cf("violated", alleged_by="UA"), errors.InvalidTransition, "/ceasefire_id"),
            (cf("ended", cid="c9", reason="expired"), errors.UnknownItem, "/ceasefire_id"),
        ],
    )
    def test_refused_on_a_proposed_ceasefire(self, command, error, pointer):
        given(PROPOSE_CF).refuses(command, error, pointer)

    def test_range_within_one_day_is_fine(self):
        given().then(cf("proposed", by="RU", scope="local", starts_at="2022-03-05T09:00+02:00", ends_at="2022-03-05"), "issue.raised", "ceasefire.proposed")

    def test_ended_is_final(self):
        w = given(PROPOSE_CF, cf("ended", reason="superseded"))
        for step in (cf("agreed"), cf("rejected", by="UA"), cf("violated", alleged_by="UA"), cf("ended", reason="expired")):
            w.refuses(step, errors.InvalidTransition, "/ceasefire_id")

    def test_rejected_may_later_be_agreed(self):
        w = given(PROPOSE_CF, cf("rejected", by="UA"))
        assert w.issue(CF).status == "deadlocked"
        w.then(cf("agreed", parties=["RU", "UA"]), "ceasefire.agreed")
        assert w.issue(CF).status == "agreed"

    def test_a_corridor_id_is_not_a_ceasefire(self):
        w = given(cmd("corridor.proposed", issue=CF, corridor_id="k1", by="RU", **{"from": "A"}, to="B"))
        w.refuses(cf("rejected", cid="k1", by="UA"), errors.UnknownItem, "/ceasefire_id")


class TestCorridors:
    def test_proposed_agreed_opened_violated_closed(self):
        w = given()
        w.then(PROPOSE_CO, "issue.raised", "corridor.proposed")
        item = w.issue(HC).items[0]
        assert (item.from_, item.to, item.window, item.state) == ("Kharkiv", "Belgorod", "09:00-21:00", "proposed")
        w.then(co("agreed", parties=["RU", "UA"], via="Chuhuiv"), "corridor.agreed")
        w.then(co("opened"), "corridor.opened")
        assert w.issue(HC).status == "agreed"
        w.then(co("violated", alleged_by="UA", against=["RU"]), "corridor.violated")
        assert w.issue(HC).status == "violated"
        w.then(co("opened"), "corridor.opened")
        w.then(co("closed", reason="evacuation complete"), "corridor.closed")
        item = w.issue(HC).items[0]
        assert (item.state, item.via, item.agreed) == ("closed", "Chuhuiv", True)

    def test_agreed_without_proposal_needs_from_and_to(self):
        w = given()
        w.refuses(co("agreed", to="Zaporizhzhia"), errors.MissingDetail, "/from")
        w.refuses(co("agreed", **{"from": "Mariupol"}), errors.MissingDetail, "/to")
        w.then(co("agreed", **{"from": "Mariupol"}, to="Zaporizhzhia"), "issue.raised", "corridor.agreed")

    def test_opened_de_facto_without_agreement(self):
        w = given(PROPOSE_CO)
        w.then(co("opened"), "corridor.opened")

    @pytest.mark.parametrize(
        "command, error, pointer",
        [
            (co("rejected", by="RU"), errors.OwnProposal, "/by"),
            (co("violated", alleged_by="UA"), errors.InvalidTransition, "/corridor_id"),
            (co("opened", cid="k9"), errors.UnknownItem, "/corridor_id"),
            (co("closed", cid="k9"), errors.UnknownItem, "/corridor_id"),
            (co("proposed", by="RU", **{"from": "A"}, to="B"), errors.ItemIdReused, "/corridor_id"),
        ],
    )
    def test_refused_on_a_proposed_corridor(self, command, error, pointer):
        given(PROPOSE_CO).refuses(command, error, pointer)

    def test_closed_is_final(self):
        w = given(PROPOSE_CO, co("closed"))
        for step in (co("agreed"), co("opened"), co("rejected", by="UA"), co("closed"), co("violated", alleged_by="UA")):
            w.refuses(step, errors.InvalidTransition, "/corridor_id")
