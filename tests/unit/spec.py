"""Decider specifications: given(facts) / when(command) / then(facts) or a refusal.

The form of event-driven-io/emmett's ``DeciderSpecification``, for Parley's
streams: the *given* facts are stored payloads (as the log would hold them),
the *when* is a command as a client sends it (a dict), and *then* compares the
payloads the domain decides -- their every field, the stream each goes to and
its world time -- not only their types::

    given(RAISED, at(e.ProposalMade(issue="x", proposal_id="p1", by="RU", summary="s"))) \\
        .when(cmd("proposal.accepted", issue="x", proposal_id="p1", by="UA")) \\
        .then(e.ProposalAccepted(issue="x", proposal_id="p1", by="UA"))

A facts' stream follows from its payload (``STREAM``, ``issue``); the
negotiation is opened first unless the facts start with ``NegotiationOpened``.
Facts get deterministic ids (``spec.ids[i]``: the i-th given fact, the opening
being 0) so corrections can name them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
import pytest

from domain import events as e
from domain.commands import Command
from domain.decide import CommandMeta, NewEvent, decide, stream_state, target_of
from domain.issue import Issue, issue_stream_id
from domain.negotiation import Negotiation
from domain.records import Recorded
from domain.status import IssueView, NegotiationView, fold_issue, fold_negotiation

NEGOTIATION_ID = uuid.UUID("00000000-0000-0000-0000-0000000d0c00")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
DAY = "2022-03-10"

OPENED = e.NegotiationOpened(
    title="Russia-Ukraine talks",
    slug="russia-ukraine-talks",
    parties=[e.PartyRef(code="RU", name="Russia"), e.PartyRef(code="UA", name="Ukraine")],
    mediators=[e.PartyRef(code="TR", name="Turkey")],
)


class Fact(msgspec.Struct, frozen=True):
    """A payload with the envelope fields a spec cares about."""

    data: e.Payload
    occurred_on: str = DAY
    claimed_by: tuple[str, ...] = ()


def at(data: e.Payload, occurred_on: str = DAY, claimed_by: tuple[str, ...] = ()) -> Fact:
    return Fact(data, occurred_on, claimed_by)


def cmd(type_: str, occurred_on: str = DAY, **fields: Any) -> dict[str, Any]:
    """A command as the JSON a client sends (``from`` may be passed as ``from_``)."""
    if "from_" in fields:
        fields["from"] = fields.pop("from_")
    return {"type": type_, "occurred_on": occurred_on, **fields}


def _fact(value: Fact | e.Payload) -> Fact:
    return value if isinstance(value, Fact) else Fact(value)


class Spec:
    def __init__(self, facts: tuple[Fact | e.Payload, ...]) -> None:
        given = [_fact(f) for f in facts]
        if not given or not isinstance(given[0].data, e.NegotiationOpened):
            given.insert(0, Fact(OPENED, "2022-02-28"))
        self.records: list[Recorded] = []
        for fact in given:
            self._record(fact)
        self.ids = [r.id for r in self.records]

    # -- the log ----------------------------------------------------------------------

    def _stream_of(self, data: e.Payload) -> tuple[str, str | None]:
        if data.STREAM == "negotiation":
            return "negotiation", None
        if isinstance(data, (e.RecordRetracted, e.ClaimDisputed)):
            target = next(r for r in self.records if r.id == data.event_id)
            key = getattr(self._raised_of(target.stream_id), "issue", None)
            return (target.stream_type, key)
        key = getattr(data, "issue", None)
        return ("issue", key) if key else ("negotiation", None)

    def _raised_of(self, stream_id: uuid.UUID) -> Any:
        first = next(r for r in self.records if r.stream_id == stream_id)
        return first.data if first.stream_type == "issue" else None

    def _record(self, fact: Fact) -> Recorded:
        stream, key = self._stream_of(fact.data)
        stream_id = NEGOTIATION_ID if stream == "negotiation" else issue_stream_id(NEGOTIATION_ID, key or "")
        n = len(self.records)
        record = Recorded(
            id=uuid.uuid5(NEGOTIATION_ID, f"fact-{n}"),
            stream_id=stream_id,
            stream_type=stream,
            version=sum(1 for r in self.records if r.stream_id == stream_id) + 1,
            type=fact.data.TYPE,
            schema_version=fact.data.class_version,
            occurred_on=fact.occurred_on,
            recorded_at=T0 + dt.timedelta(seconds=n),
            recorded_by="spec",
            data=fact.data,
            claimed_by=fact.claimed_by,
            position=n + 1,
        )
        self.records.append(record)
        return record

    def stream(self, key: str | None = None) -> list[Recorded]:
        stream_id = NEGOTIATION_ID if key is None else issue_stream_id(NEGOTIATION_ID, key)
        return [r for r in self.records if r.stream_id == stream_id]

    def issues(self) -> dict[str, Issue]:
        streams: dict[uuid.UUID, list[Recorded]] = {}
        for r in self.records:
            if r.stream_type == "issue":
                streams.setdefault(r.stream_id, []).append(r)
        states = [stream_state(records) for records in streams.values()]
        return {s.key: s for s in states if isinstance(s, Issue)}

    def issue(self, key: str) -> IssueView:
        return fold_issue(self.stream(key))

    def view(self) -> NegotiationView:
        return fold_negotiation(self.stream())

    # -- when / then -----------------------------------------------------------------

    def when(self, command: Mapping[str, Any]) -> When:
        return When(self, dict(command))

    def decide(self, command: Mapping[str, Any], item_id: str = "gen-1") -> list[NewEvent]:
        cmd_ = msgspec.convert(dict(command), Command)
        issues = self.issues()
        target = target_of(cmd_)
        issue = None
        if isinstance(target, tuple) and target[0] == "issue":
            issue = issues.get(target[1])
        elif isinstance(target, tuple):  # a correction: the stream of the event it names
            stream_id = next((r.stream_id for r in self.records if r.id == target[1]), None)
            issue = next((i for i in issues.values() if i.id == stream_id), None)
        negotiation = Negotiation.from_events(self.stream())
        meta = CommandMeta(recorded_by="spec", recorded_at=T0 + dt.timedelta(days=1), item_id=item_id)
        return decide(
            cmd_, negotiation=negotiation, issue=issue, known_issues=frozenset(issues), meta=meta, issues=issues
        )


class When:
    def __init__(self, spec: Spec, command: dict[str, Any]) -> None:
        self.spec = spec
        self.command = command

    def then(self, *expected: Fact | e.Payload) -> Spec:
        """The command records exactly these facts (every payload field compared),
        each on the stream its payload names; the spec then holds them too."""
        decided = self.spec.decide(self.command)
        wanted = [_fact(f) for f in expected]
        assert [(ev.type, ev.data) for ev in decided] == [(f.data.TYPE, f.data) for f in wanted]
        for ev, fact, given_as in zip(decided, wanted, expected):
            if isinstance(given_as, Fact):  # world time and claims are part of what was expected
                assert (ev.occurred_on, ev.claimed_by) == (fact.occurred_on, fact.claimed_by)
        for ev in decided:
            stream, key = self.spec._stream_of(ev.data)
            assert (ev.stream, ev.issue_key) == (stream, key), f"{ev.type} went to {ev.stream} {ev.issue_key}"
            self.spec._record(Fact(ev.data, ev.occurred_on, ev.claimed_by))
        return self.spec

    def refused(self, error: type[Exception], pointer: str | None = None) -> Exception:
        """The command is refused with this error (and, if given, this pointer)."""
        with pytest.raises(error) as info:
            self.spec.decide(self.command)
        if pointer is not None:
            assert info.value.pointer == pointer  # type: ignore[attr-defined]
        return info.value


def given(*facts: Fact | e.Payload) -> Spec:
    return Spec(facts)
