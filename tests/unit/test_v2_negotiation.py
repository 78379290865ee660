"""DESIGN v2 at the table: life after the conclusion, several roles per party,
rounds spanning days, unilateral ceasefires -- as decider specifications."""

import pytest

from domain import errors
from domain import events as e
from tests.unit.spec import at, cmd, given

LAND = e.IssueRaised(issue="land", title="Rural reform", category="land")
DEAL = e.AgreementReached(issue="land", agreement_id="a1", level="final", parties=["RU", "UA"], summary="deal")
CONCLUDED = at(e.NegotiationConcluded(outcome="signed"), "2016-09-26")
AFTER = "2016-10-02"


class TestConcluded:
    @pytest.mark.parametrize(
        "command, payload",
        [
            (cmd("agreement.rejected", AFTER, agreement_id="a1", by="UA", method="referendum"),
             e.AgreementRejected(issue="land", agreement_id="a1", by="UA", method="referendum")),
            (cmd("agreement.implemented", AFTER, agreement_id="a1", extent="minimal"),
             e.AgreementImplemented(issue="land", agreement_id="a1", extent="minimal")),
            (cmd("agreement.violated", AFTER, agreement_id="a1", alleged_by="UA"),
             e.AgreementViolated(issue="land", agreement_id="a1", alleged_by="UA")),
            (cmd("agreement.withdrawn", AFTER, agreement_id="a1", by="RU"),
             e.AgreementWithdrawn(issue="land", agreement_id="a1", by="RU")),
            (cmd("statement.made", AFTER, speaker="Santos", summary="we will keep trying"),
             e.StatementMade(speaker="Santos", summary="we will keep trying")),
        ],
    )  # fmt: skip
    def test_what_happens_to_its_agreements_is_accepted(self, command, payload):
        given(LAND, DEAL, CONCLUDED).when(command).then(at(payload, AFTER))

    def test_ceasefire_violations_and_ends_are_accepted(self):
        cf = e.CeasefireAgreed(issue="ceasefire", ceasefire_id="c1", parties=["RU", "UA"], scope="general")
        raised = e.IssueRaised(issue="ceasefire", title="Ceasefire", category="ceasefire")
        spec = given(raised, cf, CONCLUDED)
        spec.when(cmd("ceasefire.violated", AFTER, ceasefire_id="c1", alleged_by="UA")).then(
            at(e.CeasefireViolated(issue="ceasefire", ceasefire_id="c1", alleged_by="UA"), AFTER)
        )
        spec.when(cmd("ceasefire.ended", AFTER, ceasefire_id="c1", reason="collapsed")).then(
            at(e.CeasefireEnded(issue="ceasefire", ceasefire_id="c1", reason="collapsed"), AFTER)
        )

    @pytest.mark.parametrize(
        "command",
        [
            cmd("round.held", AFTER, venue="Havana", level="delegation"),
            cmd("proposal.made", AFTER, issue="land", by="RU", summary="s"),
            cmd("position.stated", AFTER, issue="land", party="RU", stance="demands", summary="s"),
            cmd("issue.raised", AFTER, issue="new", title="New", category="other"),
            cmd("party.joined", AFTER, party={"code": "NO", "name": "Norway"}, role="guarantor"),
        ],
    )
    def test_new_negotiating_facts_are_refused_until_reopened(self, command):
        spec = given(LAND, DEAL, CONCLUDED)
        error = spec.when(command).refused(errors.NegotiationConcluded, "/occurred_on")
        assert "negotiation.reopened" in error.detail and command["type"] in error.detail
        spec.when(cmd("negotiation.reopened", "2016-10-03", reason="renegotiation")).then(
            at(e.NegotiationReopened(reason="renegotiation"), "2016-10-03")
        )
        assert spec.view().status == "active"
        spec.decide(command)  # accepted once reopened

    def test_backfill_before_the_conclusion_is_still_accepted(self):
        given(LAND, DEAL, CONCLUDED).when(cmd("position.stated", "2016-09-01", issue="land", party="RU", stance="accepts", summary="s")) \
            .then(at(e.PositionStated(issue="land", party="RU", stance="accepts", summary="s"), "2016-09-01"))

    def test_reopening_needs_a_conclusion_and_a_date_after_it(self):
        given().when(cmd("negotiation.reopened")).refused(errors.NegotiationNotConcluded)
        given(CONCLUDED).when(cmd("negotiation.reopened", "2016-09-01")).refused(errors.InvalidDateRange, "/occurred_on")

    def test_the_view_carries_the_conclusion_and_clears_it_on_reopening(self):
        spec = given(CONCLUDED)
        assert (spec.view().status, spec.view().concluded_on, spec.view().outcome) == ("concluded", "2016-09-26", "signed")
        spec.when(cmd("negotiation.reopened", AFTER)).then(at(e.NegotiationReopened(), AFTER))
        assert (spec.view().status, spec.view().concluded_on) == ("active", None)


