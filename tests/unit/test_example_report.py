"""DESIGN.md "what one news report records", end to end through the domain."""

import msgspec

from domain.example import example
from tests.unit.gwt import World


def record_example() -> World:
    opened, commands = example()
    world = World(msgspec.to_builtins(opened))
    for command in commands:
        world._store(world.decide(command))
    return world


def test_every_fact_of_the_report_is_accepted():
    world = record_example()
    _, commands = example()
    # Two default issues are raised on first use, on top of one event per command.
    assert len(world.records) == 1 + len(commands) + 2


def test_negotiation_view():
    v = record_example().view()
    assert v.status == "active"  # nothing suspended or concluded it
    assert [(p.code, p.role) for p in v.parties] == [("RU", "party"), ("UA", "party"), ("BY", "host"), ("TR", "host")]
    assert [(r.round_id, r.state, r.level) for r in v.rounds] == [
        ("belarus-1", "held", "delegation"),
        ("belarus-2", "held", "delegation"),
        ("belarus-3", "held", "delegation"),
        ("antalya", "held", "ministerial"),  # the first ministerial contact
    ]
    assert v.rounds[-1].mediator == "TR"
    assert v.last_activity_on == "2022-03-16"


def test_issue_statuses_follow_the_rules():
    world = record_example()
    statuses = {key: world.issue(key).status for key in world.issues}
    assert statuses == {
        # Both local ceasefires are agreed, so every item is agreed -> "agreed".
        "ceasefire": "agreed",
        # Two corridors agreed (one opened), two proposed by Russia and rejected by
        # Ukraine -> some items agreed, others rejected -> "partially_agreed".
        "humanitarian-corridors": "partially_agreed",
        # Only Russia's conditional position: positions stated -> "under_discussion".
        "leaders-meeting": "under_discussion",
        # Russia states requirements: a position -> "under_discussion".
        "security-guarantees": "under_discussion",
        # Russia's demands handed over, awaiting Ukraine -> an open proposal.
        "neutral-status": "proposal_on_table",
        # "No weapons that threaten Russia", addressed to Ukraine -> open proposal.
        "weapons-in-ukraine": "proposal_on_table",
        # Only named (as something to settle separately): nothing else -> "raised".
        "nato-membership": "raised",
    }


def test_details_a_reader_needs():
    world = record_example()
    neutral = world.issue("neutral-status")
    assert [(link.issue, link.relation) for link in neutral.linked] == [("security-guarantees", "conditional_on")]
    assert neutral.proposals[0].awaiting == ["UA"]  # Moscow awaits Ukraine's response
    corridors = world.issue("humanitarian-corridors")
    assert corridors.item_counts == {"agreed": 1, "opened": 1, "rejected": 2}
    leaders = world.issue("leaders-meeting")
    assert leaders.positions["RU"].stance == "conditional"
    assert leaders.positions["RU"].conditions == ["the agenda is clear", "the possible results are clear"]
    weapons = world.issue("weapons-in-ukraine")
    assert [(link.issue, link.relation) for link in weapons.linked] == [("nato-membership", "separate_from")]
