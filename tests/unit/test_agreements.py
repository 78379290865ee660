"""Agreements from the table to the ground (DESIGN v2), as decider
specifications grouped by the agreement's starting state: given these facts,
when this command, then exactly these payloads (every field) or this refusal;
and the status each history gives its issues."""

import pytest

from domain import errors
from domain import events as e
from tests.unit.spec import at, cmd, given

LAND = "land"
VICTIMS = "victims"
LAND_RAISED = e.IssueRaised(issue=LAND, title="Rural reform", category="land")
VICTIMS_RAISED = e.IssueRaised(issue=VICTIMS, title="Victims", category="victims")

# One final agreement covering two issues, as recorded on each of them.
BOTH = [LAND, VICTIMS]


def reached(key, aid="a1", level="final", parties=("RU", "UA"), issues=BOTH):
    return e.AgreementReached(
        issue=key, agreement_id=aid, level=level, parties=list(parties), summary="final deal", issues=list(issues)
    )


def on_both(payload_of):
    return [payload_of(LAND), payload_of(VICTIMS)]


REACHED = on_both(reached)
START = (LAND_RAISED, VICTIMS_RAISED, *REACHED)


def signed(key, parties=("RU", "UA")):
    return e.AgreementSigned(issue=key, agreement_id="a1", parties=list(parties), venue="Cartagena")


def ratification(kind, key, by="UA", method="referendum", **kw):
    cls = e.AgreementRatified if kind == "ratified" else e.AgreementRejected
    return cls(issue=key, agreement_id="a1", by=by, method=method, **kw)


class TestNoAgreementYet:
    def test_one_agreement_covering_two_issues_is_recorded_on_each(self):
        spec = given(LAND_RAISED, VICTIMS_RAISED).when(
            cmd("agreement.reached", issues=BOTH, agreement_id="a1", level="final", parties=["RU", "UA"], summary="final deal")
        ).then(*REACHED)
        for key in BOTH:
            view = spec.issue(key)
            assert (view.status, view.agreements[0].issues, view.agreements[0].in_force) == ("agreed", BOTH, True)

    def test_one_issue_keeps_the_v1_spelling(self):
        given(LAND_RAISED).when(
            cmd("agreement.reached", issue=LAND, agreement_id="a1", level="final", parties=["RU"], summary="s")
        ).then(e.AgreementReached(issue=LAND, agreement_id="a1", level="final", parties=["RU"], summary="s"))
        assert e.AgreementReached(issue=LAND, agreement_id="a1", level="final", parties=["RU"], summary="s").issues == []

    def test_ids_are_unique_in_the_negotiation_not_only_on_the_issue(self):
        given(*START).when(
            cmd("agreement.reached", issue="ceasefire", agreement_id="a1", level="final", parties=["RU"], summary="s")
        ).refused(errors.ItemIdReused, "/agreement_id")

    @pytest.mark.parametrize(
        "fields, error, pointer",
        [
            ({}, errors.MissingDetail, "/issue"),
            ({"issues": [LAND, "nope"]}, errors.UnknownIssue, "/issues/1"),
            ({"issues": [LAND, LAND]}, errors.DuplicateIssue, "/issues/1"),
            ({"issues": BOTH, "issue": "ceasefire"}, errors.DuplicateIssue, "/issue"),
        ],
    )
    def test_the_issues_it_covers_must_be_raised_and_distinct(self, fields, error, pointer):
        given(LAND_RAISED, VICTIMS_RAISED).when(
            cmd("agreement.reached", level="final", parties=["RU"], summary="s", agreement_id="a9", **fields)
        ).refused(error, pointer)

    @pytest.mark.parametrize("step", ["signed", "ratified", "rejected", "implemented", "withdrawn", "superseded"])
    def test_a_step_on_an_unknown_agreement_is_refused(self, step):
        fields = {
            "signed": {"parties": ["RU"]},
            "ratified": {"by": "RU", "method": "legislature"},
            "rejected": {"by": "RU", "method": "referendum"},
            "implemented": {},
            "withdrawn": {"by": "RU"},
            "superseded": {"by_agreement": "a1"},
        }[step]
        given(*START).when(cmd(f"agreement.{step}", agreement_id="zz", **fields)).refused(
            errors.UnknownAgreement, "/agreement_id"
        )


