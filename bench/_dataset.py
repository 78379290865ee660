"""Large, valid logs, fast.

A template negotiation is recorded the real way (domain decide through
`service.write.commands.CommandService` and the event store). It is then cloned under new
negotiation, stream and event ids: every clone's bodies are re-encoded canonically
and re-chained with the store's own functions (`canonical_body`, `chain_hash`,
`content_digest`), and COPYed in. The result is what the store would have written
for the same commands, recorded many times over, in a fraction of the time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import msgspec

from domain.commands import Command, OpenNegotiation
from domain.issue import issue_stream_id
from service.write.commands import CommandService
from service.write.requests import OpenRequest, RecordRequest
from service.db import create_pool
from service.store.event_store import (
    ZERO_HASH,
    EventStore,
    PendingEvent,
    StoredEvent,
    canonical_body,
    chain_hash,
    content_digest,
)

ISSUE_KEYS = [f"issue-{i}" for i in range(8)]
CATEGORIES = ["security_guarantees", "political_status", "territory", "humanitarian", "prisoners_detainees"]
TEMPLATE_SLUG = "bench-template"


def _commands(rounds: int) -> list[list[dict]]:
    """A negotiation's worth of commands: issues raised, then rounds of positions,
    proposals answered, discussions and local ceasefires (each a list recorded as one
    request)."""
    day = lambda n: f"2022-03-{1 + n % 28:02d}"  # noqa: E731
    requests: list[list[dict]] = [
        [{"type": "issue.raised", "occurred_on": day(0), "issue": key, "title": f"Issue {i}",
          "category": CATEGORIES[i % len(CATEGORIES)]}]
        for i, key in enumerate(ISSUE_KEYS)
    ]  # fmt: skip
    for n in range(rounds):
        for i, key in enumerate(ISSUE_KEYS):
            proposal = f"p{n}-{i}"
            requests.append(
                [
                    {"type": "position.stated", "occurred_on": day(n), "issue": key, "party": "RU",
                     "stance": "demands", "summary": f"Russia's position {n} on {key}", "claimed_by": ["RU"],
                     "source": {"outlet": "RBC", "speaker": "Sergey Lavrov", "published_on": day(n)}},
                    {"type": "position.stated", "occurred_on": day(n), "issue": key, "party": "UA",
                     "stance": "conditional", "summary": f"Ukraine's position {n} on {key}",
                     "conditions": ["security guarantees first"]},
                    {"type": "proposal.made", "occurred_on": day(n), "issue": key, "proposal_id": proposal,
                     "by": "RU", "to": ["UA"], "summary": f"Proposal {proposal}"},
                    {"type": "proposal.rejected" if n % 3 else "proposal.accepted", "occurred_on": day(n + 1),
                     "issue": key, "proposal_id": proposal, "by": "UA"},
                    {"type": "issue.discussed", "occurred_on": day(n + 1), "issue": key,
                     "summary": f"Discussed in round {n}", "assessment": "neutral"},
                ]
            )  # fmt: skip
        requests.append(
            [
                {"type": "ceasefire.proposed", "occurred_on": day(n), "ceasefire_id": f"c{n}", "by": "UA",
                 "scope": "local", "area": f"Sector {n}"},
                {"type": "ceasefire.agreed", "occurred_on": day(n + 1), "ceasefire_id": f"c{n}",
                 "parties": ["RU", "UA"], "scope": "local", "area": f"Sector {n}"},
            ]
        )  # fmt: skip
    return requests


async def record_template(url: str, rounds: int = 24) -> tuple[uuid.UUID, list[StoredEvent]]:
    """Record one negotiation through the command service; returns its events in log
    order. 24 rounds make ~1,000 events."""
    pool = await create_pool(url)
    try:
        store = EventStore(pool)
        service = CommandService(store)
        opened = await service.open(OpenRequest(
            msgspec.convert(
                {"title": "Benchmark template", "slug": TEMPLATE_SLUG, "occurred_on": "2022-02-28",
                 "parties": [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}],
                 "mediators": [{"code": "TR", "name": "Turkey"}]},
                OpenNegotiation,
            ),
            "bench",
        ))  # fmt: skip
        negotiation_id = uuid.UUID(msgspec.json.decode(opened.body)["negotiation_id"])
        for request in _commands(rounds):
            commands = [msgspec.convert(c, Command) for c in request]
            await service.record(RecordRequest(negotiation_id, commands, "bench", batch=len(commands) > 1))
        events = await store.read_log(limit=10**7)
        return negotiation_id, events
    finally:
        await pool.close()


_COLUMNS = (
    "id", "stream_id", "stream_type", "negotiation_id", "version", "type", "schema_version", "body", "data",
    "occurred_on", "recorded_at", "recorded_by", "claimed_by", "source", "note", "correlation_id",
    "causation_id", "content_digest", "hash",
)  # fmt: skip


def _clone_rows(
    template_id: uuid.UUID, template: list[StoredEvent], copy: int, recorded_at: dt.datetime
) -> tuple[list[tuple], list[tuple]]:
    """The template's events as new rows, recorded at `recorded_at` (the inserting
    transaction's now(): the events_recorded_at_is_postgres_time trigger refuses any other)."""
    negotiation_id = uuid.uuid4()
    streams = {template_id: negotiation_id}
    for key in ISSUE_KEYS + ["ceasefire", "humanitarian-corridors"]:
        streams[issue_stream_id(template_id, key)] = issue_stream_id(negotiation_id, key)
    old_slug, new_slug = f'"{TEMPLATE_SLUG}"'.encode(), f'"{TEMPLATE_SLUG}-{copy}"'.encode()
    heads: dict[uuid.UUID, tuple[int, bytes, str]] = {}
    rows = []
    for event in template:
        stream_id = streams[event.stream_id]
        data = event.data.replace(old_slug, new_slug) if event.type == "negotiation.opened" else event.data
        pending = PendingEvent(
            id=uuid.uuid4(), stream_id=stream_id, stream_type=event.stream_type, type=event.type,
            schema_version=event.schema_version, data=data, occurred_on=event.occurred_on,
            recorded_by=event.recorded_by, recorded_at=recorded_at, negotiation_id=negotiation_id,
            claimed_by=event.claimed_by, source=event.source, note=event.note,
        )  # fmt: skip
        version, previous, _ = heads.get(stream_id, (0, ZERO_HASH, event.stream_type))
        body = canonical_body(pending, event.version)
        digest = chain_hash(previous, body)
        heads[stream_id] = (event.version, digest, event.stream_type)
        rows.append(
            (
                pending.id, stream_id, event.stream_type, negotiation_id, event.version, event.type,
                event.schema_version, body, data.decode(), event.occurred_on, recorded_at,
                event.recorded_by, list(event.claimed_by),
                msgspec.json.encode(event.source).decode() if event.source is not None else None,
                event.note, None, None, content_digest(pending), digest,
            )
        )  # fmt: skip
    stream_rows = [(s, t, negotiation_id, v, h) for s, (v, h, t) in heads.items()]
    return rows, stream_rows


