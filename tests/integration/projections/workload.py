"""Recording commands the way the API does (decide against the stored streams,
append through the store), and a seeded generator of random valid commands.

Kept here, not borrowed from service.write.commands, so that these tests exercise
the projections against the domain and the store alone.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from domain.commands import Command, OpenNegotiation
from domain.decide import CommandMeta, decide, open_negotiation, target_of
from domain.errors import DomainError
from domain.issue import Issue, issue_stream_id
from domain.negotiation import Negotiation
from projections.records import recorded_from_stored
from service.write.commands import pending_event
from service.store.event_store import AppendResult, ConcurrencyError, EventStore

_ids = itertools.count(1)


def _meta(recorded_at: dt.datetime) -> CommandMeta:
    """As the API decides: with the record time PostgreSQL gives the transaction."""
    return CommandMeta(recorded_by="test", recorded_at=recorded_at, item_id=f"item-{next(_ids)}")


class Recorder:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def open(self, body: dict[str, Any]) -> uuid.UUID:
        command = msgspec.convert(body, OpenNegotiation)
        negotiation_id = uuid.uuid4()
        async with self.store.pool.acquire() as conn, conn.transaction():
            meta = _meta(await self.store.clock(conn))
            [opened] = open_negotiation(command, meta)
            opening = pending_event(
                opened, event_id=uuid.uuid4(), stream_id=negotiation_id, negotiation_id=negotiation_id, meta=meta
            )
            await self.store.append([opening], {negotiation_id: 0}, conn=conn)
        return negotiation_id

    async def record(
        self,
        negotiation_id: uuid.UUID,
        body: dict[str, Any],
        attempts: int = 20,
        txid_taken: Callable[[], Awaitable[Any]] | None = None,
    ) -> AppendResult:
        """Raises DomainError when the domain refuses the command.

        `txid_taken`: awaited after the transaction has its id and before the
        streams are read -- as when the API writes an idempotency key first --
        so that others can commit in between with later transaction ids.
        """
        command = msgspec.convert(body, Command)
        for attempt in range(attempts):
            try:
                return await self._attempt(negotiation_id, command, txid_taken)
            except ConcurrencyError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    async def _records(self, conn: Any, stream_id: uuid.UUID) -> list[Any]:
        return [recorded_from_stored(e) for e in await self.store.read_stream(stream_id, conn=conn)]

    async def _attempt(
        self, negotiation_id: uuid.UUID, command: Any, txid_taken: Callable[[], Awaitable[Any]] | None
    ) -> AppendResult:
        async with self.store.pool.acquire() as conn, conn.transaction():
            if txid_taken is not None:
                await conn.fetchval("SELECT pg_current_xact_id()")
                await txid_taken()
            negotiation_records = await self._records(conn, negotiation_id)
            negotiation = Negotiation.from_events(negotiation_records)
            keys = {
                r["key"]
                for r in await conn.fetch(
                    "SELECT data->>'issue' AS key FROM events WHERE negotiation_id = $1 AND type = 'issue.raised'",
                    negotiation_id,
                )
            }
            target = target_of(command)
            issue_id: uuid.UUID | None = None
            if isinstance(target, tuple) and target[0] == "issue":
                issue_id = issue_stream_id(negotiation_id, target[1])
            elif isinstance(target, tuple) and target[0] == "event":
                row = await conn.fetchrow("SELECT stream_id, stream_type FROM events WHERE id = $1", target[1])
                if row is not None and row["stream_type"] == "issue":
                    issue_id = row["stream_id"]
            issue_records = await self._records(conn, issue_id) if issue_id is not None else []
            issue = Issue.from_events(issue_records) if issue_records else None
            decided = decide(command, negotiation=negotiation, issue=issue, known_issues=frozenset(keys), meta=(meta := _meta(await self.store.clock(conn))))
            versions = {negotiation_id: negotiation_records[-1].version}
            pending = []
            for event in decided:
                if event.stream == "negotiation":
                    stream_id = negotiation_id
                else:
                    stream_id = issue_stream_id(negotiation_id, event.issue_key or "")
                    versions.setdefault(stream_id, len(issue_records) if stream_id == issue_id else 0)
                pending.append(
                    pending_event(
                        event, event_id=uuid.uuid4(), stream_id=stream_id, negotiation_id=negotiation_id, meta=meta
                    )
                )
            expected = {p.stream_id: versions[p.stream_id] for p in pending}
            return await self.store.append(pending, expected, conn=conn)


# --- a seeded random workload ------------------------------------------------------------

PARTIES = ["RU", "UA", "TR", "UN"]
KEYS = ["neutral-status", "security-guarantees", "prisoners", "ceasefire", "humanitarian-corridors"]
STANCES = ["demands", "proposes", "supports", "accepts", "open_to", "conditional", "opposes", "rejects"]


class RandomWorkload:
    """Random commands, most of them valid; the domain refuses the rest (skipped)."""

    def __init__(self, recorder: Recorder, seed: int) -> None:
        self.recorder = recorder
        self.random = random.Random(seed)
        self.negotiations: dict[uuid.UUID, dict[str, Any]] = {}
        self.recorded = 0
        self.refused = 0

    async def open(self, index: int) -> uuid.UUID:
        negotiation_id = await self.recorder.open(
            {
                "title": f"Talks number {index}",
                "slug": f"talks-{index}-{self.random.randrange(10**6)}",
                "parties": [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}],
                "mediators": [{"code": "TR", "name": "Turkey"}],
                "occurred_on": "2022-02-28",
            }
        )
        self.negotiations[negotiation_id] = {"proposals": [], "ceasefires": [], "corridors": [], "events": [], "day": 1}
        self.recorded += 1
        return negotiation_id

    def command(self, known: dict[str, Any]) -> dict[str, Any]:
        r = self.random
        known["day"] = min(known["day"] + r.randrange(2), 28)
        day = f"2022-03-{known['day']:02d}"
        if r.random() < 0.2:
            day += f"T{r.randrange(24):02d}:{r.randrange(60):02d}:00+03:00"
        who, other = r.sample(["RU", "UA"], 2)
        key = r.choice(KEYS[:3])
        n = next(_ids)
        choice = r.randrange(16)
        if choice == 0:
            return {"type": "issue.raised", "occurred_on": day, "issue": key, "title": key.title(), "category": "other"}
        if choice == 1:
            return {"type": "position.stated", "occurred_on": day, "issue": key, "party": who,
                    "stance": r.choice(STANCES), "summary": f"position {n}"}
        if choice == 2:
            known["proposals"].append((key, f"p{n}"))
            return {"type": "proposal.made", "occurred_on": day, "issue": key, "proposal_id": f"p{n}", "by": who,
                    "to": [other], "summary": f"proposal {n}"}
        if choice == 3 and known["proposals"]:
            issue, proposal = r.choice(known["proposals"])
            step = r.choice(["accepted", "rejected", "withdrawn"])
            return {"type": f"proposal.{step}", "occurred_on": day, "issue": issue, "proposal_id": proposal,
                    "by": r.choice(["RU", "UA"])}
        if choice == 4:
            known["ceasefires"].append(f"c{n}")
            body = {"occurred_on": day, "ceasefire_id": f"c{n}", "scope": "local", "area": f"area {n}"}
            if r.random() < 0.5:
                return {**body, "type": "ceasefire.proposed", "by": who}
            return {**body, "type": "ceasefire.agreed", "parties": ["RU", "UA"]}
        if choice == 5 and known["ceasefires"]:
            step = r.choice(["agreed", "rejected", "violated", "ended"])
            body = {"type": f"ceasefire.{step}", "occurred_on": day, "ceasefire_id": r.choice(known["ceasefires"])}
            body.update({"agreed": {"parties": ["RU", "UA"]}, "rejected": {"by": who},
                         "violated": {"alleged_by": who, "against": [other]}, "ended": {"reason": "expired"}}[step])
            return body
        if choice == 6:
            known["corridors"].append(f"k{n}")
            body = {"occurred_on": day, "corridor_id": f"k{n}", "from": "A", "to": "B"}
            if r.random() < 0.5:
                return {**body, "type": "corridor.proposed", "by": who}
            return {**body, "type": "corridor.agreed", "parties": ["RU", "UA"]}
        if choice == 7 and known["corridors"]:
            step = r.choice(["agreed", "rejected", "opened", "violated", "closed"])
            body = {"type": f"corridor.{step}", "occurred_on": day, "corridor_id": r.choice(known["corridors"])}
            body.update({"agreed": {"parties": ["RU", "UA"]}, "rejected": {"by": who},
                         "violated": {"alleged_by": who, "against": [other]}}.get(step, {}))
            return body
        if choice == 8:
            return {"type": "agreement.reached", "occurred_on": day, "issue": key, "agreement_id": f"a{n}",
                    "level": r.choice(["in_principle", "final"]), "parties": ["RU", "UA"], "summary": f"agreement {n}"}
        if choice == 9:
            return {"type": "issue.discussed", "occurred_on": day, "issue": key, "summary": f"talked {n}"}
        if choice == 10:
            return {"type": "round.held", "occurred_on": day, "round_id": f"r{n}", "venue": "Istanbul",
                    "level": "delegation", "format": "in_person", "participants": ["RU", "UA"]}
        if choice == 11:
            return {"type": "statement.made", "occurred_on": day, "speaker": "someone", "party": who,
                    "summary": f"said {n}", **({"issue": key} if r.random() < 0.5 else {})}
        if choice == 12 and known["events"]:
            return {"type": "record.retracted", "occurred_on": day, "event_id": str(r.choice(known["events"])),
                    "reason": "misreported"}
        if choice == 13 and known["events"]:
            return {"type": "claim.disputed", "occurred_on": day, "event_id": str(r.choice(known["events"])),
                    "by": other, "summary": "did not happen"}
        if choice == 14:
            return {"type": r.choice(["issue.dropped", "issue.reopened"]), "occurred_on": day, "issue": key}
        return {"type": "party.joined", "occurred_on": day, "party": {"code": f"P{n}", "name": f"Party {n}"},
                "role": r.choice(["observer", "guarantor"])}

    async def step(self, negotiation_id: uuid.UUID) -> None:
        known = self.negotiations[negotiation_id]
        try:
            result = await self.recorder.record(negotiation_id, self.command(known))
        except DomainError:
            self.refused += 1
            return
        self.recorded += len(result.events)
        known["events"].extend(e.id for e in result.events)

    async def run(self, negotiations: int, commands: int) -> None:
        ids = [await self.open(i) for i in range(negotiations)]
        for _ in range(commands):
            await self.step(self.random.choice(ids))
