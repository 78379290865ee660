"""Tampering by someone who can switch the append-only trigger off: the database
check (`GET /audit/verify`, service.audit.log) and the offline check of an export
(service.audit.offline) both name exactly the event that was touched."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest

from service.audit import log as audit_log
from service.audit.ledger import Sealer, ledger_key
from service.audit.offline import verify_export
from service.config import Settings
from service.store.event_store import EventStore

from .conftest import Writer


async def superuser_sql(pool: asyncpg.Pool, sql: str, *args: object) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_no_update_delete")


async def export(pool: asyncpg.Pool) -> list[bytes]:
    return b"".join([chunk async for chunk in audit_log.export_lines(EventStore(pool), page_size=4)]).splitlines()


async def test_an_untouched_log_verifies(pool: asyncpg.Pool, writer: Writer) -> None:
    await writer.write(10)
    report = await audit_log.verify_store(EventStore(pool))
    assert report.ok and report.events == 10 and report.streams == 3
    assert verify_export(await export(pool)).ok


async def test_one_byte_changed_names_exactly_that_event(
    pool: asyncpg.Pool, store: EventStore, writer: Writer, settings: Settings
) -> None:
    events = await writer.write(9)
    await Sealer(pool, ledger_key(settings)).seal_once()
    victim = events[4]
    body = victim.body
    at = body.index(b'"n":4') + 4  # the digit of the fact's own field
    forged = body[:at] + b"7" + body[at + 1 :]
    await superuser_sql(pool, "UPDATE events SET body = $2 WHERE id = $1", victim.id, forged)

    report = await audit_log.verify_store(EventStore(pool))
    assert not report.ok and report.mismatch_count == 1, report
    problem = report.first_mismatch
    assert problem is not None and problem.kind == "hash_mismatch"
    assert (problem.event_id, problem.stream_id, problem.version) == (victim.id, victim.stream_id, victim.version)
    assert problem.stored_hash == victim.hash.hex() and problem.expected_hash != problem.stored_hash

    offline = verify_export(await export(pool))
    assert not offline.ok and offline.mismatch_count == 1
    assert offline.first_mismatch is not None and offline.first_mismatch.kind == "hash_mismatch"
    assert offline.first_mismatch.event_id == victim.id and offline.first_mismatch.line == 5


async def test_a_rehashed_forgery_is_caught_by_the_ledger_and_the_next_link(
    pool: asyncpg.Pool, writer: Writer, settings: Settings
) -> None:
    events = await writer.write(9)
    await Sealer(pool, ledger_key(settings)).seal_once()
    victim = events[1]  # stream 1, version 1: its successor is events[4]
    from service.store.event_store import ZERO_HASH, chain_hash

    forged = victim.body.replace(b'"n":1', b'"n":8')
    await superuser_sql(
        pool, "UPDATE events SET body = $2, hash = $3 WHERE id = $1", victim.id, forged, chain_hash(ZERO_HASH, forged)
    )
    report = await audit_log.verify_store(EventStore(pool))
    kinds = {(p.kind, p.event_id) for p in report.mismatches}
    assert ("ledger_mismatch", victim.id) in kinds
    assert ("hash_mismatch", events[4].id) in kinds  # the next event no longer chains


async def test_a_deleted_event_is_detected(pool: asyncpg.Pool, writer: Writer, settings: Settings) -> None:
    events = await writer.write(9)
    await Sealer(pool, ledger_key(settings)).seal_once()
    deleted = events[3]  # stream 0, version 2
    await superuser_sql(pool, "DELETE FROM events WHERE id = $1", deleted.id)

    report = await audit_log.verify_store(EventStore(pool))
    kinds = {(p.kind, p.event_id) for p in report.mismatches}
    assert ("version_gap", events[6].id) in kinds  # stream 0 jumps from version 1 to 3
    assert ("missing_event", deleted.id) in kinds  # and the ledger sealed it

    offline = verify_export(await export(pool))
    assert not offline.ok
    # The export skips leaf 3 (the next line carries leaf 4), and stream 0 skips version 2.
    assert {(p.kind, p.event_id) for p in offline.mismatches} == {
        ("leaf_order", events[4].id), ("version_gap", events[6].id)
    }


async def test_a_deleted_last_event_shows_at_the_stream_head(pool: asyncpg.Pool, writer: Writer) -> None:
    events = await writer.write(6)
    await superuser_sql(pool, "DELETE FROM events WHERE id = $1", events[-1].id)
    report = await audit_log.verify_store(EventStore(pool))
    assert [p.kind for p in report.mismatches] == ["head_mismatch"]
    assert report.mismatches[0].stream_id == events[-1].stream_id


@pytest.mark.parametrize("swap", [(2, 3), (1, 4)])  # other streams / the same stream
async def test_reordered_lines_in_an_export_are_detected(
    pool: asyncpg.Pool, writer: Writer, swap: tuple[int, int]
) -> None:
    await writer.write(6)
    lines = await export(pool)
    i, j = swap
    lines[i], lines[j] = lines[j], lines[i]
    report = verify_export(lines)
    assert not report.ok
    assert ("out_of_order", j + 1) in {(p.kind, p.line) for p in report.mismatches}


async def test_an_envelope_that_disagrees_with_its_body_is_detected(pool: asyncpg.Pool, writer: Writer) -> None:
    await writer.write(3)
    lines = await export(pool)
    lines[1] = lines[1].replace(b'"recorded_by":"test"', b'"recorded_by":"someone else"', 1)
    report = verify_export(lines)
    assert report.first_mismatch is not None and report.first_mismatch.kind == "body_mismatch"
    assert "recorded_by" in report.first_mismatch.detail and report.first_mismatch.line == 2


async def test_a_stream_whose_versions_commit_out_of_order_still_verifies(pool: asyncpg.Pool, writer: Writer) -> None:
    # Under writers queueing on one stream, version 2 can come before version 1 in
    # the log's (txid, position) order; the export is then in that order.
    await writer.write(6)
    lines = await export(pool)
    first, second = msgspec.json.decode(lines[0]), msgspec.json.decode(lines[3])  # stream 0, versions 1 and 2
    assert (first["stream_id"], first["version"], second["version"]) == (second["stream_id"], 1, 2)
    first["checkpoint"], second["checkpoint"] = second["checkpoint"], first["checkpoint"]
    reordered = [msgspec.json.encode(second), lines[1], lines[2], msgspec.json.encode(first), *lines[4:]]
    # Line 1 now carries the later checkpoint than line 2, 3: keep commit order increasing.
    tokens = sorted((msgspec.json.decode(line)["checkpoint"] for line in reordered),
                    key=lambda t: tuple(map(int, t.split("."))))
    fixed = []
    for line, token in zip(reordered, tokens):
        event = msgspec.json.decode(line)
        event["checkpoint"] = token
        fixed.append(msgspec.json.encode(event))
    report = verify_export(fixed)
    assert report.ok, report
