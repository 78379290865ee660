"""The working set of one attempt: the states of the streams a request touches,
loaded as committed (from the aggregate cache plus the events after it, or from
the store) and evolved by the events decided so far, so a batch sees its own
earlier commands. Discarded when the attempt fails; cached once it committed.

Decisions read the store, never a projection: they must see every committed fact.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Mapping

import asyncpg
import msgspec

from domain import errors
from domain.commands import CommonFields
from domain.decide import target_of
from domain.issue import Issue, issue_stream_id
from domain.negotiation import Negotiation
from domain.records import Recorded
from projections.records import recorded_from_stored
from service.store.event_store import AppendResult, EventStore
from service.store.events import StoredEvent
from service.write.aggregate_cache import AggregateCache, Turns
from service.write.requests import IfMatch, PreconditionFailed

log = logging.getLogger("parley.commands")


class WorkingSet:
    def __init__(
        self,
        store: EventStore,
        conn: asyncpg.Connection,
        negotiation_id: uuid.UUID,
        cache: AggregateCache | None,
        turns: Turns | None = None,
    ) -> None:
        self.store = store
        self.conn = conn
        self.negotiation_id = negotiation_id
        # Where loaded states come from first (None: straight from the store).
        self.cache = cache
        # The request's turns on issue streams (service.write.aggregate_cache.Turns).
        self.turns = turns
        # What was taken from the cache, as committed (version read, state), and the
        # streams whose state this attempt has evolved since (not to be put back).
        self.taken: dict[uuid.UUID, tuple[int, Negotiation | Issue]] = {}
        self.evolved: set[uuid.UUID] = set()
        self.negotiation: Negotiation
        # PostgreSQL's clock, the same for the whole transaction (read with the negotiation).
        self.clock: dt.datetime
        self.known_issues: set[str] = set()
        self.issues: dict[str, Issue | None] = {}
        # Version of every stream as read from the store: what the append expects.
        self.read_versions: dict[uuid.UUID, int] = {}
        # Current working version of every stream (read version + decided events).
        self.versions: dict[uuid.UUID, int] = {}
        # Events decided in this request, by id: a correction may name one of them.
        self.decided_streams: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}
        # The records the states were evolved with, in order (checked against the
        # stored events before the states are cached).
        self.decided: list[Recorded] = []

    @classmethod
    async def load(
        cls,
        store: EventStore,
        conn: asyncpg.Connection,
        negotiation_id: uuid.UUID,
        cache: AggregateCache | None,
        turns: Turns | None = None,
    ) -> "WorkingSet":
        working = cls(store, conn, negotiation_id, cache, turns)
        await working.load_negotiation()
        return working

    async def load_negotiation(self, issue_keys: Iterable[str] = ()) -> None:
        """The negotiation's state, its raised issues and the clock (first, before any
        issue), in one round trip with the states of the issues named (those not
        waiting for a turn: a long stream's is loaded once its turn has come)."""
        wanted: dict[uuid.UUID, tuple[int, Negotiation | Issue | None]] = {}
        wanted[self.negotiation_id] = self._take(self.negotiation_id, Negotiation)
        streams = {issue_stream_id(self.negotiation_id, key): key for key in issue_keys if key not in self.issues}
        for stream_id in streams:
            if not self._waits_for_turn(stream_id):
                wanted[stream_id] = self._take(stream_id, Issue)
        reads = await self.store.decision_reads(
            self.conn, self.negotiation_id, {stream_id: version + 1 for stream_id, (version, _) in wanted.items()}
        )
        self.clock = reads.clock
        negotiation, version = self._fold(self.negotiation_id, Negotiation, wanted[self.negotiation_id], reads.tails)
        if negotiation is None:
            raise errors.UnknownNegotiation(f"no negotiation {self.negotiation_id}")
        self.negotiation = negotiation  # type: ignore[assignment]
        self.known_issues = reads.raised_issue_keys
        self.read_versions[self.negotiation_id] = self.versions[self.negotiation_id] = version
        for stream_id, key in streams.items():
            if stream_id in wanted:
                self._loaded_issue(key, stream_id, *self._fold(stream_id, Issue, wanted[stream_id], reads.tails))

    def _waits_for_turn(self, stream_id: uuid.UUID) -> bool:
        return self.cache is not None and self.turns is not None and self.cache.is_long(stream_id)

    def _take(
        self, stream_id: uuid.UUID, kind: type[Negotiation] | type[Issue]
    ) -> tuple[int, Negotiation | Issue | None]:
        """The cached fold of a stream to start from (version, state), or (0, None)."""
        held = self.cache.take(stream_id) if self.cache is not None else None
        if held is not None and isinstance(held[1], kind):
            return held
        return 0, None

    def _fold(
        self,
        stream_id: uuid.UUID,
        kind: type[Negotiation] | type[Issue],
        start: tuple[int, Negotiation | Issue | None],
        tails: Mapping[uuid.UUID, list[StoredEvent]],
    ) -> tuple[Negotiation | Issue | None, int]:
        """The fold of a stream as committed now, and its version (None, 0: no such
        stream): the cached fold plus the events after it, or the whole stream."""
        version, aggregate = start
        tail = tails[stream_id]
        if aggregate is not None:
            for event in tail:
                aggregate.apply(recorded_from_stored(event))
            version = tail[-1].version if tail else version
            self.taken[stream_id] = (version, aggregate)
            return aggregate, version
        records = [recorded_from_stored(e) for e in tail]
        if not records or (kind is Negotiation and records[0].type != kind.CREATED_TYPE):
            return None, 0
        return kind.from_events(records), records[-1].version

    async def _state(
        self, stream_id: uuid.UUID, kind: type[Negotiation] | type[Issue]
    ) -> tuple[Negotiation | Issue | None, int]:
        """The fold of a stream as committed now, read alone; an issue after waiting
        for this request's turn on it."""
        start: tuple[int, Negotiation | Issue | None] = (0, None)
        if not self._waits_for_turn(stream_id) or await self.turns.enter(stream_id):  # type: ignore[union-attr]
            # (another request has its turn: work on a fold of our own)
            start = self._take(stream_id, kind)
        tail = await self.store.read_stream(stream_id, start[0] + 1, conn=self.conn)
        return self._fold(stream_id, kind, start, {stream_id: tail})

    def _loaded_issue(self, key: str, stream_id: uuid.UUID, issue: Negotiation | Issue | None, version: int) -> None:
        self.issues[key] = issue  # type: ignore[assignment]
        self.read_versions.setdefault(stream_id, version)
        self.versions.setdefault(stream_id, version)

    async def issue(self, key: str) -> Issue | None:
        if key not in self.issues:
            stream_id = issue_stream_id(self.negotiation_id, key)
            self._loaded_issue(key, stream_id, *await self._state(stream_id, Issue))
        return self.issues[key]

    async def all_issues(self) -> dict[str, Issue]:
        """Every raised issue's state: agreement commands need them all (agreement
        ids are unique in the negotiation; a step names only the agreement)."""
        for key in sorted(self.known_issues):
            await self.issue(key)
        return {key: issue for key, issue in self.issues.items() if issue is not None}

    async def issue_for(self, command: CommonFields) -> Issue | None:
        """The issue state decide needs for this command (None: the negotiation's stream)."""
        target = target_of(command)
        if target == "negotiation":
            return None
        kind, ref = target  # type: ignore[misc]
        if kind == "issue":
            return await self.issue(ref)
        if kind == "agreement":
            # The first issue holding the agreement (decide finds every issue it covers).
            issues = await self.all_issues()
            return next((i for _, i in sorted(issues.items()) if ref in i.state.agreements), None)
        # A correction acts on the stream of the event it names, which must be
        # this negotiation's (possibly decided earlier in this very batch).
        decided = self.decided_streams.get(ref)
        if decided is not None:
            stream_id, stream_type = decided
        else:
            place = await self.store.locate(ref, conn=self.conn)
            if place is None or self.negotiation_id not in (place.negotiation_id, place.stream_id):
                raise errors.UnknownEvent(f"no event {ref} in this negotiation", "/event_id")
            stream_id, stream_type = place.stream_id, place.stream_type
        if stream_type != "issue":
            return None
        key = next((k for k in self.known_issues if issue_stream_id(self.negotiation_id, k) == stream_id), None)
        if key is None:
            raise errors.UnknownEvent(f"no event {ref} in this negotiation", "/event_id")
        return await self.issue(key)

    def next_version(self, stream_id: uuid.UUID) -> int:
        """The version a new event of this stream takes (its read version noted)."""
        version = self.versions.get(stream_id, 0) + 1
        self.versions[stream_id] = version
        self.read_versions.setdefault(stream_id, version - 1)
        return version

    def evolve(self, record: Recorded, stream_type: str) -> None:
        """Apply a decided record to the working state."""
        self.decided.append(record)
        self.decided_streams[record.id] = (record.stream_id, stream_type)
        self.evolved.add(record.stream_id)
        if record.stream_type == "negotiation":
            self.negotiation.apply(record)
            return
        if record.type == "issue.raised":
            key = record.data.issue  # type: ignore[attr-defined]
            self.issues[key] = Issue.from_events([record])
            self.known_issues.add(key)
            return
        for issue in self.issues.values():
            if issue is not None and issue.id == record.stream_id:
                issue.apply(record)
                return
        raise RuntimeError(f"decided an event for stream {record.stream_id} that was not loaded")

    def target_stream(self, command: CommonFields, issue: Issue | None) -> uuid.UUID | None:
        """The stream a command is about (the one a bare `If-Match` names); None
        for an agreement step naming no known agreement."""
        target = target_of(command)
        if target == "negotiation" or (target[0] == "event" and issue is None):  # type: ignore[index]
            return self.negotiation_id
        if target[0] == "issue":  # type: ignore[index]
            return issue_stream_id(self.negotiation_id, target[1])  # type: ignore[index,arg-type]
        return issue.id if issue is not None else None

    def precondition_failure(
        self, command: CommonFields, issue: Issue | None, if_match: IfMatch, before: Mapping[uuid.UUID, int]
    ) -> PreconditionFailed | None:
        stream_id = self.target_stream(command, issue)
        if stream_id is None:  # an agreement step for an agreement that does not exist: its rules say so
            return None
        # The version before this request: a batch on one stream matches as a whole.
        current = before.get(stream_id, 0)
        if not if_match.matches(current):
            return PreconditionFailed(stream_id, str(if_match), current)
        return None

    def put_back_untouched(self) -> None:
        """After a failed attempt: what it took from the cache and did not evolve
        is still the fold of the committed stream at the version it read."""
        if self.cache is None:
            return
        for stream_id, (version, aggregate) in self.taken.items():
            if stream_id not in self.evolved:
                self.cache.put(stream_id, version, aggregate)
        self.taken.clear()

    async def named_precondition_failure(
        self, if_match: IfMatch, before: Mapping[uuid.UUID, int]
    ) -> PreconditionFailed | None:
        """If-Match with status views' ETags: every stream they name must still be
        at a version named for it before this request (`before`: the versions read,
        or, in a group commit, those after the requests decided before it; the
        first that is not is the one the 412 names)."""
        for name in dict.fromkeys(stream for stream, _ in if_match.streams):
            if name is None:
                stream_id = self.negotiation_id
            else:
                await self.issue(name)
                stream_id = issue_stream_id(self.negotiation_id, name)
            current = before.get(stream_id, 0)
            if current not in if_match.versions_for(name):
                return PreconditionFailed(stream_id, str(if_match), current)
        return None

    def keep(self, cache: AggregateCache | None, result: AppendResult) -> None:
        """After the commit: cache every state this request folded, at the version
        it was committed at. A state evolved with a decided record that differs
        from the stored event (other than its position, which folds ignore) is
        not kept: the cache holds only folds of the stored stream."""
        if cache is None or result.replayed:
            return
        stored = {e.id: e for e in result.events}
        unfaithful = set()
        for record in self.decided:
            event = stored.get(record.id)
            if event is None or msgspec.structs.replace(recorded_from_stored(event), position=None) != record:
                log.warning("decided record %s differs from the stored event: not cached", record.id)
                unfaithful.add(record.stream_id)
        states: list[tuple[uuid.UUID, Negotiation | Issue]] = [(self.negotiation_id, self.negotiation)]
        states += [(issue.id, issue) for issue in self.issues.values() if issue is not None]
        for stream_id, aggregate in states:
            if stream_id not in unfaithful:
                cache.put(stream_id, self.versions[stream_id], aggregate)
