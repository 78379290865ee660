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
    * a proposal accepted by everyone it was addressed to is an agreement in
      principle on its terms (until an ``agreement.reached`` says more);
    * a countered proposal counts as answered (like rejected) for deadlock;
    * any proposal, item or agreement on the issue means it was discussed.
    """
    if dropped:
        return "dropped"
    if any(a.state == "violated" for a in agreements) or any(i.agreed and i.state == "violated" for i in items):
        return "violated"
    if any(a.state == "implemented" for a in agreements):
        return "implemented"
    live = [i for i in items if not (i.agreed and i.state in ("ended", "closed"))]
    settled = [i for i in live if i.state in SETTLED_ITEM_STATES]
    if any(a.level == "final" and a.state == "reached" for a in agreements) or (live and len(settled) == len(live)):
        return "agreed"
    if settled:
        return "partially_agreed"
    if any(a.level == "in_principle" and a.state == "reached" for a in agreements) or any(
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
