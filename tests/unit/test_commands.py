"""Commands as clients send them: the tagged union, constraints, refusals."""

import msgspec
import pytest

from domain import errors, world_time
from domain.commands import COMMAND_CLASSES, Command, CommandBatch, OpenNegotiation, command_type
from domain.decide import target_of
from domain.events import EVENT_TYPES
from tests.unit.gwt import cmd, given


def test_one_command_per_event_type():
    tags = {cls.__struct_config__.tag for cls in COMMAND_CLASSES}
    assert tags | {"negotiation.opened"} == set(EVENT_TYPES)


def test_type_selects_the_member():
    c = msgspec.json.decode(b'{"type":"proposal.accepted","occurred_on":"2022-03-10","issue":"x","proposal_id":"p1","by":"UA"}', type=Command)
    assert command_type(c) == "proposal.accepted"
    assert target_of(c) == ("issue", "x")


@pytest.mark.parametrize(
    "body, path",
    [
        ({"type": "proposal.made", "occurred_on": "2022-03-10", "issue": "x", "by": "RU", "summary": "s", "colour": "red"}, None),
        ({"type": "proposal.made", "occurred_on": "10/03/2022", "issue": "x", "by": "RU", "summary": "s"}, "$.occurred_on"),
        ({"type": "proposal.made", "occurred_on": "2022-03-10T10:00", "issue": "x", "by": "RU", "summary": "s"}, "$.occurred_on"),
        ({"type": "proposal.made", "occurred_on": "2022-03-10", "issue": "Bad Key", "by": "RU", "summary": "s"}, "$.issue"),
        ({"type": "proposal.made", "occurred_on": "2022-03-10", "issue": "x", "by": "1RU", "summary": "s"}, "$.by"),
        ({"type": "proposal.made", "occurred_on": "2022-03-10", "issue": "x", "by": "RU", "summary": ""}, "$.summary"),
        ({"type": "position.stated", "occurred_on": "2022-03-10", "issue": "x", "party": "RU", "stance": "maybe", "summary": "s"}, "$.stance"),
        ({"type": "round.held", "occurred_on": "2022-03-10", "level": "summit"}, "$.level"),
        ({"type": "proposal.made", "occurred_on": "2022-03-10", "issue": "x", "by": "RU", "summary": "s", "expected_version": -1}, "$.expected_version"),
        ({"type": "proposal.made", "occurred_on": "2022-03-10", "issue": "x", "by": "RU", "summary": "s", "source": {"outlet": "RBC", "page": 1}}, "$.source"),
        ({"type": "proposal.made", "occurred_on": "2022-03-10", "issue": "x", "by": "RU", "summary": "s", "source": {"published_on": "16 March"}}, "$.source.published_on"),
        ({"type": "treaty.signed", "occurred_on": "2022-03-10"}, None),
    ],
)
def test_shape_errors_name_the_field(body, path):
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.convert(body, Command)
    if path:
        assert path in str(info.value)


def test_party_codes_keep_case_and_keys_are_lower_case():
    c = msgspec.convert(cmd("position.stated", issue="neutral-status", party="RU", stance="demands", summary="s"), Command)
    assert c.party == "RU"


def test_a_calendar_impossible_date_is_a_typed_error():
    w = given()
    w.refuses(cmd("negotiation.suspended", "2022-02-30"), errors.InvalidDate, "/occurred_on")
    w.refuses(cmd("negotiation.suspended", "2022-03-10T25:00:00+00:00"), errors.InvalidDate, "/occurred_on")


def test_batch_limits():
    one = cmd("negotiation.suspended")
    assert len(msgspec.convert({"commands": [one]}, CommandBatch).commands) == 1
    for n in (0, 101):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({"commands": [one] * n}, CommandBatch)


def test_defaults_for_item_issues():
    c = msgspec.convert(cmd("ceasefire.proposed", by="RU", scope="general"), Command)
    assert target_of(c) == ("issue", "ceasefire")
    c = msgspec.convert(cmd("corridor.closed", corridor_id="k1"), Command)
    assert target_of(c) == ("issue", "humanitarian-corridors")


def test_targets():
    assert target_of(msgspec.convert(cmd("round.cancelled", round_id="r"), Command)) == "negotiation"
    assert target_of(msgspec.convert(cmd("statement.made", speaker="s", summary="s"), Command)) == "negotiation"
    c = msgspec.convert(cmd("claim.disputed", event_id="00000000-0000-0000-0000-000000000001", by="UA", summary="s"), Command)
    assert target_of(c)[0] == "event"


def test_open_negotiation_body():
    body = {"title": "T", "parties": [{"code": "RU", "name": "Russia"}], "occurred_on": "2022-02-28", "type": "negotiation.opened"}
    assert msgspec.convert(body, OpenNegotiation).type == "negotiation.opened"
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**body, "parties": []}, OpenNegotiation)


def test_constraints_reach_the_json_schema():
    schema = msgspec.json.schema(CommandBatch)
    text = msgspec.json.encode(schema).decode()
    assert world_time.WORLD_TIME_PATTERN.replace("\\", "\\\\") in text
    assert '"maxItems":100' in text
    assert "security_guarantees" in text and "in_principle" in text


@pytest.mark.parametrize(
    "value, normal",
    [
        ("2022-03-10", "2022-03-10"),
        ("2022-03-10T14:30Z", "2022-03-10T14:30:00+00:00"),
        ("2022-03-10T14:30:00+03:00", "2022-03-10T14:30:00+03:00"),
        ("2022-03-10T14:30:00.5+03:00", "2022-03-10T14:30:00.500000+03:00"),
    ],
)
def test_world_time_normalised(value, normal):
    assert world_time.normalise(value) == normal


def test_days_against_instants():
    # a day covers itself whole for as_of, and starts at 00:00 UTC as a fact
    assert world_time.occurred_by("2022-03-10T23:59:00+00:00", "2022-03-10")
    assert not world_time.occurred_by("2022-03-11T00:00:00+00:00", "2022-03-10")
    assert world_time.occurred_by("2022-03-10", "2022-03-10T00:00:00+00:00")
    assert not world_time.occurred_by("2022-03-10", "2022-03-09T23:59:59+00:00")
    assert world_time.sort_key("2022-03-10") < world_time.sort_key("2022-03-10T00:00:00+00:00")
