"""Issue-level commands: raising, links, positions, proposals, agreements."""

import pytest

from domain import errors
from tests.unit.gwt import cmd, given

RAISE_NS = cmd("issue.raised", issue="neutral-status", title="Neutral status", category="political_status")
RAISE_SG = cmd("issue.raised", issue="security-guarantees", title="Security guarantees", category="security_guarantees")
NS = "neutral-status"


def made(pid="p1", by="RU", to=("UA",), **kw):
    return cmd("proposal.made", issue=NS, proposal_id=pid, by=by, to=list(to), summary=f"proposal {pid}", **kw)


def answer(kind, pid="p1", by="UA", **kw):
    return cmd(f"proposal.{kind}", issue=NS, proposal_id=pid, by=by, **kw)


class TestRaising:
    def test_raised(self):
        w = given()
        w.then(RAISE_NS, "issue.raised")
        v = w.issue(NS)
        assert (v.key, v.title, v.category, v.status, v.version) == (NS, "Neutral status", "political_status", "raised", 1)

    def test_refused(self):
        given(RAISE_NS).refuses(RAISE_NS, errors.IssueAlreadyRaised, "/issue")
        given().refuses({**RAISE_NS, "raised_by": "FR"}, errors.UnknownParty, "/raised_by")
        given().refuses(cmd("position.stated", issue="nope", party="RU", stance="demands", summary="s"), errors.UnknownIssue, "/issue")

    def test_default_issues_are_raised_on_first_use_only(self):
        w = given()
        events = w.then(cmd("statement.made", speaker="x", issue="ceasefire", summary="s"), "issue.raised", "statement.made")
        assert events[0].data.category == "ceasefire" and events[0].issue_key == "ceasefire"
        w.then(cmd("ceasefire.proposed", by="RU", scope="general", ceasefire_id="c1"), "ceasefire.proposed")
        w.then(cmd("corridor.proposed", by="RU", **{"from": "Kyiv"}, to="Gomel"), "issue.raised", "corridor.proposed")
        assert w.issue("humanitarian-corridors").category == "humanitarian"

    def test_a_default_issue_may_be_raised_explicitly_with_its_own_title(self):
        w = given()
        w.then(cmd("issue.raised", issue="ceasefire", title="General ceasefire", category="ceasefire"), "issue.raised")
        assert w.issue("ceasefire").title == "General ceasefire"


class TestLinksAndDiscussion:
    def test_linked(self):
        w = given(RAISE_NS, RAISE_SG)
        w.then(cmd("issues.linked", issue=NS, related_issue="security-guarantees", relation="conditional_on"), "issues.linked")
        assert [(l.issue, l.relation) for l in w.issue(NS).linked] == [("security-guarantees", "conditional_on")]
        # changing the relation replaces it
        w.then(cmd("issues.linked", issue=NS, related_issue="security-guarantees", relation="bundled_with"), "issues.linked")
        assert [(l.issue, l.relation) for l in w.issue(NS).linked] == [("security-guarantees", "bundled_with")]

    def test_link_refused(self):
        w = given(RAISE_NS, RAISE_SG, cmd("issues.linked", issue=NS, related_issue="security-guarantees", relation="conditional_on"))
        w.refuses(cmd("issues.linked", issue=NS, related_issue=NS, relation="bundled_with"), errors.SelfLink, "/related_issue")
        w.refuses(cmd("issues.linked", issue=NS, related_issue="nope", relation="bundled_with"), errors.UnknownIssue, "/related_issue")
        w.refuses(cmd("issues.linked", issue=NS, related_issue="security-guarantees", relation="conditional_on"), errors.LinkExists, "/relation")

    def test_discussed(self):
        w = given(RAISE_NS, cmd("round.held", round_id="r1", venue="Minsk", level="delegation"))
        w.then(cmd("issue.discussed", issue=NS, round_id="r1", summary="seriously discussed"), "issue.discussed")
        assert w.issue(NS).status == "under_discussion"
        w.refuses(cmd("issue.discussed", issue=NS, round_id="r9"), errors.UnknownRound, "/round_id")


class TestPositions:
    def test_latest_position_in_world_time_wins(self):
        w = given(RAISE_NS)
        w.then(cmd("position.stated", "2022-03-10", issue=NS, party="UA", stance="open_to", summary="later"), "position.stated")
        w.then(cmd("position.stated", "2022-03-01", issue=NS, party="UA", stance="rejects", summary="earlier, reported late"), "position.stated")
        w.then(cmd("position.stated", "2022-03-02", issue=NS, party="RU", stance="demands", summary="ru", conditions=["x"]), "position.stated")
        v = w.issue(NS)
        assert list(v.positions) == ["RU", "UA"]
        assert (v.positions["UA"].stance, v.positions["UA"].summary) == ("open_to", "later")
        assert v.positions["RU"].conditions == ["x"]
        assert v.status == "under_discussion"

    def test_party_must_be_known(self):
        given(RAISE_NS).refuses(cmd("position.stated", issue=NS, party="FR", stance="demands", summary="s"), errors.UnknownParty, "/party")