class TestReached:
    def test_signing_names_only_the_agreement_and_lands_on_every_covered_issue(self):
        spec = given(*START).when(
            cmd("agreement.signed", agreement_id="a1", parties=["RU", "UA"], venue="Cartagena")
        ).then(*on_both(signed))
        a = spec.issue(VICTIMS).agreements[0]
        assert (a.state, a.signed_by, spec.issue(VICTIMS).status) == ("signed", ["RU", "UA"], "agreed")

    def test_ratification_with_method_body_and_result(self):
        spec = given(*START).when(
            cmd("agreement.ratified", agreement_id="a1", by="UA", method="legislature", body="Verkhovna Rada",
                result={"yes": 80.0, "no": 12.5})
        ).then(*on_both(lambda k: ratification(
            "ratified", k, method="legislature", body="Verkhovna Rada", result=e.RatificationResult(yes=80.0, no=12.5)
        )))  # fmt: skip
        [r] = spec.issue(LAND).agreements[0].ratifications
        assert (r.by, r.method, r.body, r.outcome, r.result.yes, r.result.no) == (
            "UA", "legislature", "Verkhovna Rada", "ratified", 80.0, 12.5
        )
        assert spec.issue(LAND).status == "agreed"

    def test_a_referendum_rejecting_it_puts_it_out_of_force(self):
        spec = given(*START).when(
            cmd("agreement.rejected", "2016-10-02", agreement_id="a1", by="UA", method="referendum",
                result={"yes": 49.8, "no": 50.2, "turnout": 37.4})
        ).then(*[at(ratification("rejected", k, result=e.RatificationResult(yes=49.8, no=50.2, turnout=37.4)),
                    "2016-10-02") for k in BOTH])  # fmt: skip
        a = spec.issue(LAND).agreements[0]
        assert (a.state, a.in_force, spec.issue(LAND).status) == ("rejected", False, "rejected")

    def test_a_non_party_cannot_ratify(self):
        given(*START).when(cmd("agreement.ratified", agreement_id="a1", by="TR", method="executive")).refused(
            errors.NotAgreementParty, "/by"
        )

    def test_an_unknown_party_cannot_ratify(self):
        given(*START).when(cmd("agreement.ratified", agreement_id="a1", by="FR", method="executive")).refused(
            errors.UnknownParty, "/by"
        )

    def test_the_same_ratification_twice_is_refused(self):
        given(*START, *on_both(lambda k: ratification("ratified", k, method="legislature"))).when(
            cmd("agreement.ratified", agreement_id="a1", by="UA", method="legislature")
        ).refused(errors.AlreadyRatified, "/by")

    def test_naming_an_issue_it_does_not_cover_is_refused(self):
        given(*START, e.IssueRaised(issue="other", title="o", category="other")).when(
            cmd("agreement.signed", agreement_id="a1", issue="other", parties=["RU"])
        ).refused(errors.UnknownAgreement, "/agreement_id")

    @pytest.mark.parametrize(
        "extent, status", [("minimal", "implementing"), ("intermediate", "implementing"), ("full", "implemented")]
    )
    def test_implementation_extent(self, extent, status):
        spec = given(*START).when(cmd("agreement.implemented", agreement_id="a1", extent=extent)).then(
            *on_both(lambda k: e.AgreementImplemented(issue=k, agreement_id="a1", extent=extent))
        )
        a = spec.issue(LAND).agreements[0]
        assert (a.state, a.implementation.extent, spec.issue(LAND).status) == ("implemented", extent, status)

    def test_implementation_moves_up_and_down(self):
        spec = given(
            *START,
            *[at(e.AgreementImplemented(issue=k, agreement_id="a1", extent="minimal"), "2017-12-01") for k in BOTH],
            *[at(e.AgreementImplemented(issue=k, agreement_id="a1"), "2018-12-01") for k in BOTH],
        )
        assert spec.issue(LAND).status == "implemented"
        spec.when(cmd("agreement.implemented", "2019-12-01", agreement_id="a1", extent="intermediate")).then(
            *[at(e.AgreementImplemented(issue=k, agreement_id="a1", extent="intermediate"), "2019-12-01") for k in BOTH]
        )
        a = spec.issue(VICTIMS).agreements[0]
        assert (a.implementation.extent, a.implementation.occurred_on, spec.issue(VICTIMS).status) == (
            "intermediate", "2019-12-01", "implementing"
        )

    def test_an_agreement_in_principle_is_not_implemented(self):
        given(LAND_RAISED, e.AgreementReached(issue=LAND, agreement_id="p", level="in_principle", parties=["RU"], summary="s")) \
            .when(cmd("agreement.implemented", agreement_id="p")).refused(errors.AgreementNotFinal, "/agreement_id")

    def test_withdrawal_by_one_party_of_several(self):
        three = [reached(k, parties=("RU", "UA", "TR")) for k in BOTH]
        spec = given(LAND_RAISED, VICTIMS_RAISED, *three).when(
            cmd("agreement.withdrawn", "2018-05-08", agreement_id="a1", by="RU", reason="left")
        ).then(*[at(e.AgreementWithdrawn(issue=k, agreement_id="a1", by="RU", reason="left"), "2018-05-08") for k in BOTH])
        a = spec.issue(LAND).agreements[0]
        assert (a.state, a.withdrawn_by, a.in_force, spec.issue(LAND).status) == ("withdrawn", ["RU"], True, "withdrawn")

    def test_withdrawal_by_every_party_but_one_ends_it(self):
        spec = given(*START, *[e.AgreementWithdrawn(issue=k, agreement_id="a1", by="RU") for k in BOTH])
        a = spec.issue(LAND).agreements[0]
        assert (a.in_force, spec.issue(LAND).status) == (False, "under_discussion")

    def test_withdrawing_twice_is_refused(self):
        three = [reached(k, parties=("RU", "UA", "TR")) for k in BOTH]
        given(LAND_RAISED, VICTIMS_RAISED, *three, *[e.AgreementWithdrawn(issue=k, agreement_id="a1", by="RU") for k in BOTH]) \
            .when(cmd("agreement.withdrawn", agreement_id="a1", by="RU")).refused(errors.AlreadyWithdrawn, "/by")

    def test_superseded_by_an_unknown_agreement_is_refused(self):
        given(*START).when(cmd("agreement.superseded", agreement_id="a1", by_agreement="a2")).refused(
            errors.UnknownAgreement, "/by_agreement"
        )

    def test_an_agreement_cannot_supersede_itself(self):
        given(*START).when(cmd("agreement.superseded", agreement_id="a1", by_agreement="a1")).refused(
            errors.InvalidTransition, "/by_agreement"
        )

    def test_violation_of_an_agreement_in_force(self):
        spec = given(*START).when(cmd("agreement.violated", agreement_id="a1", alleged_by="UA", against=["RU"])).then(
            *on_both(lambda k: e.AgreementViolated(issue=k, agreement_id="a1", alleged_by="UA", against=["RU"]))
        )
        assert spec.issue(LAND).status == "violated"


