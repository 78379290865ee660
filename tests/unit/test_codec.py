"""Stored payloads: canonical bytes, round trips, upcasting of old versions."""

import typing

import msgspec
import pytest
from hypothesis import given as hgiven
from hypothesis import settings
from hypothesis import strategies as st

from domain import events as ev
from tests.unit.gwt import cmd, given


def every_type_world():
    """One world recording every event type at least once."""
    ns = "neutral-status"
    w = given(
        cmd("party.joined", party={"code": "BY", "name": "Belarus"}, role="host"),
        cmd("party.left", party="BY", reason="withdrew"),
        cmd("round.scheduled", round_id="r1", venue="Minsk", level="technical"),
        cmd("round.held", round_id="r1", participants=["RU", "UA"]),
        cmd("round.scheduled", round_id="r2", venue="Minsk", level="technical"),
        cmd("round.cancelled", round_id="r2"),
        cmd("negotiation.suspended", reason="r"),
        cmd("negotiation.resumed"),
        cmd("statement.made", speaker="Lavrov", party="RU", summary="difficult", assessment="neutral"),
        cmd("issue.raised", issue=ns, title="Neutral status", category="political_status", raised_by="RU"),
        cmd("issue.raised", issue="sg", title="Security guarantees", category="security_guarantees"),
        cmd("issues.linked", issue=ns, related_issue="sg", relation="conditional_on"),
        cmd("issue.discussed", issue=ns, round_id="r1", summary="seriously", assessment="optimistic"),
        cmd("position.stated", issue=ns, party="UA", stance="open_to", summary="s", conditions=["guarantees"]),
        cmd("proposal.made", issue=ns, proposal_id="p1", by="RU", to=["UA"], summary="s", terms="t"),
        cmd("proposal.countered", issue=ns, proposal_id="p2", counters="p1", by="UA", summary="c"),
        cmd("proposal.accepted", issue=ns, proposal_id="p2", by="RU"),
        cmd("proposal.made", issue=ns, proposal_id="p3", by="RU", summary="s"),
        cmd("proposal.rejected", issue=ns, proposal_id="p3", by="UA", reason="no"),
        cmd("proposal.made", issue=ns, proposal_id="p4", by="RU", summary="s"),
        cmd("proposal.withdrawn", issue=ns, proposal_id="p4", by="RU"),
        cmd("agreement.reached", issue=ns, agreement_id="a1", level="final", parties=["RU", "UA"], summary="s", proposal_id="p2"),
        cmd("agreement.implemented", issue=ns, agreement_id="a1"),
        cmd("agreement.violated", issue=ns, agreement_id="a1", alleged_by="UA", against=["RU"]),
        cmd("issue.dropped", issue="sg"),
        cmd("issue.reopened", issue="sg"),
        cmd("agreement.reached", issues=[ns, "sg"], agreement_id="a2", level="final", parties=["RU", "UA"], summary="s2"),
        cmd("agreement.signed", agreement_id="a2", parties=["RU", "UA"], venue="Istanbul"),
        cmd("agreement.ratified", agreement_id="a2", by="RU", method="legislature", body="State Duma", result={"yes": 90.5}),
        cmd("agreement.rejected", agreement_id="a2", by="UA", method="referendum", result={"yes": 49.8, "no": 50.2, "turnout": 37.4}),
        cmd("agreement.reached", issue="sg", agreement_id="a3", level="final", parties=["RU", "UA", "TR"], summary="s3"),
        cmd("agreement.superseded", agreement_id="a2", by_agreement="a3"),
        cmd("agreement.implemented", agreement_id="a3", extent="minimal"),
        cmd("agreement.withdrawn", agreement_id="a3", by="TR", reason="left"),
        cmd("ceasefire.declared", ceasefire_id="c3", by="UA", scope="general", area="Donbas"),
        cmd("round.held", round_id="r3", venue="Istanbul", level="delegation", ends_on="2022-03-12"),
        cmd("ceasefire.proposed", ceasefire_id="c1", by="RU", scope="local", starts_at="2022-03-05T10:00+03:00"),
        cmd("ceasefire.agreed", ceasefire_id="c1", parties=["RU", "UA"]),
        cmd("ceasefire.violated", ceasefire_id="c1", alleged_by="UA"),
        cmd("ceasefire.ended", ceasefire_id="c1", reason="collapsed"),
        cmd("ceasefire.proposed", ceasefire_id="c2", by="RU", scope="general"),
        cmd("ceasefire.rejected", ceasefire_id="c2", by="UA"),
        cmd("corridor.proposed", corridor_id="k1", by="RU", **{"from": "Kharkiv"}, to="Belgorod"),
        cmd("corridor.rejected", corridor_id="k1", by="UA"),
        cmd("corridor.agreed", corridor_id="k2", **{"from": "Sumy"}, to="Poltava", parties=["RU", "UA"]),
        cmd("corridor.opened", corridor_id="k2"),
        cmd("corridor.violated", corridor_id="k2", alleged_by="UA"),
        cmd("corridor.closed", corridor_id="k2"),
    )
    w.given(cmd("claim.disputed", event_id=str(w.last().id), by="RU", summary="it never closed"))
    w.given(cmd("record.retracted", event_id=str(w.last().id), reason="duplicate"))
    w.given(cmd("negotiation.concluded", outcome="o"))
    w.given(cmd("negotiation.reopened", reason="renegotiation"))
    return w


