"""DESIGN.md "Per-issue status": every rule, and the precedence between rules.

Each row: facts recorded on issue "x" (after it is raised) -> expected status.
"""

import pytest

from tests.unit.gwt import cmd, given

X = "x"


def raise_x():
    return cmd("issue.raised", issue=X, title="X", category="other")


def pos(party="RU"):
    return cmd("position.stated", issue=X, party=party, stance="demands", summary="s")


def discussed():
    return cmd("issue.discussed", issue=X)


def prop(pid="p1", by="RU", to=("UA",)):
    return cmd("proposal.made", issue=X, proposal_id=pid, by=by, to=list(to), summary="s")


def answer(kind, pid="p1", by="UA"):
    return cmd(f"proposal.{kind}", issue=X, proposal_id=pid, by=by)


def counter(pid="p2", counters="p1", by="UA"):
    return cmd("proposal.countered", issue=X, proposal_id=pid, counters=counters, by=by, summary="s")


def agree(aid="a1", level="final"):
    return cmd("agreement.reached", issue=X, agreement_id=aid, level=level, parties=["RU", "UA"], summary="s")


def agreement(step, aid="a1"):
    extra = {"alleged_by": "UA"} if step == "violated" else {}
    return cmd(f"agreement.{step}", issue=X, agreement_id=aid, **extra)


def cf(step, cid="c1", **kw):
    defaults = {
        "proposed": {"by": "RU", "scope": "local"},
        "agreed": {"scope": "local"},
        "rejected": {"by": "UA"},
        "violated": {"alleged_by": "UA"},
        "ended": {"reason": "expired"},
    }[step]
    return cmd(f"ceasefire.{step}", issue=X, ceasefire_id=cid, **{**defaults, **kw})


def co(step, cid="k1", **kw):
    defaults = {
        "proposed": {"by": "RU", "from": "A", "to": "B"},
        "agreed": {"from": "A", "to": "B"},
        "rejected": {"by": "UA"},
        "violated": {"alleged_by": "UA"},
    }.get(step, {})
    return cmd(f"corridor.{step}", issue=X, corridor_id=cid, **{**defaults, **kw})


def dropped():
    return cmd("issue.dropped", issue=X)


def reopened():
    return cmd("issue.reopened", issue=X)


ROWS = [
    # raised: nothing else happened
    ("nothing", [], "raised"),
    # under_discussion: positions stated or discussed
    ("a position", [pos()], "under_discussion"),
    ("discussed", [discussed()], "under_discussion"),
    # an item that ended after being agreed is history, the issue was discussed
    ("only an ended ceasefire", [cf("agreed"), cf("ended")], "under_discussion"),
    ("a corridor closed unagreed", [co("proposed"), co("closed")], "under_discussion"),
    # deadlocked: everything proposed was rejected or withdrawn
    ("proposal rejected", [prop(), answer("rejected")], "deadlocked"),
    ("proposal withdrawn", [prop(), answer("withdrawn", by="RU")], "deadlocked"),
    ("countered, counter rejected", [prop(), counter(), answer("rejected", pid="p2", by="RU")], "deadlocked"),
    ("item rejected", [cf("proposed"), cf("rejected")], "deadlocked"),
    ("deadlocked beats under_discussion", [pos(), prop(), answer("rejected")], "deadlocked"),
    # proposal_on_table: a proposal or item is open
    ("open proposal", [prop()], "proposal_on_table"),
    ("open counter-proposal", [prop(), counter()], "proposal_on_table"),
    ("partly answered", [prop(to=("UA", "TR")), answer("accepted")], "proposal_on_table"),
    ("proposed item", [cf("proposed")], "proposal_on_table"),
    ("on the table beats deadlocked", [prop(), answer("rejected"), prop("p2")], "proposal_on_table"),
    # agreed_in_principle
    ("in-principle agreement", [agree(level="in_principle")], "agreed_in_principle"),
    ("proposal accepted by its addressees", [prop(), answer("accepted")], "agreed_in_principle"),
    ("in principle beats on the table", [prop(), agree(level="in_principle")], "agreed_in_principle"),
    # partially_agreed: some items agreed/opened, others not
    ("agreed + proposed", [cf("agreed"), cf("proposed", "c2")], "partially_agreed"),
    ("opened + rejected", [co("proposed"), co("opened"), co("proposed", "k2"), co("rejected", "k2")], "partially_agreed"),
    ("agreed + closed unagreed", [co("agreed"), co("proposed", "k2"), co("closed", "k2")], "partially_agreed"),
    ("partially beats in principle", [agree(level="in_principle"), cf("agreed"), cf("proposed", "c2")], "partially_agreed"),
    # agreed: a final agreement, or every (live) item agreed/opened
    ("final agreement", [agree()], "agreed"),
    ("every item agreed or opened", [cf("agreed"), co("agreed"), co("opened")], "agreed"),
    ("ended item is history", [cf("agreed"), cf("ended"), cf("agreed", "c2")], "agreed"),
    ("final beats partially", [cf("agreed"), cf("proposed", "c2"), agree()], "agreed"),
    ("final beats an open proposal", [prop(), agree("a1")], "agreed"),
    # implemented
    ("implemented", [agree(), agreement("implemented")], "implemented"),
    ("implemented beats agreed items", [cf("agreed"), agree(), agreement("implemented")], "implemented"),
    # violated: an agreed agreement/ceasefire/corridor whose latest state is violated
    ("agreement violated", [agree(), agreement("violated")], "violated"),
    ("in-principle agreement violated", [agree(level="in_principle"), agreement("violated")], "violated"),
    ("ceasefire violated", [cf("agreed"), cf("violated")], "violated"),
    ("corridor violated", [co("agreed"), co("opened"), co("violated")], "violated"),
    ("violated beats implemented", [agree(), agreement("implemented"), agree("a2"), agreement("violated", "a2")], "violated"),
    ("violation over once ended", [cf("agreed"), cf("violated"), cf("ended", reason="collapsed")], "under_discussion"),
    ("violation over once implemented", [agree(), agreement("violated"), agreement("implemented")], "implemented"),
    # dropped beats everything; reopening restores the rest
    ("dropped", [dropped()], "dropped"),
    ("dropped beats violated", [cf("agreed"), cf("violated"), dropped()], "dropped"),
    ("reopened", [prop(), dropped(), reopened()], "proposal_on_table"),
]


@pytest.mark.parametrize("name, facts, expected", ROWS, ids=[r[0] for r in ROWS])
def test_status(name, facts, expected):
    world = given(raise_x(), *facts)
    assert world.issue(X).status == expected


def test_every_status_is_covered():
    assert {r[2] for r in ROWS} == {
        "dropped", "violated", "implemented", "agreed", "partially_agreed", "agreed_in_principle",
        "proposal_on_table", "deadlocked", "under_discussion", "raised",
    }
