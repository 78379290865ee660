"""The per-issue status table of DESIGN.md: the first matching rule wins.

Pure functions of the views the tallies build, so the rules read like the
table and are tested row by row (tests/unit/test_status_rules.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.views import AgreementView, ItemView, ProposalView
from domain.vocabulary import IssueStatus

SETTLED_ITEM_STATES = frozenset({"agreed", "opened"})
CLOSED_PROPOSAL_STATES = frozenset({"rejected", "withdrawn", "countered"})


def agreement_in_force(a: AgreementView) -> bool:
    """In force unless rejected in a ratification (by any party whose
    ratification it is), superseded, or withdrawn from by every party but one."""
    if a.superseded_by is not None or any(r.outcome == "rejected" for r in a.ratifications):
        return False
    remaining = [p for p in a.parties if p not in a.withdrawn_by]
    return not (a.withdrawn_by and len(remaining) <= 1)


# Latest steps of an agreement in force that make it "agreed" (or agreed in principle).
STANDING_STATES = frozenset({"reached", "signed", "ratified"})


def issue_status(
    *,
    dropped: bool,
    discussed: bool,
    proposals: Sequence[ProposalView],
    agreements: Sequence[AgreementView],
    items: Sequence[ItemView],
) -> IssueStatus:
    """The issue's status.

    Interpretations of what the table leaves open:

    * an item that ended or closed *after* being agreed is history: it no
      longer counts for agreed / partially_agreed / deadlocked ("live" items);
      one closed without ever being agreed is "closed unagreed";
    * a unilateral (declared) ceasefire is discussion, not agreement: it is no
      "live" item, but its violation (latest state) makes the issue violated,
      as an agreed item's does;
    * a proposal accepted by everyone it was addressed to is an agreement in
      principle on its terms (until an ``agreement.reached`` says more);
    * a countered proposal counts as answered (like rejected) for deadlock;
    * any proposal, item or agreement on the issue means it was discussed;
    * v1 facts only: every agreement is in force and implemented in full, so
      the v2 rules give the v1 statuses.
    """
    if dropped:
        return "dropped"
    in_force = [a for a in agreements if agreement_in_force(a)]
    if any(a.state == "violated" for a in in_force) or any(
        (i.agreed or i.declared) and i.state == "violated" for i in items
    ):
        return "violated"
    if any(a.withdrawn_by for a in in_force):
        return "withdrawn"
    implemented = [a.implementation.extent for a in in_force if a.implementation is not None]
    if "full" in implemented:
        return "implemented"
    if implemented:
        return "implementing"
    live = [i for i in items if (i.agreed or not i.declared) and not (i.agreed and i.state in ("ended", "closed"))]
    settled = [i for i in live if i.state in SETTLED_ITEM_STATES]
    if any(a.level == "final" and a.state in STANDING_STATES for a in in_force) or (
        live and len(settled) == len(live)
    ):
        return "agreed"
    final = [a for a in agreements if a.level == "final"]
    if final and not in_force and all(any(r.outcome == "rejected" for r in a.ratifications) for a in final):
        return "rejected"
    if settled:
        return "partially_agreed"
    if any(a.level == "in_principle" and a.state in STANDING_STATES for a in in_force) or any(
        p.status == "accepted" for p in proposals
    ):
        return "agreed_in_principle"
    if any(p.status == "open" for p in proposals) or any(i.state == "proposed" for i in live):
        return "proposal_on_table"
    if (proposals or live) and all(p.status in CLOSED_PROPOSAL_STATES for p in proposals) and all(
        i.state == "rejected" for i in live
    ):
        return "deadlocked"
    if discussed or proposals or items or agreements:
        return "under_discussion"
    return "raised"