WORLD = every_type_world()


def test_the_sample_covers_every_type():
    assert {r.type for r in WORLD.records} == set(ev.EVENT_TYPES)


@pytest.mark.parametrize("record", WORLD.records, ids=lambda r: r.type)
def test_round_trip_is_exact_and_deterministic(record):
    raw = ev.encode_data(record.data)
    decoded = ev.decode_data(record.type, ev.SCHEMA_VERSIONS[record.type], raw)
    assert decoded == record.data
    assert ev.encode_data(decoded) == raw
    # canonical: sorted keys, no whitespace, no nulls
    obj = msgspec.json.decode(raw)
    assert list(obj) == sorted(obj)
    assert raw == msgspec.json.encode(obj, order="sorted")  # compact, no whitespace
    assert None not in obj.values()


def test_field_named_from_is_stored_as_from():
    raw = ev.encode_data(ev.CorridorProposed(issue="h", corridor_id="k", by="RU", from_="A", to="B"))
    assert raw == b'{"by":"RU","corridor_id":"k","from":"A","issue":"h","to":"B"}'


def test_stored_payloads_tolerate_unknown_fields():
    raw = b'{"issue":"x","title":"X","category":"other","added_later":1}'
    assert ev.decode_data("issue.raised", 1, raw) == ev.IssueRaised(issue="x", title="X", category="other")


def test_position_stated_v1_is_upcast_to_v2():
    # v1 had one optional "condition"; v2 a "conditions" list
    assert ev.SCHEMA_VERSIONS["position.stated"] == ev.PositionStated.class_version == 2
    v1 = b'{"condition":"guarantees first","issue":"ns","party":"UA","stance":"conditional","summary":"s"}'
    assert ev.decode_data("position.stated", 1, v1).conditions == ["guarantees first"]
    v1_without = b'{"issue":"ns","party":"UA","stance":"conditional","summary":"s"}'
    decoded = ev.decode_data("position.stated", 1, v1_without)
    assert decoded.conditions == []
    assert ev.encode_data(decoded) == v1_without  # the default is omitted: same canonical bytes


def test_unknown_type_or_future_version_is_an_error():
    with pytest.raises(ev.UnknownEventType):
        ev.decode_data("treaty.signed", 1, b"{}")
    with pytest.raises(ev.UnknownEventType):
        ev.decode_data("position.stated", 3, b"{}")


def test_one_union_declares_every_type_its_stream_and_version():
    assert set(typing.get_args(ev.Event)) == set(ev.EVENT_TYPES.values())
    for type_, cls in ev.EVENT_TYPES.items():
        assert cls.TYPE == type_ and cls.STREAM in ("negotiation", "issue", "either")
        # each upcaster step from 1 to the current version exists on the class
        for version in range(1, cls.class_version):
            assert callable(getattr(cls, f"upcast_v{version}_v{version + 1}"))
    assert ev.NEGOTIATION_TYPES | ev.ISSUE_TYPES | ev.EITHER_STREAM_TYPES == set(ev.EVENT_TYPES)


_text = st.text(min_size=1, max_size=20)


@settings(max_examples=100, deadline=None)
@hgiven(
    st.builds(
        ev.ProposalCountered,
        issue=_text, proposal_id=_text, by=_text, summary=_text, counters=_text,
        to=st.lists(_text, max_size=3), terms=st.none() | _text,
    )
)
def test_any_payload_has_one_spelling(payload):
    raw = ev.encode_data(payload)
    assert ev.decode_data("proposal.countered", 1, raw) == payload
    assert ev.encode_data(msgspec.json.decode(raw, type=ev.ProposalCountered)) == raw
