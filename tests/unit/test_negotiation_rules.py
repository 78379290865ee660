"""Negotiation-level commands, grouped by starting state."""

import msgspec
import pytest

from domain import errors
from domain.commands import OpenNegotiation
from domain.decide import CommandMeta, open_negotiation
from tests.unit.gwt import OPENED, T0, cmd, given

META = CommandMeta(recorded_by="test", recorded_at=T0, item_id="gen-1")


class TestOpening:
    def test_opened_with_parties_mediators_and_a_slug_from_the_title(self):
        [event] = open_negotiation(msgspec.convert(OPENED, OpenNegotiation), META)
        assert event.type == "negotiation.opened" and event.stream == "negotiation"
        assert event.data.slug == "russia-ukraine-talks"
        v = given().view()
        assert v.status == "active"
        assert [p.code for p in v.parties] == ["RU", "UA"] and [m.code for m in v.mediators] == ["TR"]

    def test_title_without_latin_letters_takes_the_generated_slug(self):
        body = {**OPENED, "title": "Переговоры"}
        [event] = open_negotiation(msgspec.convert(body, OpenNegotiation), META)
        assert event.data.slug == "gen-1"

    @pytest.mark.parametrize(
        "change, error, pointer",
        [
            ({"parties": [{"code": "RU", "name": "Russia"}, {"code": "RU", "name": "Russia"}]}, errors.DuplicateParty, "/parties/1/code"),
            ({"mediators": [{"code": "UA", "name": "Ukraine"}]}, errors.DuplicateParty, "/mediators/0/code"),
            ({"claimed_by": ["FR"]}, errors.UnknownParty, "/claimed_by/0"),
            ({"occurred_on": "2022-02-30"}, errors.InvalidDate, "/occurred_on"),
        ],
    )
    def test_refused(self, change, error, pointer):
        with pytest.raises(error) as info:
            open_negotiation(msgspec.convert({**OPENED, **change}, OpenNegotiation), META)
        assert info.value.pointer == pointer

    def test_occurred_on_is_normalised(self):
        body = {**OPENED, "occurred_on": "2022-02-28T10:00Z"}
        [event] = open_negotiation(msgspec.convert(body, OpenNegotiation), META)
        assert event.occurred_on == "2022-02-28T10:00:00+00:00"


class TestParties:
    def test_party_joins_with_a_role_and_leaves(self):
        w = given()
        w.then(cmd("party.joined", party={"code": "BY", "name": "Belarus"}, role="host"), "party.joined")
        assert ("BY", "host") in [(p.code, p.role) for p in w.view().parties]
        w.then(cmd("party.left", party="BY"), "party.left")
        assert [p.active for p in w.view().parties if p.code == "BY"] == [False]
        # a party that left may join again
        w.then(cmd("party.joined", party={"code": "BY", "name": "Belarus"}, role="observer"), "party.joined")

    def test_mediator_joins(self):
        w = given(cmd("party.joined", party={"code": "UN", "name": "United Nations"}, role="mediator"))
        assert [m.code for m in w.view().mediators] == ["TR", "UN"]

    def test_cannot_join_twice(self):
        given().refuses(cmd("party.joined", party={"code": "RU", "name": "Russia"}), errors.PartyAlreadyJoined, "/party/code")

    def test_unknown_party_cannot_leave(self):
        given().refuses(cmd("party.left", party="FR"), errors.UnknownParty, "/party")

    def test_cannot_leave_twice(self):
        given(cmd("party.left", party="UA")).refuses(cmd("party.left", party="UA"), errors.PartyNotActive, "/party")

    def test_claims_must_name_parties(self):
        given().refuses(cmd("negotiation.suspended", claimed_by=["RU", "XX"]), errors.UnknownParty, "/claimed_by/1")


