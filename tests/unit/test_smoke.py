from tests.unit.gwt import cmd, given


def test_proposal_awaits_addressee():
    w = given(cmd("issue.raised", issue="neutral-status", title="Neutral status", category="political_status"))
    w.then(cmd("proposal.made", issue="neutral-status", proposal_id="p1", by="RU", to=["UA"], summary="neutrality"), "proposal.made")
    v = w.issue("neutral-status")
    assert v.status == "proposal_on_table"
    assert v.proposals[0].awaiting == ["UA"]
    w.then(cmd("ceasefire.proposed", by="RU", scope="local", ceasefire_id="c1"), "issue.raised", "ceasefire.proposed")
    assert w.issue("ceasefire").status == "proposal_on_table"