async def clone(url: str, template_id: uuid.UUID, template: list[StoredEvent], copies: int, progress=None) -> int:
    """COPY `copies` clones of the template negotiation in; returns events written."""
    written = 0
    conn = await asyncpg.connect(url)
    try:
        chunk = max(1, 50_000 // len(template))
        for start in range(0, copies, chunk):
            events: list[tuple] = []
            streams: list[tuple] = []
            # One transaction per chunk: one txid, positions in order, like a big append.
            async with conn.transaction():
                now = await conn.fetchval("SELECT now()")
                for copy in range(start, min(start + chunk, copies)):
                    rows, stream_rows = _clone_rows(template_id, template, copy, now)
                    events += rows
                    streams += stream_rows
                await conn.copy_records_to_table("events", records=events, columns=_COLUMNS)
                await conn.copy_records_to_table(
                    "streams", records=streams, columns=("stream_id", "stream_type", "negotiation_id", "version", "head_hash")
                )
            written += len(events)
            if progress:
                progress(f"  {written:,} events")
            await asyncio.sleep(0)
        await conn.execute("ANALYZE events")
        await conn.execute("ANALYZE streams")
    finally:
        await conn.close()
    return written


async def extend_stream(url: str, like: StoredEvent, count: int, dates: list[str]) -> int:
    """Append `count` copies of the event `like` (new ids, occurred_on cycling through
    `dates`) to its stream, chained and versioned as the store would; returns the new
    stream version."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            head = await conn.fetchrow(
                "SELECT version, head_hash FROM streams WHERE stream_id = $1 FOR UPDATE", like.stream_id
            )
            version, previous = head["version"], head["head_hash"]
            now = await conn.fetchval("SELECT now()")
            rows = []
            for n in range(count):
                version += 1
                pending = PendingEvent(
                    id=uuid.uuid4(), stream_id=like.stream_id, stream_type=like.stream_type, type=like.type,
                    schema_version=like.schema_version, data=like.data, occurred_on=dates[n % len(dates)],
                    recorded_by=like.recorded_by, recorded_at=now, negotiation_id=like.negotiation_id,
                    claimed_by=like.claimed_by, source=like.source, note=like.note,
                )  # fmt: skip
                body = canonical_body(pending, version)
                previous = chain_hash(previous, body)
                rows.append(
                    (
                        pending.id, like.stream_id, like.stream_type, like.negotiation_id, version, like.type,
                        like.schema_version, body, like.data.decode(), pending.occurred_on, now,
                        like.recorded_by, list(like.claimed_by),
                        msgspec.json.encode(like.source).decode() if like.source is not None else None,
                        like.note, None, None, content_digest(pending), previous,
                    )
                )  # fmt: skip
            await conn.copy_records_to_table("events", records=rows, columns=_COLUMNS)
            await conn.execute(
                "UPDATE streams SET version = $2, head_hash = $3 WHERE stream_id = $1", like.stream_id, version, previous
            )
            await conn.execute("SELECT pg_notify('parley_events', '')")
        return version
    finally:
        await conn.close()