class TestRounds:
    HELD = dict(round_id="r1", venue="Antalya", country="Turkey", level="ministerial", participants=["RU", "UA"], mediator="TR")

    def test_round_held_without_schedule(self):
        w = given()
        w.then(cmd("round.held", **self.HELD), "round.held")
        [r] = w.view().rounds
        assert (r.round_id, r.state, r.venue, r.country, r.mediator) == ("r1", "held", "Antalya", "Turkey", "TR")

    def test_scheduled_round_is_marked_held_keeping_what_was_known(self):
        w = given(cmd("round.scheduled", "2022-03-01", round_id="r1", venue="Antalya", level="ministerial"))
        assert w.view().rounds[0].state == "scheduled"
        w.then(cmd("round.held", round_id="r1", summary="first ministerial contact"), "round.held")
        [r] = w.view().rounds
        assert (r.state, r.venue, r.summary, r.occurred_on) == ("held", "Antalya", "first ministerial contact", "2022-03-10")

    def test_round_id_generated_when_omitted(self):
        w = given()
        [event] = w.decide(cmd("round.scheduled", venue="Minsk", level="technical"))
        assert event.data.round_id.startswith("gen-")

    def test_cancelled(self):
        w = given(cmd("round.scheduled", round_id="r1", venue="Minsk", level="technical"))
        w.then(cmd("round.cancelled", round_id="r1", reason="shelling"), "round.cancelled")
        assert w.view().rounds[0].state == "cancelled"

    @pytest.mark.parametrize(
        "command, error, pointer",
        [
            (cmd("round.held", round_id="r2", level="delegation"), errors.MissingDetail, "/venue"),
            (cmd("round.scheduled", round_id="r2", venue="Minsk"), errors.MissingDetail, "/level"),
            (cmd("round.scheduled", round_id="r1", venue="Minsk", level="technical"), errors.ItemIdReused, "/round_id"),
            (cmd("round.held", round_id="r1"), errors.InvalidTransition, "/round_id"),
            (cmd("round.cancelled", round_id="r1"), errors.InvalidTransition, "/round_id"),
            (cmd("round.cancelled", round_id="nope"), errors.UnknownRound, "/round_id"),
            (cmd("round.held", round_id="r2", venue="Minsk", level="technical", participants=["RU", "FR"]), errors.UnknownParty, "/participants/1"),
            (cmd("round.held", round_id="r2", venue="Minsk", level="technical", participants=["RU", "RU"]), errors.DuplicateParty, "/participants/1"),
            (cmd("round.held", round_id="r2", venue="Minsk", level="technical", mediator="FR"), errors.UnknownParty, "/mediator"),
            (cmd("round.held", round_id="r2", venue="Minsk", level="technical", issues=["nope"]), errors.UnknownIssue, "/issues/0"),
        ],
    )
    def test_refused_after_a_held_round(self, command, error, pointer):
        given(cmd("round.held", **self.HELD)).refuses(command, error, pointer)


class TestLifecycle:
    def test_suspended_resumed_concluded(self):
        w = given()
        w.then(cmd("negotiation.suspended", reason="talks broke off"), "negotiation.suspended")
        assert w.view().status == "suspended"
        w.then(cmd("negotiation.resumed"), "negotiation.resumed")
        assert w.view().status == "active"
        w.then(cmd("negotiation.concluded", "2022-04-01", outcome="no agreement"), "negotiation.concluded")
        v = w.view()
        assert (v.status, v.outcome) == ("concluded", "no agreement")

    def test_cannot_suspend_twice_or_resume_an_active_negotiation(self):
        given(cmd("negotiation.suspended")).refuses(cmd("negotiation.suspended"), errors.NegotiationSuspended)
        given().refuses(cmd("negotiation.resumed"), errors.NegotiationNotSuspended)

    def test_concluded_refuses_later_facts_but_accepts_backfill_and_corrections(self):
        w = given(cmd("negotiation.concluded", "2022-04-01"))
        w.refuses(cmd("party.joined", "2022-04-02", party={"code": "BY", "name": "Belarus"}), errors.NegotiationConcluded, "/occurred_on")
        w.refuses(cmd("negotiation.concluded", "2022-04-01"), errors.NegotiationConcluded)
        w.refuses(cmd("negotiation.suspended", "2022-03-01"), errors.NegotiationConcluded)
        w.refuses(cmd("negotiation.resumed", "2022-03-01"), errors.NegotiationConcluded)
        # a fact that happened before the conclusion, reported late
        w.then(cmd("party.joined", "2022-03-01", party={"code": "BY", "name": "Belarus"}, role="host"), "party.joined")
        w.then(cmd("party.joined", "2022-04-01T18:00:00+03:00", party={"code": "UN", "name": "UN"}, role="observer"), "party.joined")
        w.then(cmd("record.retracted", "2022-05-01", event_id=str(w.last().id), reason="misreported"), "record.retracted")


class TestStatements:
    def test_negotiation_level_statement(self):
        [event] = given().then(cmd("statement.made", speaker="Sergey Lavrov", party="RU", summary="difficult", assessment="neutral"), "statement.made")
        assert event.stream == "negotiation"

    def test_issue_level_statement_goes_to_the_issue_stream(self):
        w = given(cmd("issue.raised", issue="neutral-status", title="Neutral status", category="political_status"))
        [event] = w.then(cmd("statement.made", speaker="Zelensky", party="UA", issue="neutral-status", summary="open to it"), "statement.made")
        assert (event.stream, event.issue_key) == ("issue", "neutral-status")

    def test_statement_names_known_party_and_issue(self):
        given().refuses(cmd("statement.made", speaker="x", party="FR", summary="s"), errors.UnknownParty, "/party")
        given().refuses(cmd("statement.made", speaker="x", issue="nope", summary="s"), errors.UnknownIssue, "/issue")


class TestExpectedVersion:
    def test_matches_the_target_stream(self):
        w = given()
        w.then(cmd("negotiation.suspended", expected_version=1), "negotiation.suspended")
        err = w.refuses(cmd("negotiation.resumed", expected_version=1), errors.VersionConflict, "/expected_version")
        assert err.extra == {"current_version": 2}

    def test_new_issue_stream_is_at_zero(self):
        w = given()
        w.then(cmd("issue.raised", issue="a", title="A", category="other", expected_version=0), "issue.raised")
        w.then(cmd("ceasefire.proposed", by="RU", scope="general", expected_version=0), "issue.raised", "ceasefire.proposed")
        w.refuses(cmd("position.stated", issue="a", party="RU", stance="demands", summary="s", expected_version=0), errors.VersionConflict)
