"""Ceasefires and humanitarian corridors, as decider specifications grouped by
the item's starting state: given these facts, when this command, then exactly
these payloads (or this refusal)."""

import pytest

from domain import errors
from domain import events as e
from tests.unit.spec import at, cmd, given

CF = "ceasefire"
HC = "humanitarian-corridors"
CF_RAISED = e.IssueRaised(issue=CF, title="Ceasefire", category="ceasefire")
HC_RAISED = e.IssueRaised(issue=HC, title="Humanitarian corridors", category="humanitarian")


def cf(step, cid="c1", **kw):
    return cmd(f"ceasefire.{step}", ceasefire_id=cid, **kw)


def co(step, cid="k1", **kw):
    return cmd(f"corridor.{step}", corridor_id=cid, **kw)


CF_PROPOSED = e.CeasefireProposed(
    issue=CF, ceasefire_id="c1", by="RU", scope="local", area="Mariupol", starts_at="2022-03-05", ends_at="2022-03-06"
)
CF_AGREED = e.CeasefireAgreed(issue=CF, ceasefire_id="c1", parties=["RU", "UA"])
CO_PROPOSED = e.CorridorProposed(issue=HC, corridor_id="k1", by="RU", from_="Kharkiv", to="Belgorod", window="09:00-21:00")


class TestNoCeasefireYet:
    def test_the_first_proposal_raises_the_default_issue(self):
        given().when(
            cf("proposed", by="RU", scope="local", area="Mariupol", starts_at="2022-03-05", ends_at="2022-03-06")
        ).then(CF_RAISED, CF_PROPOSED)

    def test_agreed_without_proposal_introduces_the_item(self):
        spec = given().when(cf("agreed", scope="humanitarian", parties=["RU", "UA"])).then(
            CF_RAISED, e.CeasefireAgreed(issue=CF, ceasefire_id="c1", scope="humanitarian", parties=["RU", "UA"])
        )
        assert spec.issue(CF).items[0].state == "agreed"

    def test_times_are_normalised(self):
        given(CF_RAISED).when(cf("proposed", by="RU", scope="local", starts_at="2022-03-05T09:00Z")).then(
            e.CeasefireProposed(issue=CF, ceasefire_id="c1", by="RU", scope="local", starts_at="2022-03-05T09:00:00+00:00")
        )

    def test_a_range_within_one_day_is_fine(self):
        given(CF_RAISED).when(
            cf("proposed", by="RU", scope="local", starts_at="2022-03-05T09:00+02:00", ends_at="2022-03-05")
        ).then(
            e.CeasefireProposed(
                issue=CF, ceasefire_id="c1", by="RU", scope="local", starts_at="2022-03-05T09:00:00+02:00", ends_at="2022-03-05"
            )
        )

    def test_the_id_is_generated_when_omitted(self):
        given(CF_RAISED).when(cmd("ceasefire.proposed", by="RU", scope="general")).then(
            e.CeasefireProposed(issue=CF, ceasefire_id="gen-1", by="RU", scope="general")
        )

    def test_agreeing_an_unknown_ceasefire_needs_its_scope(self):
        given(CF_RAISED).when(cf("agreed", cid="c2")).refused(errors.MissingDetail, "/scope")


class TestProposedCeasefire:
    GIVEN = (CF_RAISED, CF_PROPOSED)

    def test_agreed(self):
        spec = given(*self.GIVEN).when(cf("agreed", parties=["RU", "UA"])).then(CF_AGREED)
        [item] = spec.issue(CF).items
        assert (item.kind, item.id, item.state, item.by, item.scope, item.area, item.parties) == (
            "ceasefire", "c1", "agreed", "RU", "local", "Mariupol", ["RU", "UA"])

    def test_rejected_by_the_other_side(self):
        given(*self.GIVEN).when(cf("rejected", by="UA", reason="a trap")).then(
            e.CeasefireRejected(issue=CF, ceasefire_id="c1", by="UA", reason="a trap")
        )

    def test_ended_before_agreement(self):
        given(*self.GIVEN).when(cf("ended", reason="superseded")).then(
            e.CeasefireEnded(issue=CF, ceasefire_id="c1", reason="superseded")
        )

    @pytest.mark.parametrize(
        "command, error, pointer",
        [
            (cf("proposed", by="RU", scope="local"), errors.ItemIdReused, "/ceasefire_id"),
            (cf("proposed", cid="c2", by="FR", scope="local"), errors.UnknownParty, "/by"),
            (cf("proposed", cid="c2", by="RU", scope="local", starts_at="2022-03-05", ends_at="2022-03-04"), errors.InvalidDateRange, "/ends_at"),
            (cf("proposed", cid="c2", by="RU", scope="local", starts_at="2022-13-05"), errors.InvalidDate, "/starts_at"),
            (cf("agreed", ends_at="2022-03-04"), errors.InvalidDateRange, "/ends_at"),
            (cf("rejected", by="RU"), errors.OwnProposal, "/by"),
            (cf("rejected", cid="c9", by="UA"), errors.UnknownItem, "/ceasefire_id"),
            (cf("violated", alleged_by="UA"), errors.InvalidTransition, "/ceasefire_id"),
            (cf("ended", cid="c9", reason="expired"), errors.UnknownItem, "/ceasefire_id"),
        ],
    )
    def test_refused(self, command, error, pointer):
        given(*self.GIVEN).when(command).refused(error, pointer)

    def test_a_corridor_id_is_not_a_ceasefire(self):
        given(CF_RAISED, e.CorridorProposed(issue=CF, corridor_id="k1", by="RU", from_="A", to="B")).when(
            cf("rejected", cid="k1", by="UA")
        ).refused(errors.UnknownItem, "/ceasefire_id")


