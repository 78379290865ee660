"""record.retracted removes a fact's effect; claim.disputed flags it."""

import uuid

from domain import errors
from domain.status import lineage
from tests.unit.gwt import cmd, given

NS = "neutral-status"
RAISE_NS = cmd("issue.raised", issue=NS, title="Neutral status", category="political_status")


def made(pid="p1", **kw):
    return cmd("proposal.made", issue=NS, proposal_id=pid, by="RU", to=["UA"], summary="s", **kw)


class TestRetraction:
    def test_removes_the_effect_and_keeps_history(self):
        w = given(RAISE_NS, made(), cmd("proposal.accepted", issue=NS, proposal_id="p1", by="UA"))
        accepted = w.last("proposal.accepted")
        assert w.issue(NS).status == "agreed_in_principle"
        w.then(cmd("record.retracted", "2022-03-17", event_id=str(accepted.id), reason="misreported"), "record.retracted")
        v = w.issue(NS)
        assert v.status == "proposal_on_table"
        assert (v.proposals[0].status, v.proposals[0].awaiting) == ("open", ["UA"])
        assert v.retracted == [str(accepted.id)]
        assert str(accepted.id) not in lineage(w.stream(NS), "issue")
        assert v.events == 4  # history keeps the retracted fact and the retraction
        # the proposal can be answered again
        w.then(cmd("proposal.rejected", issue=NS, proposal_id="p1", by="UA"), "proposal.rejected")

    def test_retracted_proposal_no_longer_exists(self):
        w = given(RAISE_NS, made())
        w.then(cmd("record.retracted", event_id=str(w.last().id), reason="never made"), "record.retracted")
        assert w.issue(NS).proposals == [] and w.issue(NS).status == "raised"
        w.refuses(cmd("proposal.accepted", issue=NS, proposal_id="p1", by="UA"), errors.UnknownProposal, "/proposal_id")
        # and its id may be used again
        w.then(made(), "proposal.made")

    def test_on_the_negotiation_stream(self):
        w = given(cmd("party.joined", party={"code": "BY", "name": "Belarus"}, role="host"))
        event = w.then(cmd("record.retracted", event_id=str(w.last().id), reason="wrong"), "record.retracted")[0]
        assert event.stream == "negotiation"
        assert "BY" not in [p.code for p in w.view().parties]

    def test_blocked_while_later_facts_depend_on_it(self):
        w = given(RAISE_NS, made())
        proposal = w.last()
        w.given(cmd("proposal.rejected", issue=NS, proposal_id="p1", by="UA"))
        err = w.refuses(cmd("record.retracted", event_id=str(proposal.id), reason="r"), errors.RetractionBlocked, "/event_id")
        assert err.extra["dependants"] == [str(w.last().id)]

    def test_refused(self):
        w = given(RAISE_NS, made())
        raised = w.stream(NS)[0]
        w.refuses(cmd("record.retracted", event_id=str(uuid.uuid4()), reason="r"), errors.UnknownEvent, "/event_id")
        w.refuses(cmd("record.retracted", event_id=str(raised.id), reason="r"), errors.NotRetractable, "/event_id")
        w.refuses(cmd("record.retracted", event_id=str(w.stream()[0].id), reason="r"), errors.NotRetractable, "/event_id")
        target = w.last()
        w.given(cmd("record.retracted", event_id=str(target.id), reason="r"))
        w.refuses(cmd("record.retracted", event_id=str(target.id), reason="r"), errors.AlreadyRetracted, "/event_id")
        w.refuses(cmd("record.retracted", event_id=str(w.last().id), reason="r"), errors.NotRetractable, "/event_id")


class TestDispute:
    def test_flags_without_removing(self):
        w = given(RAISE_NS, made(claimed_by=["RU"]))
        target = w.last()
        w.then(cmd("claim.disputed", event_id=str(target.id), by="UA", summary="no such proposal was handed over"), "claim.disputed")
        v = w.issue(NS)
        assert v.status == "proposal_on_table"
        assert v.proposals[0].disputed is True
        assert [(d.event_id, d.by) for d in v.disputes] == [(str(target.id), "UA")]

    def test_flags_items_positions_and_rounds(self):
        w = given(cmd("corridor.agreed", corridor_id="k1", **{"from": "A"}, to="B", claimed_by=["RU"]))
        w.given(cmd("claim.disputed", event_id=str(w.last().id), by="UA", summary="never agreed"))
        assert w.issue("humanitarian-corridors").items[0].disputed is True
        w.given(RAISE_NS, cmd("position.stated", issue=NS, party="UA", stance="accepts", summary="s", claimed_by=["RU"]))
        w.given(cmd("claim.disputed", event_id=str(w.last().id), by="UA", summary="we never said so"))
        assert w.issue(NS).positions["UA"].disputed is True
        w.given(cmd("round.held", round_id="r1", venue="Minsk", level="technical"))
        w.given(cmd("claim.disputed", event_id=str(w.last().id), by="UA", summary="no such round"))
        assert w.view().rounds[0].disputed is True
        assert len(w.view().disputes) == 1

    def test_retracting_the_dispute_removes_the_flag(self):
        w = given(RAISE_NS, made())
        w.given(cmd("claim.disputed", event_id=str(w.last().id), by="TR", summary="s"))
        w.then(cmd("record.retracted", event_id=str(w.last().id), reason="r"), "record.retracted")
        v = w.issue(NS)
        assert v.proposals[0].disputed is False and v.disputes == []

    def test_refused(self):
        w = given(RAISE_NS, made(claimed_by=["RU"]))
        target = str(w.last().id)
        w.refuses(cmd("claim.disputed", event_id=str(uuid.uuid4()), by="UA", summary="s"), errors.UnknownEvent, "/event_id")
        w.refuses(cmd("claim.disputed", event_id=target, by="RU", summary="s"), errors.OwnClaim, "/by")
        w.refuses(cmd("claim.disputed", event_id=target, by="FR", summary="s"), errors.UnknownParty, "/by")
        w.given(cmd("claim.disputed", event_id=target, by="UA", summary="s"))
        w.refuses(cmd("claim.disputed", event_id=target, by="UA", summary="s"), errors.AlreadyDisputed, "/by")
        w.refuses(cmd("claim.disputed", event_id=str(w.last().id), by="RU", summary="s"), errors.NotDisputable, "/event_id")

    def test_cannot_dispute_a_retracted_fact(self):
        w = given(RAISE_NS, made())
        target = str(w.last().id)
        w.given(cmd("record.retracted", event_id=target, reason="r"))
        w.refuses(cmd("claim.disputed", event_id=target, by="UA", summary="s"), errors.AlreadyRetracted, "/event_id")