class TestProposals:
    def test_made_awaits_its_addressees(self):
        w = given(RAISE_NS)
        w.then(made(to=("UA", "TR")), "proposal.made")
        [p] = w.issue(NS).proposals
        assert (p.status, p.awaiting) == ("open", ["UA", "TR"])
        w.then(answer("accepted", by="UA"), "proposal.accepted")
        [p] = w.issue(NS).proposals
        assert (p.status, p.awaiting, p.accepted_by) == ("open", ["TR"], ["UA"])
        w.then(answer("accepted", by="TR"), "proposal.accepted")
        [p] = w.issue(NS).proposals
        assert (p.status, p.awaiting) == ("accepted", [])
        assert w.issue(NS).status == "agreed_in_principle"

    def test_unaddressed_proposal_is_accepted_by_any_other_party(self):
        w = given(RAISE_NS, made(to=()))
        w.then(answer("accepted", by="TR"), "proposal.accepted")
        assert w.issue(NS).proposals[0].status == "accepted"

    def test_rejected_then_deadlocked(self):
        w = given(RAISE_NS, made())
        w.then(answer("rejected", reason="unacceptable"), "proposal.rejected")
        p = w.issue(NS).proposals[0]
        assert (p.status, p.awaiting, p.rejected_by) == ("rejected", [], ["UA"])
        assert w.issue(NS).status == "deadlocked"

    def test_withdrawn_by_its_proposer(self):
        w = given(RAISE_NS, made())
        w.then(answer("withdrawn", by="RU"), "proposal.withdrawn")
        assert w.issue(NS).proposals[0].status == "withdrawn"

    def test_countered_awaits_the_original_proposer_by_default(self):
        w = given(RAISE_NS, made())
        [event] = w.then(cmd("proposal.countered", issue=NS, proposal_id="p2", counters="p1", by="UA", summary="counter"), "proposal.countered")
        assert event.data.to == ["RU"]
        p1, p2 = w.issue(NS).proposals
        assert (p1.status, p1.countered_by, p2.counters, p2.awaiting) == ("countered", "p2", "p1", ["RU"])

    def test_proposal_id_generated_when_omitted(self):
        [event] = given(RAISE_NS).decide(cmd("proposal.made", issue=NS, by="RU", summary="s"))
        assert event.data.proposal_id.startswith("gen-")

    @pytest.mark.parametrize(
        "command, error, pointer",
        [
            (made(), errors.ItemIdReused, "/proposal_id"),
            (made("p2", by="FR"), errors.UnknownParty, "/by"),
            (made("p2", to=("UA", "FR")), errors.UnknownParty, "/to/1"),
            (made("p2", to=("RU",)), errors.OwnProposal, "/to"),
            (answer("accepted", pid="nope"), errors.UnknownProposal, "/proposal_id"),
            (answer("accepted", by="RU"), errors.OwnProposal, "/by"),
            (answer("rejected", by="RU"), errors.OwnProposal, "/by"),
            (answer("accepted", by="TR"), errors.NotAddressed, "/by"),
            (answer("accepted", by="FR"), errors.UnknownParty, "/by"),
            (answer("withdrawn", by="UA"), errors.NotProposer, "/by"),
            (cmd("proposal.countered", issue=NS, proposal_id="p2", counters="p9", by="UA", summary="s"), errors.UnknownProposal, "/counters"),
            (cmd("proposal.countered", issue=NS, proposal_id="p2", counters="p1", by="RU", summary="s"), errors.OwnProposal, "/by"),
            (cmd("proposal.countered", issue=NS, proposal_id="p1", counters="p1", by="UA", summary="s"), errors.ItemIdReused, "/proposal_id"),
        ],
    )
    def test_refused_on_an_open_proposal(self, command, error, pointer):
        given(RAISE_NS, made()).refuses(command, error, pointer)

    @pytest.mark.parametrize("closing", [answer("withdrawn", by="RU"), answer("rejected"), answer("accepted")])
    @pytest.mark.parametrize("kind", ["accepted", "rejected", "withdrawn"])
    def test_a_closed_proposal_cannot_be_answered(self, closing, kind):
        by = "RU" if kind == "withdrawn" else "UA"
        given(RAISE_NS, made(), closing).refuses(answer(kind, by=by), errors.ProposalClosed, "/proposal_id")

    def test_no_second_answer_from_the_same_party(self):
        w = given(RAISE_NS, made(to=("UA", "TR")), answer("accepted", by="UA"))
        w.refuses(answer("rejected", by="UA"), errors.AlreadyResponded, "/by")