class TestAgreedCeasefire:
    GIVEN = (CF_RAISED, CF_PROPOSED, CF_AGREED)

    def test_violations_are_counted_and_make_the_issue_violated(self):
        spec = given(*self.GIVEN).when(cf("violated", alleged_by="UA", against=["RU"])).then(
            e.CeasefireViolated(issue=CF, ceasefire_id="c1", alleged_by="UA", against=["RU"])
        )
        spec.when(cf("violated", alleged_by="RU", against=["UA"])).then(
            e.CeasefireViolated(issue=CF, ceasefire_id="c1", alleged_by="RU", against=["UA"])
        )
        item = spec.issue(CF).items[0]
        assert (item.state, item.violations, spec.issue(CF).status) == ("violated", 2, "violated")

    def test_ended(self):
        spec = given(*self.GIVEN).when(cf("ended", reason="collapsed")).then(
            e.CeasefireEnded(issue=CF, ceasefire_id="c1", reason="collapsed")
        )
        item = spec.issue(CF).items[0]
        assert (item.state, item.end_reason) == ("ended", "collapsed")

    def test_cannot_be_agreed_or_rejected_again(self):
        given(*self.GIVEN).when(cf("agreed")).refused(errors.InvalidTransition, "/ceasefire_id")
        given(*self.GIVEN).when(cf("rejected", by="UA")).refused(errors.InvalidTransition, "/ceasefire_id")


class TestRejectedCeasefire:
    GIVEN = (CF_RAISED, CF_PROPOSED, e.CeasefireRejected(issue=CF, ceasefire_id="c1", by="UA"))

    def test_may_later_be_agreed(self):
        assert given(*self.GIVEN).issue(CF).status == "deadlocked"
        spec = given(*self.GIVEN).when(cf("agreed", parties=["RU", "UA"])).then(CF_AGREED)
        assert spec.issue(CF).status == "agreed"


class TestEndedCeasefire:
    GIVEN = (CF_RAISED, CF_PROPOSED, e.CeasefireEnded(issue=CF, ceasefire_id="c1", reason="superseded"))

    @pytest.mark.parametrize(
        "step", [cf("agreed"), cf("rejected", by="UA"), cf("violated", alleged_by="UA"), cf("ended", reason="expired")]
    )
    def test_is_final(self, step):
        given(*self.GIVEN).when(step).refused(errors.InvalidTransition, "/ceasefire_id")


class TestNoCorridorYet:
    def test_agreed_without_proposal_needs_from_and_to(self):
        given(HC_RAISED).when(co("agreed", to="Zaporizhzhia")).refused(errors.MissingDetail, "/from")
        given(HC_RAISED).when(co("agreed", from_="Mariupol")).refused(errors.MissingDetail, "/to")
        given().when(co("agreed", from_="Mariupol", to="Zaporizhzhia")).then(
            HC_RAISED, e.CorridorAgreed(issue=HC, corridor_id="k1", from_="Mariupol", to="Zaporizhzhia")
        )


class TestProposedCorridor:
    GIVEN = (HC_RAISED, CO_PROPOSED)

    def test_the_whole_life_of_a_corridor(self):
        spec = given(*self.GIVEN)
        item = spec.issue(HC).items[0]
        assert (item.from_, item.to, item.window, item.state) == ("Kharkiv", "Belgorod", "09:00-21:00", "proposed")
        spec.when(co("agreed", parties=["RU", "UA"], via="Chuhuiv")).then(
            e.CorridorAgreed(issue=HC, corridor_id="k1", parties=["RU", "UA"], via="Chuhuiv")
        )
        spec.when(co("opened")).then(e.CorridorOpened(issue=HC, corridor_id="k1"))
        assert spec.issue(HC).status == "agreed"
        spec.when(co("violated", alleged_by="UA", against=["RU"])).then(
            e.CorridorViolated(issue=HC, corridor_id="k1", alleged_by="UA", against=["RU"])
        )
        assert spec.issue(HC).status == "violated"
        spec.when(co("opened")).then(e.CorridorOpened(issue=HC, corridor_id="k1"))
        spec.when(co("closed", reason="evacuation complete")).then(
            e.CorridorClosed(issue=HC, corridor_id="k1", reason="evacuation complete")
        )
        item = spec.issue(HC).items[0]
        assert (item.state, item.via, item.agreed) == ("closed", "Chuhuiv", True)

    def test_opened_de_facto_without_agreement(self):
        given(*self.GIVEN).when(co("opened", summary="buses left at 09:00")).then(
            e.CorridorOpened(issue=HC, corridor_id="k1", summary="buses left at 09:00")
        )

    @pytest.mark.parametrize(
        "command, error, pointer",
        [
            (co("rejected", by="RU"), errors.OwnProposal, "/by"),
            (co("violated", alleged_by="UA"), errors.InvalidTransition, "/corridor_id"),
            (co("opened", cid="k9"), errors.UnknownItem, "/corridor_id"),
            (co("closed", cid="k9"), errors.UnknownItem, "/corridor_id"),
            (co("proposed", by="RU", from_="A", to="B"), errors.ItemIdReused, "/corridor_id"),
        ],
    )
    def test_refused(self, command, error, pointer):
        given(*self.GIVEN).when(command).refused(error, pointer)


class TestClosedCorridor:
    GIVEN = (HC_RAISED, CO_PROPOSED, at(e.CorridorClosed(issue=HC, corridor_id="k1")))

    @pytest.mark.parametrize(
        "step", [co("agreed"), co("opened"), co("rejected", by="UA"), co("closed"), co("violated", alleged_by="UA")]
    )
    def test_is_final(self, step):
        given(*self.GIVEN).when(step).refused(errors.InvalidTransition, "/corridor_id")
