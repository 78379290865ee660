"""Given / when / then for the domain: prior facts, one command, new facts or a refusal.

Commands are written as the JSON clients send (dicts), so tests read like the API.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
import pytest

from domain.commands import Command, OpenNegotiation
from domain.decide import CommandMeta, NewEvent, decide, open_negotiation, recorded, target_of
from domain.issue import Issue, issue_stream_id
from domain.negotiation import Negotiation
from domain.records import Recorded
from domain.status import IssueView, NegotiationView, fold_issue, fold_negotiation

NS = uuid.UUID("00000000-0000-0000-0000-00000000beef")
T0 = dt.datetime(2022, 3, 16, 12, 0, tzinfo=dt.timezone.utc)
OPENED = {
    "title": "Russia-Ukraine talks",
    "parties": [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}],
    "mediators": [{"code": "TR", "name": "Turkey"}],
    "occurred_on": "2022-02-28",
}


class World:
    """In-memory log + write-side states, fed exactly as the service feeds them."""

    def __init__(self, opened: dict[str, Any] = OPENED) -> None:
        self.records: list[Recorded] = []
        self.issues: dict[str, Issue] = {}
        self._n = 0
        cmd = msgspec.convert(opened, OpenNegotiation)
        self.id = uuid.uuid5(NS, "negotiation")
        first = self._store(open_negotiation(cmd, self.meta()))[0]
        self.negotiation = Negotiation.from_events([first])

    def meta(self) -> CommandMeta:
        return CommandMeta(recorded_by="test", recorded_at=T0 + dt.timedelta(seconds=self._n), item_id=f"gen-{self._n}")

    def decide(self, command: dict[str, Any] | Any) -> list[NewEvent]:
        cmd = msgspec.convert(command, Command) if isinstance(command, dict) else command
        target = target_of(cmd)
        issue = None
        if isinstance(target, tuple) and target[0] == "issue":
            issue = self.issues.get(target[1])
        elif isinstance(target, tuple):  # event: find its stream, as the service does
            stream = next(r.stream_id for r in self.records if r.id == target[1]) if any(
                r.id == target[1] for r in self.records
            ) else None
            issue = next((i for i in self.issues.values() if i.id == stream), None)
        return decide(
            cmd, negotiation=self.negotiation, issue=issue, known_issues=frozenset(self.issues), meta=self.meta(),
            issues=self.issues,
        )  # fmt: skip

    def given(self, *commands: dict[str, Any]) -> World:
        for command in commands:
            self._store(self.decide(command))
        return self

    def _store(self, events: list[NewEvent]) -> list[Recorded]:
        out = []
        meta = self.meta()
        for event in events:
            self._n += 1
            if event.stream == "negotiation":
                stream_id, version = self.id, (self.negotiation.version + 1 if self.records else 1)
            else:
                stream_id = issue_stream_id(self.id, event.issue_key)
                issue = self.issues.get(event.issue_key)
                version = issue.version + 1 if issue else 1
            r = recorded(event, id=uuid.uuid5(NS, str(self._n)), stream_id=stream_id, version=version, meta=meta, position=self._n)
            self.records.append(r)
            if event.stream == "negotiation" and r.version > 1:
                self.negotiation.apply(r)
            elif event.stream == "issue":
                if event.issue_key in self.issues:
                    self.issues[event.issue_key].apply(r)
                else:
                    self.issues[event.issue_key] = Issue.from_events([r])
            out.append(r)
        return out

    # -- then ---------------------------------------------------------------------

    def then(self, command: dict[str, Any], *types: str) -> list[NewEvent]:
        """The command records exactly these event types (and is then applied)."""
        events = self.decide(command)
        assert [e.type for e in events] == list(types)
        self._store(events)
        return events

    def refuses(self, command: dict[str, Any], error: type[Exception], pointer: str | None = None) -> Exception:
        before = len(self.records)
        with pytest.raises(error) as info:
            self.decide(command)
        if pointer is not None:
            assert info.value.pointer == pointer  # type: ignore[attr-defined]
        assert len(self.records) == before
        return info.value

    def last(self, type_: str | None = None) -> Recorded:
        return next(r for r in reversed(self.records) if type_ is None or r.type == type_)

    def issue(self, key: str) -> IssueView:
        return fold_issue(r for r in self.records if r.stream_id == issue_stream_id(self.id, key))

    def view(self) -> NegotiationView:
        return fold_negotiation(r for r in self.records if r.stream_id == self.id)

    def stream(self, key: str | None = None) -> list[Recorded]:
        sid = self.id if key is None else issue_stream_id(self.id, key)
        return [r for r in self.records if r.stream_id == sid]


def given(*commands: dict[str, Any], opened: dict[str, Any] = OPENED) -> World:
    return World(opened).given(*commands)


def cmd(type_: str, occurred_on: str = "2022-03-10", **fields: Any) -> dict[str, Any]:
    return {"type": type_, "occurred_on": occurred_on, **fields}