REJECTED = [ratification("rejected", k) for k in BOTH]
RENEGOTIATED = [reached(k, aid="a2") for k in BOTH]
SUPERSEDED = [e.AgreementSuperseded(issue=k, agreement_id="a1", by_agreement="a2") for k in BOTH]


class TestRejected:
    @pytest.mark.parametrize(
        "command",
        [
            cmd("agreement.ratified", agreement_id="a1", by="RU", method="legislature"),
            cmd("agreement.implemented", agreement_id="a1"),
            cmd("agreement.signed", agreement_id="a1", parties=["RU"]),
            cmd("agreement.withdrawn", agreement_id="a1", by="RU"),
        ],
    )
    def test_it_is_out_of_force(self, command):
        given(*START, *REJECTED).when(command).refused(errors.AgreementNotInForce, "/agreement_id")

    def test_a_renegotiated_agreement_supersedes_it(self):
        spec = given(*START, *REJECTED, *RENEGOTIATED).when(
            cmd("agreement.superseded", agreement_id="a1", by_agreement="a2")
        ).then(*SUPERSEDED)
        old, new = spec.issue(LAND).agreements
        assert (old.state, old.superseded_by, old.in_force, new.in_force) == ("superseded", "a2", False, True)
        assert spec.issue(LAND).status == "agreed"


class TestSuperseded:
    def test_ratifying_it_is_refused(self):
        given(*START, *RENEGOTIATED, *SUPERSEDED).when(
            cmd("agreement.ratified", agreement_id="a1", by="RU", method="legislature")
        ).refused(errors.AgreementNotInForce, "/agreement_id")

    def test_superseding_it_again_is_refused(self):
        given(*START, *RENEGOTIATED, *SUPERSEDED).when(
            cmd("agreement.superseded", agreement_id="a1", by_agreement="a2")
        ).refused(errors.AlreadySuperseded, "/agreement_id")


class TestVersionOneIds:
    """Version 1 kept agreement ids unique per issue only: a step then names the issue."""

    def test_an_id_on_two_issues_needs_the_issue(self):
        one = e.AgreementReached(issue=LAND, agreement_id="a1", level="final", parties=["RU"], summary="s")
        other = e.AgreementReached(issue=VICTIMS, agreement_id="a1", level="final", parties=["RU"], summary="s")
        spec = given(LAND_RAISED, VICTIMS_RAISED, one, other)
        spec.when(cmd("agreement.implemented", agreement_id="a1")).refused(errors.AmbiguousAgreement, "/issue")
        spec.when(cmd("agreement.implemented", agreement_id="a1", issue=VICTIMS)).then(
            e.AgreementImplemented(issue=VICTIMS, agreement_id="a1")
        )
        assert (spec.issue(LAND).status, spec.issue(VICTIMS).status) == ("agreed", "implemented")