NORWAY = e.PartyRef(code="NO", name="Norway")


class TestRoles:
    def test_a_party_takes_a_second_role(self):
        spec = given(e.PartyJoined(party=NORWAY, role="host")).when(
            cmd("party.joined", party={"code": "NO", "name": "Norway"}, role="guarantor")
        ).then(e.PartyJoined(party=NORWAY, role="guarantor"))
        [norway] = [p for p in spec.view().parties if p.code == "NO"]
        assert (norway.role, norway.roles, norway.active) == ("host", ["host", "guarantor"], True)

    def test_the_same_role_twice_is_refused(self):
        given(e.PartyJoined(party=NORWAY, role="host")).when(
            cmd("party.joined", party={"code": "NO", "name": "Norway"}, role="host")
        ).refused(errors.PartyAlreadyJoined, "/party/code")

    def test_leaving_one_role_keeps_the_others(self):
        spec = given(e.PartyJoined(party=NORWAY, role="host"), e.PartyJoined(party=NORWAY, role="guarantor"))
        spec.when(cmd("party.left", party="NO", role="host")).then(e.PartyLeft(party="NO", role="host"))
        [norway] = [p for p in spec.view().parties if p.code == "NO"]
        assert (norway.role, norway.roles, norway.active) == ("guarantor", ["guarantor"], True)

    def test_leaving_a_role_it_does_not_hold_is_refused(self):
        given(e.PartyJoined(party=NORWAY, role="host")).when(cmd("party.left", party="NO", role="mediator")).refused(
            errors.PartyNotActive, "/role"
        )


class TestRounds:
    def test_a_round_spans_days(self):
        spec = given().when(cmd("round.held", "2012-10-18", round_id="oslo", venue="Oslo", level="delegation", ends_on="2012-10-19")) \
            .then(at(e.RoundHeld(round_id="oslo", venue="Oslo", level="delegation", ends_on="2012-10-19"), "2012-10-18"))
        assert spec.view().rounds[0].ends_on == "2012-10-19"

    def test_it_cannot_end_before_it_starts(self):
        given().when(cmd("round.held", "2012-10-18", venue="Oslo", level="delegation", ends_on="2012-10-17")) \
            .refused(errors.InvalidDateRange, "/ends_on")


class TestUnilateralCeasefire:
    RAISED = e.IssueRaised(issue="ceasefire", title="Ceasefire", category="ceasefire")
    DECLARED = e.CeasefireDeclared(issue="ceasefire", ceasefire_id="farc-2015", by="UA", scope="general")

    def test_declared_by_one_party_is_discussion_not_agreement(self):
        spec = given().when(
            cmd("ceasefire.declared", "2015-07-20", ceasefire_id="farc-2015", by="UA", scope="general")
        ).then(self.RAISED, at(self.DECLARED, "2015-07-20"))
        view = spec.issue("ceasefire")
        assert (view.status, view.items[0].state, view.items[0].declared, view.items[0].by) == (
            "under_discussion", "declared", True, "UA"
        )

    def test_then_agreed_by_both(self):
        spec = given(self.RAISED, self.DECLARED).when(
            cmd("ceasefire.agreed", ceasefire_id="farc-2015", parties=["RU", "UA"])
        ).then(e.CeasefireAgreed(issue="ceasefire", ceasefire_id="farc-2015", parties=["RU", "UA"]))
        assert spec.issue("ceasefire").status == "agreed"

    def test_its_violation_makes_the_issue_violated(self):
        spec = given(self.RAISED, self.DECLARED).when(
            cmd("ceasefire.violated", ceasefire_id="farc-2015", alleged_by="RU")
        ).then(e.CeasefireViolated(issue="ceasefire", ceasefire_id="farc-2015", alleged_by="RU"))
        assert spec.issue("ceasefire").status == "violated"

    def test_it_cannot_be_rejected(self):
        given(self.RAISED, self.DECLARED).when(cmd("ceasefire.rejected", ceasefire_id="farc-2015", by="RU")).refused(
            errors.InvalidTransition, "/ceasefire_id"
        )


@pytest.mark.parametrize("category", ["land", "drugs", "victims", "nuclear", "disarmament_reintegration"])
def test_the_added_categories(category):
    given().when(cmd("issue.raised", issue="x", title="X", category=category)).then(
        e.IssueRaised(issue="x", title="X", category=category)
    )
