"""describe(): one human sentence per fact."""

from domain.status import describe
from tests.unit.test_codec import WORLD
from tests.unit.gwt import cmd, given

NAMES = {"RU": "Russia", "UA": "Ukraine"}


def test_the_design_example_sentence():
    w = given(
        cmd("issue.raised", issue="neutral-status", title="Neutral status", category="political_status"),
        cmd("proposal.made", issue="neutral-status", by="RU", to=["UA"], summary="no weapons threatening Russia"),
    )
    assert describe(w.last(), NAMES) == "Russia proposed 'no weapons threatening Russia' on neutral-status to Ukraine"


def test_claims_are_attributed():
    w = given(cmd("corridor.agreed", corridor_id="k1", **{"from": "Sumy"}, to="Poltava", claimed_by=["RU"]))
    assert describe(w.last(), NAMES) == "Corridor k1 from Sumy to Poltava agreed (according to Russia)"


def test_every_type_has_a_sentence():
    for record in WORLD.records:
        text = describe(record)
        assert text and not text.endswith(" recorded"), record.type
