"""Recording commands: the application service between the HTTP API and the log.

One request is one PostgreSQL transaction:

1. claim the Idempotency-Key, if any (service.write.idempotency), and replay a stored
   response instead of deciding again;
2. load the state of every stream the commands touch from the store (never from a
   projection: decisions must see every committed fact);
3. `domain.decide.decide` each command in order against working copies of those
   states, so that a batch sees its own earlier commands;
4. append all new events in ONE `EventStore.append`, with the version of every
   written stream as read in step 2, so a concurrent writer makes it fail with
   ConcurrencyError rather than interleave. Steps 2-4 run in a savepoint and are
   retried on fresh state; after a lost race the request locks the heads of the
   streams it writes first, so the retry cannot lose again: a command that named no expected_version
   never sees a spurious conflict, one that did is checked again by decide;
5. store the response under the Idempotency-Key, and commit everything at once.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from domain import errors
from domain.commands import CommonFields, OpenNegotiation, command_type
from domain.decide import CommandMeta, NewEvent, decide, open_negotiation, recorded, target_of
from domain.events import encode_data
from domain.issue import Issue, issue_stream_id
from domain.negotiation import Negotiation
from domain.records import Recorded
from projections.records import recorded_from_stored
from service.write import idempotency
from service.write.restoring import Restoring
from service.write.aggregate_cache import AggregateCache
from service.store.envelope import EventEnvelope, envelope
from service.store.event_store import AppendResult, ConcurrencyError, EventStore, PendingEvent

log = logging.getLogger("parley.commands")

# Appends that lose a race are decided again on fresh state this many times in all.
MAX_ATTEMPTS = 5


class CommandResult(msgspec.Struct, kw_only=True):
    """The response to a recorded command (or batch, or a newly opened negotiation)."""

    negotiation_id: uuid.UUID
    # The stored events, in the order written; generated item ids are in their data.
    events: list[EventEnvelope]
    # Pass as `consistency_token` to a read to see at least this write.
    consistency_token: str


class SlugTaken(Exception):
    def __init__(self, slug: str) -> None:
        super().__init__(f"the slug {slug!r} is taken by another negotiation")
        self.slug = slug


class PreconditionFailed(Exception):
    """If-Match named another version of the stream than the current one."""

    def __init__(self, stream_id: uuid.UUID, expected: str, current: int) -> None:
        super().__init__(f"If-Match {expected} does not match: the stream is at version {current}")
        self.stream_id = stream_id
        self.expected = expected
        self.current = current


class PreconditionNotApplicable(ValueError):
    """If-Match on a request that writes to more than one stream."""


@dataclass(frozen=True)
class Idempotency:
    """An Idempotency-Key and what it protects: scoped to the API key that sent it."""

    scope: str  # the API key's id
    key: str
    request_digest: bytes


@dataclass(frozen=True)
class Outcome:
    """The response to serve: the exact bytes (replayed byte for byte on a retry)."""

    status_code: int
    body: bytes
    headers: dict[str, str]
    replayed: bool = False
    events_written: int = 0


class IfMatch(msgspec.Struct, frozen=True):
    """A parsed If-Match header: `*` (the stream exists) or stream versions."""

    any_version: bool = False
    versions: frozenset[int] = frozenset()

    def matches(self, version: int) -> bool:
        return version > 0 if self.any_version else version in self.versions


_ETAG_VERSION = re.compile(r'^(?:W/)?"(\d{1,9})"$')


def parse_if_match(header: str) -> IfMatch:
    """`If-Match: "7"` (the `version` of a status view), a list of them, or `*`."""
    if header.strip() == "*":
        return IfMatch(any_version=True)
    versions = set()
    for part in header.split(","):
        match = _ETAG_VERSION.match(part.strip())
        if not match:
            raise ValueError('expected a quoted stream version such as "7", a list of them, or *')
        versions.add(int(match[1]))
    return IfMatch(versions=frozenset(versions))


_encoder = msgspec.json.Encoder()


def _item_id(command: CommonFields | OpenNegotiation) -> str:
    # Used by the domain only when the command names no item id of its own:
    # "proposal-3f9c2a1b" reads well in URLs and timelines.
    kind = command_type(command) if isinstance(command, CommonFields) else "negotiation"
    return f"{kind.split('.')[0]}-{secrets.token_hex(4)}"


def pending_event(
    event: NewEvent,
    *,
    event_id: uuid.UUID,
    stream_id: uuid.UUID,
    negotiation_id: uuid.UUID,
    meta: CommandMeta,
    restoring: Restoring | None = None,
) -> PendingEvent:
    """A decided event as the store records it (every event carries its negotiation;
    a re-recorded one its import claim)."""
    return PendingEvent(
        id=event_id,
        stream_id=stream_id,
        stream_type=event.stream,
        type=event.type,
        schema_version=event.schema_version,
        data=encode_data(event.data),
        occurred_on=event.occurred_on,
        recorded_by=meta.recorded_by,
        recorded_at=meta.recorded_at,
        negotiation_id=negotiation_id,
        claimed_by=tuple(event.claimed_by),
        source=msgspec.to_builtins(event.source) if event.source is not None else None,
        note=event.note,
        import_claim=restoring.claim if restoring is not None else None,
    )


@dataclass
class _Working:
    """The states one attempt decides against, loaded from the store and evolved
    by the events decided so far (discarded when the attempt fails)."""

    negotiation_id: uuid.UUID
    negotiation: Negotiation
    known_issues: set[str]
    issues: dict[str, Issue | None] = field(default_factory=dict)
    # Version of every stream as read from the store: what the append expects.
    read_versions: dict[uuid.UUID, int] = field(default_factory=dict)
    # Current working version of every stream (read version + decided events).
    versions: dict[uuid.UUID, int] = field(default_factory=dict)
    # Events decided in this request, by id: a correction may name one of them.
    decided_streams: dict[uuid.UUID, tuple[uuid.UUID, str]] = field(default_factory=dict)
    # The records the states were evolved with, in order (checked against the
    # stored events before the states are cached).
    decided: list[Recorded] = field(default_factory=list)
    # Where loaded states come from first (None: straight from the store).
    cache: AggregateCache | None = None


class CommandService:
    def __init__(self, store: EventStore, cache: AggregateCache | None = None) -> None:
        self.store = store
        self.pool = store.pool
        # Folded aggregates kept between requests (service.write.aggregate_cache); per process.
        self.cache = cache

    # -- opening a negotiation ------------------------------------------------------

    async def open(
        self,
        command: OpenNegotiation,
        *,
        recorded_by: str,
        idempotency_key: Idempotency | None = None,
        restoring: Restoring | None = None,
    ) -> Outcome:
        """`restoring`: the exported event this re-records (service.write.restoring)."""
        outcome = await self._open(
            command, recorded_by=recorded_by, idempotency_key=idempotency_key, restoring=restoring
        )
        await self._wake_readers(outcome)
        return outcome

    async def _open(
        self,
        command: OpenNegotiation,
        *,
        recorded_by: str,
        idempotency_key: Idempotency | None,
        restoring: Restoring | None,
    ) -> Outcome:
        async with self.pool.acquire() as conn, conn.transaction():
            if idempotency_key is not None:
                replay = await self._replay(conn, idempotency_key)
                if replay is not None:
                    return replay
            negotiation_id = restoring.hashed.stream_id if restoring else uuid.uuid4()
            meta = CommandMeta(
                recorded_by=recorded_by, recorded_at=await self.store.clock(conn), item_id=_item_id(command)
            )
            decided = open_negotiation(command, meta)
            if restoring is not None:
                restoring.check(decided, negotiation_id, 1)
            [opened] = decided
            slug = opened.data.slug  # type: ignore[attr-defined]
            reserved = await conn.fetchval(
                """
                INSERT INTO negotiation_slugs (slug, negotiation_id) VALUES ($1, $2)
                ON CONFLICT (slug) DO NOTHING RETURNING slug
                """,
                slug,
                negotiation_id,
            )
            if reserved is None:
                raise SlugTaken(slug)
            pending = pending_event(
                opened,
                event_id=restoring.event_id if restoring else uuid.uuid4(),
                stream_id=negotiation_id,
                negotiation_id=negotiation_id,
                meta=meta,
                restoring=restoring,
            )
            result = await self.store.append([pending], {negotiation_id: 0}, conn=conn, wake_readers=False)
            outcome = self._outcome(
                201, negotiation_id, result, {"Location": f"/negotiations/{negotiation_id}"}
            )
            if idempotency_key is not None:
                await self._remember(conn, idempotency_key, outcome)
            return outcome

    # -- recording commands -------------------------------------------------------------

    async def record(
        self,
        negotiation_id: uuid.UUID,
        commands: Sequence[CommonFields],
        *,
        recorded_by: str,
        batch: bool,
        if_match: IfMatch | None = None,
        idempotency_key: Idempotency | None = None,
        restoring: Restoring | None = None,
    ) -> Outcome:
        """Record `commands` atomically on one negotiation (all or nothing).

        `batch` says whether they came as {"commands": [...]}: errors then point
        into the list (`/commands/3/party`). `restoring`: the exported event the one
        command re-records (service.write.restoring)."""
        outcome = await self._record(
            negotiation_id, commands, recorded_by=recorded_by, batch=batch, if_match=if_match,
            idempotency_key=idempotency_key, restoring=restoring,
        )  # fmt: skip
        await self._wake_readers(outcome)
        return outcome

    async def _wake_readers(self, outcome: Outcome) -> None:
        # After the commit, not inside it: PostgreSQL holds a database-wide lock from a
        # transaction's NOTIFY until its commit is flushed, which serialised every
        # command's commit (bench.http, bench.lag).
        if outcome.events_written:
            await self.store.wake_readers()

    async def _record(
        self,
        negotiation_id: uuid.UUID,
        commands: Sequence[CommonFields],
        *,
        recorded_by: str,
        batch: bool,
        if_match: IfMatch | None,
        idempotency_key: Idempotency | None,
        restoring: Restoring | None = None,
    ) -> Outcome:
        done: list[tuple[_Working, AppendResult]] = []
        outcome = await self._record_committed(
            negotiation_id, commands, recorded_by, batch, if_match, idempotency_key, done, restoring
        )
        if done:  # committed: the evolved states are folds of the committed streams
            self._keep(*done[0])
        return outcome

    async def _record_committed(
        self,
        negotiation_id: uuid.UUID,
        commands: Sequence[CommonFields],
        recorded_by: str,
        batch: bool,
        if_match: IfMatch | None,
        idempotency_key: Idempotency | None,
        done: list[tuple[_Working, AppendResult]],
        restoring: Restoring | None = None,
    ) -> Outcome:
        async with self.pool.acquire() as conn, conn.transaction():
            if idempotency_key is not None:
                replay = await self._replay(conn, idempotency_key)
                if replay is not None:
                    return replay
            written: set[uuid.UUID] = set()
            holding = False
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    async with conn.transaction():  # a savepoint: a lost race leaves nothing
                        # Only the first attempt starts from cached states: a retry
                        # reads whole streams (what it took from the cache is dropped).
                        cache = self.cache if attempt == 1 else None
                        result, working = await self._attempt(
                            conn, negotiation_id, commands, recorded_by, batch, if_match, written, cache, restoring
                        )
                    break
                except (ConcurrencyError, asyncpg.DeadlockDetectedError) as error:
                    if attempt == MAX_ATTEMPTS:
                        raise
                    if isinstance(error, ConcurrencyError) and not holding:
                        # Lost a race: hold the heads of every stream this request
                        # writes until it commits (outside the savepoint, so the locks
                        # survive its rollback). The next attempt decides on the latest
                        # state and no newcomer can overtake it: under contention the
                        # request turns pessimistic instead of failing after N races.
                        # All heads in one statement, in stream id order, as the store
                        # locks them, and only once: locks taken in any other order
                        # could deadlock with another writer's append.
                        await self.store.lock_heads(conn, written)
                        holding = True
                    log.debug("attempt %d lost a race (%s); deciding again", attempt, error)
            outcome = self._outcome(201, negotiation_id, result, {})
            if idempotency_key is not None:
                await self._remember(conn, idempotency_key, outcome)
        # The transaction has committed (an exception would have left before).
        done.append((working, result))
        return outcome

    async def _attempt(
        self,
        conn: asyncpg.Connection,
        negotiation_id: uuid.UUID,
        commands: Sequence[CommonFields],
        recorded_by: str,
        batch: bool,
        if_match: IfMatch | None,
        written: set[uuid.UUID],
        cache: AggregateCache | None = None,
        restoring: Restoring | None = None,
    ) -> tuple[AppendResult, _Working]:
        """One try at deciding and appending; `written` is refilled with the streams
        this try writes (the caller locks them if the try loses a race)."""
        written.clear()
        working = await self._load(conn, negotiation_id, cache)
        # PostgreSQL's clock, the same for the whole transaction (and every attempt).
        recorded_at = await self.store.clock(conn)
        pending: list[PendingEvent] = []
        for index, command in enumerate(commands):
            try:
                issue = await self._issue_for(conn, working, command)
            except errors.DomainError as error:
                raise error.at(f"/commands/{index}") if batch else error
            if if_match is not None:
                # Preconditions come before the command's own rules (RFC 9110 13.2.2).
                failed = self._check_precondition(working, command, issue, if_match)
                if failed is not None:
                    raise failed
            meta = CommandMeta(recorded_by=recorded_by, recorded_at=recorded_at, item_id=_item_id(command))
            try:
                decided = decide(
                    command,
                    negotiation=working.negotiation,
                    issue=issue,
                    known_issues=frozenset(working.known_issues),
                    meta=meta,
                )
            except errors.DomainError as error:
                raise error.at(f"/commands/{index}") if batch else error
            for event in decided:
                stream_id = negotiation_id if event.stream == "negotiation" else issue_stream_id(
                    negotiation_id, event.issue_key or ""
                )
                event_id = restoring.event_id if restoring else uuid.uuid4()
                version = working.versions.get(stream_id, 0) + 1
                if restoring is not None:
                    restoring.check(decided, stream_id, version)
                working.versions[stream_id] = version
                working.read_versions.setdefault(stream_id, version - 1)
                record = recorded(event, id=event_id, stream_id=stream_id, version=version, meta=meta)
                self._evolve(working, record)
                working.decided.append(record)
                working.decided_streams[event_id] = (stream_id, event.stream)
                pending.append(
                    pending_event(
                        event, event_id=event_id, stream_id=stream_id, negotiation_id=negotiation_id, meta=meta,
                        restoring=restoring,
                    )
                )
                written.add(stream_id)
        if if_match is not None and len(written) > 1:
            raise PreconditionNotApplicable("If-Match applies to a request that writes to one stream")
        expected = {stream_id: working.read_versions[stream_id] for stream_id in written}
        return await self.store.append(pending, expected, conn=conn, wake_readers=False), working

    # -- state ------------------------------------------------------------------------

    async def _load(
        self, conn: asyncpg.Connection, negotiation_id: uuid.UUID, cache: AggregateCache | None = None
    ) -> _Working:
        negotiation, version = await self._state(conn, negotiation_id, Negotiation, cache)
        if negotiation is None:
            raise errors.UnknownNegotiation(f"no negotiation {negotiation_id}")
        working = _Working(
            negotiation_id=negotiation_id,
            negotiation=negotiation,  # type: ignore[arg-type]
            known_issues=await self.store.raised_issue_keys(negotiation_id, conn=conn),
            cache=cache,
        )
        working.read_versions[negotiation_id] = working.versions[negotiation_id] = version
        return working

    async def _state(
        self,
        conn: asyncpg.Connection,
        stream_id: uuid.UUID,
        kind: type[Negotiation] | type[Issue],
        cache: AggregateCache | None,
    ) -> tuple[Negotiation | Issue | None, int]:
        """The fold of a stream as committed now, and its version (None, 0: no such
        stream). From a cached fold plus the events after it when there is one."""
        held = cache.take(stream_id) if cache is not None else None
        if held is not None and isinstance(held[1], kind):
            version, aggregate = held
            tail = await self.store.read_stream(stream_id, version + 1, conn=conn)
            for event in tail:
                aggregate.apply(recorded_from_stored(event))
            return aggregate, tail[-1].version if tail else version
        records = await self._stream(conn, stream_id)
        if not records or (kind is Negotiation and records[0].type != kind.CREATED_TYPE):
            return None, 0
        return kind.from_events(records), records[-1].version

    async def _stream(self, conn: asyncpg.Connection, stream_id: uuid.UUID) -> list[Recorded]:
        return [recorded_from_stored(e) for e in await self.store.read_stream(stream_id, conn=conn)]

    async def _load_issue(self, conn: asyncpg.Connection, working: _Working, key: str) -> Issue | None:
        if key not in working.issues:
            stream_id = issue_stream_id(working.negotiation_id, key)
            issue, version = await self._state(conn, stream_id, Issue, working.cache)
            working.issues[key] = issue  # type: ignore[assignment]
            working.read_versions.setdefault(stream_id, version)
            working.versions.setdefault(stream_id, version)
        return working.issues[key]

    def _keep(self, working: _Working, result: AppendResult) -> None:
        """After the commit: cache every state this request folded, at the version
        it was committed at. A state evolved with a decided record that differs
        from the stored event (other than its position, which folds ignore) is
        not kept: the cache holds only folds of the stored stream."""
        if self.cache is None or result.replayed:
            return
        stored = {e.id: e for e in result.events}
        unfaithful = set()
        for record in working.decided:
            event = stored.get(record.id)
            if event is None or msgspec.structs.replace(recorded_from_stored(event), position=None) != record:
                log.warning("decided record %s differs from the stored event: not cached", record.id)
                unfaithful.add(record.stream_id)
        states: list[tuple[uuid.UUID, Negotiation | Issue]] = [(working.negotiation_id, working.negotiation)]
        states += [(issue.id, issue) for issue in working.issues.values() if issue is not None]
        for stream_id, aggregate in states:
            if stream_id not in unfaithful:
                self.cache.put(stream_id, working.versions[stream_id], aggregate)

    async def _issue_for(self, conn: asyncpg.Connection, working: _Working, command: CommonFields) -> Issue | None:
        """The issue state decide needs for this command (None: the negotiation's stream)."""
        target = target_of(command)
        if target == "negotiation":
            return None
        kind, ref = target  # type: ignore[misc]
        if kind == "issue":
            return await self._load_issue(conn, working, ref)
        # A correction acts on the stream of the event it names, which must be
        # this negotiation's (possibly decided earlier in this very batch).
        decided = working.decided_streams.get(ref)
        if decided is not None:
            stream_id, stream_type = decided
        else:
            place = await self.store.locate(ref, conn=conn)
            if place is None or working.negotiation_id not in (place.negotiation_id, place.stream_id):
                raise errors.UnknownEvent(f"no event {ref} in this negotiation", "/event_id")
            stream_id, stream_type = place.stream_id, place.stream_type
        if stream_type != "issue":
            return None
        key = next((k for k in working.known_issues if issue_stream_id(working.negotiation_id, k) == stream_id), None)
        if key is None:
            raise errors.UnknownEvent(f"no event {ref} in this negotiation", "/event_id")
        return await self._load_issue(conn, working, key)

    def _evolve(self, working: _Working, record: Recorded) -> None:
        if record.stream_type == "negotiation":
            working.negotiation.apply(record)
            return
        if record.type == "issue.raised":
            key = record.data.issue  # type: ignore[attr-defined]
            working.issues[key] = Issue.from_events([record])
            working.known_issues.add(key)
            return
        for issue in working.issues.values():
            if issue is not None and issue.id == record.stream_id:
                issue.apply(record)
                return
        raise RuntimeError(f"decided an event for stream {record.stream_id} that was not loaded")

    def _check_precondition(
        self, working: _Working, command: CommonFields, issue: Issue | None, if_match: IfMatch
    ) -> PreconditionFailed | None:
        target = target_of(command)
        if target == "negotiation" or (target[0] == "event" and issue is None):  # type: ignore[index]
            stream_id = working.negotiation_id
        elif target[0] == "issue":  # type: ignore[index]
            stream_id = issue_stream_id(working.negotiation_id, target[1])  # type: ignore[index,arg-type]
        else:
            stream_id = issue.id  # type: ignore[union-attr]
        # The version before this request: a batch on one stream matches as a whole.
        current = working.read_versions.get(stream_id, 0)
        if not if_match.matches(current):
            expected = "*" if if_match.any_version else ", ".join(f'"{v}"' for v in sorted(if_match.versions))
            return PreconditionFailed(stream_id, expected, current)
        return None

    # -- responses and idempotency ---------------------------------------------------

    def _outcome(
        self, status: int, negotiation_id: uuid.UUID, result: AppendResult, headers: dict[str, str]
    ) -> Outcome:
        body = _encoder.encode(
            CommandResult(
                negotiation_id=negotiation_id,
                events=[envelope(e) for e in result.events],
                consistency_token=result.checkpoint.token(),
            )
        )
        return Outcome(status, body, headers, events_written=0 if result.replayed else len(result.events))

    async def _replay(self, conn: asyncpg.Connection, key: Idempotency) -> Outcome | None:
        stored = await idempotency.claim(conn, key.scope, key.key, key.request_digest)
        if stored is None:
            return None
        return Outcome(stored.status_code, stored.body, stored.headers, replayed=True)

    async def _remember(self, conn: asyncpg.Connection, key: Idempotency, outcome: Outcome) -> None:
        await idempotency.remember(
            conn,
            key.scope,
            key.key,
            key.request_digest,
            idempotency.StoredResponse(outcome.status_code, outcome.body, outcome.headers),
        )


__all__: list[Any] = [
    "CommandResult",
    "CommandService",
    "Idempotency",
    "IfMatch",
    "Outcome",
    "PreconditionFailed",
    "PreconditionNotApplicable",
    "SlugTaken",
    "parse_if_match",
]
