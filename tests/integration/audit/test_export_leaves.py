"""Exports carry each event's `leaf_index` and come in leaf order (docs/audit-format.md
§5): the sealed lines 0, 1, 2…, then the unsealed ones (`null`) in commit order;
from the database (`export_lines`, `parley audit export`) and over HTTP
(`GET /audit/export`, `parley audit export --url`). A filtered export keeps the
order and skips the others' leaves; `parley audit verify` holds a whole export to
0, 1, 2… and a filtered one (`--filtered`) to increasing indexes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import msgspec

from service.audit import log as audit_log
from service.audit.ledger import Sealer, ledger_key
from service.audit.offline import verify_export
from service.auth import Role, create_key
from service.cli.parley import main
from service.config import Settings
from service.store.event_store import EventStore, LogFilter
from tests.sealing import seal_everything

from .conftest import Writer


def leaf_indexes(lines: list[bytes]) -> list[int | None]:
    return [msgspec.json.decode(line)["leaf_index"] for line in lines if line.strip()]


async def exported(pool: asyncpg.Pool, where: LogFilter = LogFilter()) -> list[bytes]:
    chunks = [c async for c in audit_log.export_lines(EventStore(pool), where, page_size=4)]
    return b"".join(chunks).splitlines()


async def stored_leaves(pool: asyncpg.Pool) -> dict[str, int]:
    return {str(r["event_id"]): r["index"] for r in await pool.fetch('SELECT event_id, "index" FROM ledger_leaves')}


async def test_sealed_lines_carry_their_leaf_then_the_unsealed_come_as_null(
    pool: asyncpg.Pool, writer: Writer, settings: Settings
) -> None:
    await writer.write(6)
    await seal_everything(Sealer(pool, ledger_key(settings)))
    await writer.write(3)  # not sealed
    lines = await exported(pool)
    assert leaf_indexes(lines) == [0, 1, 2, 3, 4, 5, None, None, None]
    leaves = await stored_leaves(pool)
    assert all(leaves[msgspec.json.decode(line)["id"]] == i for i, line in enumerate(lines[:6]))
    assert verify_export(lines).ok

    # A line moved in the file shows as a leaf out of order (and a commit out of order).
    moved = [lines[1], lines[0], *lines[2:]]
    assert {(p.kind, p.line) for p in verify_export(moved).mismatches if p.kind == "leaf_order"} == {
        ("leaf_order", 1), ("leaf_order", 2)
    }
    # A sealed line after an unsealed one, or a label removed, is out of leaf order too.
    relabelled = [*lines[:6], lines[6].replace(b'"leaf_index":null', b'"leaf_index":6'), *lines[7:]]
    assert verify_export(relabelled).ok  # 6 is the next leaf: fine
    late = [*lines[:6], lines[6], lines[7].replace(b'"leaf_index":null', b'"leaf_index":6'), lines[8]]
    assert ("leaf_order", 8) in {(p.kind, p.line) for p in verify_export(late).mismatches}


async def test_rows_reordered_after_sealing_show_as_leaves_out_of_order(
    pool: asyncpg.Pool, writer: Writer, settings: Settings
) -> None:
    events = await writer.write(6)
    await seal_everything(Sealer(pool, ledger_key(settings)))
    a, b = events[2], events[3]  # other streams, next to each other in the log
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("UPDATE events SET position = -1 WHERE id = $1", a.id)
        await conn.execute("UPDATE events SET position = $2, txid = $3::text::xid8 WHERE id = $1",
                           b.id, a.position, str(a.txid))
        await conn.execute("UPDATE events SET position = $2, txid = $3::text::xid8 WHERE id = $1",
                           a.id, b.position, str(b.txid))
    lines = await exported(pool)
    assert leaf_indexes(lines) == [0, 1, 3, 2, 4, 5]  # the stored leaves label the rows' new order
    assert "leaf_order" in {p.kind for p in verify_export(lines).mismatches}


async def test_a_filtered_export_keeps_leaf_order_with_gaps(
    pool: asyncpg.Pool, store: EventStore, settings: Settings, tmp_path: Path
) -> None:
    mine, theirs = Writer(store, negotiation_id=uuid.uuid4()), Writer(store, negotiation_id=uuid.uuid4())
    for _ in range(3):
        await theirs.write(1)
        await mine.write(1)
    await seal_everything(Sealer(pool, ledger_key(settings)))
    await mine.write(1)
    lines = await exported(pool, LogFilter(negotiation_id=mine.negotiation_id))
    assert leaf_indexes(lines) == [1, 3, 5, None]
    assert verify_export(lines, filtered=True).ok
    whole = verify_export(lines)
    assert [(p.kind, p.line) for p in whole.mismatches] == [("leaf_order", 1), ("leaf_order", 2), ("leaf_order", 3)]

    # `parley audit verify` says the same, told that the export is filtered or not.
    path = tmp_path / "mine.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert await asyncio.to_thread(main, ["audit", "verify", str(path), "--filtered"]) == 0
    assert await asyncio.to_thread(main, ["audit", "verify", str(path)]) == 1


async def test_every_export_path_carries_leaf_index(
    pool: asyncpg.Pool, settings: Settings, database_url: str, base_url: str, tmp_path: Path
) -> None:
    writer = Writer(EventStore(pool))
    await writer.write(7)
    await seal_everything(Sealer(pool, ledger_key(settings)))
    await writer.write(2)  # the server's own sealer may seal these at any moment
    key = await create_key(pool, "export-auditor", Role.AUDITOR)

    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as client:
        served = (await client.get("/audit/export")).content.splitlines()
    from_database, over_http = tmp_path / "db.ndjson", tmp_path / "http.ndjson"
    assert await asyncio.to_thread(main, ["--database-url", database_url, "audit", "export", "-o",
                                          str(from_database)]) == 0
    assert await asyncio.to_thread(main, ["audit", "export", "--url", base_url, "--key", key, "-o",
                                          str(over_http)]) == 0

    leaves = await stored_leaves(pool)
    for lines in (served, from_database.read_bytes().splitlines(), over_http.read_bytes().splitlines()):
        indexes = leaf_indexes(lines)
        assert len(indexes) == 9
        sealed = [i for i in indexes if i is not None]
        assert len(sealed) >= 7 and indexes == sealed + [None] * (9 - len(sealed)) and sealed == list(range(len(sealed)))
        assert all(leaves[msgspec.json.decode(line)["id"]] == i for line, i in zip(lines, sealed))
        assert verify_export(lines).ok
