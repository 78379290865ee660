"""DESIGN.md's example: what one news report (16 March 2022) records.

Data only, as a client would send it, so ``parley demo`` and the tests
record the same facts. Item ids are given explicitly so the demo is stable.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.commands import Command, OpenNegotiation

# The report itself: Lavrov's interview with RBC, relayed by a Russian news site.
RBC = {"outlet": "RBC", "speaker": "Sergey Lavrov", "published_on": "2022-03-16"}

OPENED: dict[str, Any] = {
    "title": "Russia-Ukraine talks 2022",
    "slug": "russia-ukraine-2022",
    "parties": [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}],
    "occurred_on": "2022-02-28",
    "source": RBC,
}

COMMANDS: list[dict[str, Any]] = [
    # 1. Belarus hosted three rounds of delegation-level talks.
    {"type": "party.joined", "occurred_on": "2022-02-28", "party": {"code": "BY", "name": "Belarus"}, "role": "host"},
    {"type": "round.held", "occurred_on": "2022-02-28", "round_id": "belarus-1", "venue": "Gomel region",
     "country": "Belarus", "level": "delegation", "format": "in_person", "participants": ["RU", "UA"],
     "summary": "political, humanitarian and military issues", "source": RBC},
    {"type": "round.held", "occurred_on": "2022-03-03", "round_id": "belarus-2", "venue": "Belovezhskaya Pushcha",
     "country": "Belarus", "level": "delegation", "format": "in_person", "participants": ["RU", "UA"],
     "summary": "political, humanitarian and military issues", "source": RBC},
    # 5. The talks produced several local ceasefires and humanitarian corridors.
    {"type": "ceasefire.agreed", "occurred_on": "2022-03-05", "ceasefire_id": "mariupol-volnovakha",
     "scope": "local", "area": "Mariupol and Volnovakha", "parties": ["RU", "UA"],
     "starts_at": "2022-03-05T10:00:00+03:00", "source": RBC},
    {"type": "corridor.agreed", "occurred_on": "2022-03-05", "corridor_id": "mariupol-zaporizhzhia",
     "from": "Mariupol", "to": "Zaporizhzhia", "parties": ["RU", "UA"], "purpose": "evacuation of civilians",
     "source": RBC},
    {"type": "round.held", "occurred_on": "2022-03-07", "round_id": "belarus-3", "venue": "Belovezhskaya Pushcha",
     "country": "Belarus", "level": "delegation", "format": "in_person", "participants": ["RU", "UA"],
     "issues": ["ceasefire", "humanitarian-corridors"],
     "summary": "political, humanitarian and military issues", "source": RBC},
    # Ukraine rejected some corridors proposed by Russia.
    {"type": "corridor.proposed", "occurred_on": "2022-03-07", "corridor_id": "kharkiv-belgorod", "by": "RU",
     "to": "Belgorod", "from": "Kharkiv", "purpose": "evacuation of civilians", "source": RBC},
    {"type": "corridor.proposed", "occurred_on": "2022-03-07", "corridor_id": "kyiv-gomel", "by": "RU",
     "from": "Kyiv", "to": "Gomel", "via": "Belarus", "purpose": "evacuation of civilians", "source": RBC},
    {"type": "corridor.rejected", "occurred_on": "2022-03-07", "corridor_id": "kharkiv-belgorod", "by": "UA",
     "reason": "leads only to Russia", "source": RBC},
    {"type": "corridor.rejected", "occurred_on": "2022-03-07", "corridor_id": "kyiv-gomel", "by": "UA",
     "reason": "leads only to Belarus", "source": RBC},
    {"type": "ceasefire.agreed", "occurred_on": "2022-03-08", "ceasefire_id": "sumy", "scope": "local",
     "area": "Sumy", "parties": ["RU", "UA"], "source": RBC},
    {"type": "corridor.agreed", "occurred_on": "2022-03-08", "corridor_id": "sumy-poltava", "from": "Sumy",
     "to": "Poltava", "parties": ["RU", "UA"], "source": RBC},
    {"type": "corridor.opened", "occurred_on": "2022-03-08", "corridor_id": "sumy-poltava", "source": RBC},
    # 2. 10 March, Antalya, Turkey hosting: the first ministerial contact.
    {"type": "party.joined", "occurred_on": "2022-03-10", "party": {"code": "TR", "name": "Turkey"}, "role": "host"},
    {"type": "round.held", "occurred_on": "2022-03-10", "round_id": "antalya", "venue": "Antalya",
     "country": "Turkey", "level": "ministerial", "format": "in_person", "participants": ["RU", "UA"],
     "mediator": "TR", "summary": "first ministerial contact", "source": RBC},
    {"type": "statement.made", "occurred_on": "2022-03-10", "speaker": "Sergey Lavrov", "party": "RU",
     "summary": "Antalya does not replace the Belarus track; Ukraine brought no new ideas",
     "assessment": "pessimistic", "claimed_by": ["RU"], "source": RBC},
    # 6. 13 March: a presidents' meeting is very likely, on conditions.
    {"type": "issue.raised", "occurred_on": "2022-03-13", "issue": "leaders-meeting",
     "title": "Direct meeting of the presidents", "category": "procedural"},
    {"type": "position.stated", "occurred_on": "2022-03-13", "issue": "leaders-meeting", "party": "RU",
     "stance": "conditional", "summary": "a direct meeting of the two presidents is very likely",
     "conditions": ["the agenda is clear", "the possible results are clear"],
     "source": {"outlet": "RBC", "speaker": "Dmitry Peskov", "published_on": "2022-03-16"}},
    # 3. Neutral status seriously discussed together with security guarantees.
    {"type": "issue.raised", "occurred_on": "2022-03-16", "issue": "security-guarantees",
     "title": "Security guarantees for Ukraine", "category": "security_guarantees"},
    {"type": "issue.raised", "occurred_on": "2022-03-16", "issue": "neutral-status",
     "title": "Neutral status of Ukraine", "category": "political_status"},
    {"type": "issues.linked", "occurred_on": "2022-03-16", "issue": "neutral-status",
     "related_issue": "security-guarantees", "relation": "conditional_on", "source": RBC},
    {"type": "issue.discussed", "occurred_on": "2022-03-16", "issue": "neutral-status",
     "summary": "being seriously discussed", "claimed_by": ["RU"], "source": RBC},
    {"type": "position.stated", "occurred_on": "2022-03-16", "issue": "security-guarantees", "party": "RU",
     "stance": "demands", "summary": "Russia states its requirements on security guarantees", "source": RBC},
    # 4. No weapons threatening Russia; settled separately from NATO membership.
    {"type": "issue.raised", "occurred_on": "2022-03-16", "issue": "weapons-in-ukraine",
     "title": "Weapons deployed in Ukraine", "category": "military_arrangements"},
    {"type": "issue.raised", "occurred_on": "2022-03-16", "issue": "nato-membership",
     "title": "Ukraine's NATO membership", "category": "security_guarantees"},
    {"type": "proposal.made", "occurred_on": "2022-03-16", "issue": "weapons-in-ukraine",
     "proposal_id": "no-threatening-weapons", "by": "RU", "to": ["UA"],
     "summary": "no weapons in Ukraine that threaten Russia",
     "terms": "ready to coordinate the types of weapons that do not threaten Russia", "source": RBC},
    {"type": "issues.linked", "occurred_on": "2022-03-16", "issue": "weapons-in-ukraine",
     "related_issue": "nato-membership", "relation": "separate_from", "claimed_by": ["RU"], "source": RBC},
    # 7. Russia's demands were handed over; Moscow awaits Ukraine's response.
    {"type": "proposal.made", "occurred_on": "2022-03-16", "issue": "neutral-status",
     "proposal_id": "russian-demands", "by": "RU", "to": ["UA"],
     "summary": "Russia's demands, handed over to Ukraine", "claimed_by": ["RU"], "source": RBC},
    # 8. Assessment: difficult, with some hope for a compromise.
    {"type": "statement.made", "occurred_on": "2022-03-16", "speaker": "Sergey Lavrov", "party": "RU",
     "summary": "the talks are difficult, but there is some hope for a compromise", "assessment": "neutral",
     "source": RBC},
]


def example() -> tuple[OpenNegotiation, list[Command]]:  # type: ignore[valid-type]
    """The opening command and the commands of the report, in order."""
    opened = msgspec.convert(OPENED, OpenNegotiation)
    return opened, [msgspec.convert(c, Command) for c in COMMANDS]