class TestAgreements:
    def reach(self, aid="a1", level="final", **kw):
        return cmd("agreement.reached", issue=NS, agreement_id=aid, level=level, parties=["RU", "UA"], summary="deal", **kw)

    def test_reached_on_an_open_proposal_settles_it(self):
        w = given(RAISE_NS, made())
        w.then(self.reach(proposal_id="p1"), "agreement.reached")
        v = w.issue(NS)
        assert v.proposals[0].status == "accepted" and v.agreements[0].state == "reached"
        assert v.status == "agreed"

    def test_in_principle_then_final_implemented_violated(self):
        w = given(RAISE_NS)
        w.then(self.reach("a1", "in_principle"), "agreement.reached")
        assert w.issue(NS).status == "agreed_in_principle"
        w.refuses(cmd("agreement.implemented", issue=NS, agreement_id="a1"), errors.AgreementNotFinal, "/agreement_id")
        w.then(self.reach("a2", "final"), "agreement.reached")
        w.then(cmd("agreement.implemented", issue=NS, agreement_id="a2"), "agreement.implemented")
        assert w.issue(NS).status == "implemented"
        # v2: implementation is recorded again as it moves (v1 refused a second report).
        w.then(cmd("agreement.implemented", issue=NS, agreement_id="a2", extent="intermediate"), "agreement.implemented")
        assert w.issue(NS).status == "implementing"
        w.then(cmd("agreement.violated", issue=NS, agreement_id="a2", alleged_by="UA", against=["RU"]), "agreement.violated")
        v = w.issue(NS)
        assert (v.status, v.agreements[1].state, v.agreements[1].violations) == ("violated", "violated", 1)

    def test_a_violation_outranks_another_agreements_implementation(self):
        """First matching rule wins: violated comes before implemented, whichever came last."""
        w = given(RAISE_NS)
        w.then(self.reach("a1", "final"), "agreement.reached")
        w.then(self.reach("a2", "final"), "agreement.reached")
        w.then(cmd("agreement.violated", issue=NS, agreement_id="a1", alleged_by="UA", against=["RU"]), "agreement.violated")
        w.then(cmd("agreement.implemented", issue=NS, agreement_id="a2"), "agreement.implemented")
        v = w.issue(NS)
        assert [a.state for a in v.agreements] == ["violated", "implemented"]
        assert v.status == "violated"

    @pytest.mark.parametrize(
        "command, error, pointer",
        [
            (cmd("agreement.reached", issue=NS, agreement_id="p1", level="final", parties=["RU"], summary="s"), errors.ItemIdReused, "/agreement_id"),
            (cmd("agreement.reached", issue=NS, level="final", parties=["RU", "FR"], summary="s"), errors.UnknownParty, "/parties/1"),
            (cmd("agreement.reached", issue=NS, level="final", parties=["RU"], summary="s", proposal_id="p9"), errors.UnknownProposal, "/proposal_id"),
            (cmd("agreement.implemented", issue=NS, agreement_id="a9"), errors.UnknownAgreement, "/agreement_id"),
            (cmd("agreement.violated", issue=NS, agreement_id="a9", alleged_by="UA"), errors.UnknownAgreement, "/agreement_id"),
        ],
    )
    def test_refused(self, command, error, pointer):
        given(RAISE_NS, made()).refuses(command, error, pointer)

    def test_not_on_a_withdrawn_proposal(self):
        w = given(RAISE_NS, made(), answer("withdrawn", by="RU"))
        w.refuses(self.reach(proposal_id="p1"), errors.ProposalClosed, "/proposal_id")


class TestDropping:
    def test_dropped_and_reopened(self):
        w = given(RAISE_NS)
        w.then(cmd("issue.dropped", issue=NS, reason="off the table"), "issue.dropped")
        assert w.issue(NS).status == "dropped"
        w.refuses(cmd("issue.dropped", issue=NS), errors.IssueDropped, "/issue")
        w.refuses(made(occurred_on="2022-03-11"), errors.IssueDropped, "/issue")
        w.then(made(occurred_on="2022-03-09"), "proposal.made")  # happened before the drop
        w.then(cmd("issue.reopened", "2022-03-12", issue=NS), "issue.reopened")
        assert w.issue(NS).status == "proposal_on_table"
        w.refuses(cmd("issue.reopened", issue=NS), errors.IssueNotDropped, "/issue")
