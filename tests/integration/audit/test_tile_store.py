"""The stored tree (service/audit/tile_store.py) on PostgreSQL: tiles grown round by
round as the sealer grows them, roots and proofs computed from them at sizes on
every side of the tile boundaries (255/256/257, 65,535/65,536/65,537: three tile
levels), each checked with the independent verifier (tests/independent, no Parley
code) against the root it computes from the leaves themselves."""

from __future__ import annotations

import hashlib
import uuid

import asyncpg
import pytest

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.audit import merkle, tile_store
from service.audit.ledger import LedgerKey, Sealer
from service.audit.verify import verify_store
from service.store.event_store import EventStore
from service.audit.tiles import TileError, TileKey, tiles_needed
from tests.independent import tlog
from tests.independent.verifier import mth

from .conftest import Writer

_INSERT = """
    INSERT INTO ledger_leaves ("index", event_id, position, txid, leaf_hash, entry)
    SELECT i, e, i, '1'::xid8, l, n FROM unnest($1::bigint[], $2::uuid[], $3::bytea[], $4::bytea[]) AS t(i, e, l, n)
"""


def entry(i: int) -> bytes:
    return hashlib.sha256(f"event {i}".encode()).digest()


def leaf(i: int) -> bytes:
    return hashlib.sha256(b"\x00" + entry(i)).digest()


async def add_leaves(pool: asyncpg.Pool, start: int, end: int) -> None:
    """Leaves as the sealer stores them (a synthetic event hash each: the tree does not
    look at events), then the tiles caught up, in one transaction like a round."""
    indices = list(range(start, end))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_INSERT, indices, [uuid.uuid4() for _ in indices], [leaf(i) for i in indices],
                           [entry(i) for i in indices])
        await tile_store.catch_up(conn, end)


SIZES = [1, 2, 255, 256, 257, 511, 512, 513, 65_535, 65_536, 65_537, 66_000]


async def test_roots_and_proofs_from_stored_tiles_verify_independently(pool: asyncpg.Pool) -> None:
    at = 0
    for size in SIZES:  # one round per size: partial tiles grow, fill, move up a level
        await add_leaves(pool, at, size)
        at = size
    assert await tile_store.tiled_size(pool) == 66_000
    leaves = [leaf(i) for i in range(66_000)]
    roots = {}
    for size in SIZES:
        roots[size] = await tile_store.tree_root(pool, size)
        assert roots[size] == mth(leaves[:size]), size
    for size in SIZES:
        for index in sorted({0, size // 2, size - 1, min(size - 1, 256), min(size - 1, 65_535)}):
            proof, root = await tile_store.inclusion(pool, index, size)
            assert root == roots[size]
            assert tlog.verify_inclusion(index, size, leaves[index], roots[size], proof), (index, size)
            assert not tlog.verify_inclusion(index, size, leaves[index - 1], roots[size], proof) or index == 0
        for first in SIZES:
            if first <= size:
                proof, first_root, second_root = await tile_store.consistency(pool, first, size)
                assert (first_root, second_root) == (roots[first], roots[size])
                assert tlog.verify_consistency(first, size, roots[first], roots[size], proof), (first, size)
    # A full tile is 256 hashes, a partial one its width; nothing else is stored.
    rows = await pool.fetch("SELECT level, idx, length(hashes) / 32 AS width FROM ledger_tiles ORDER BY level, idx")
    widths = {(r["level"], r["idx"]): r["width"] for r in rows}
    assert len(widths) == 258 + 2 + 1  # level 0: 257 full + 1 partial; level 1: 1 full + 1 partial; level 2: 1
    assert widths[(0, 257)] == 66_000 % 256 and widths[(1, 1)] == (66_000 >> 8) % 256 and widths[(2, 0)] == 1
    assert all(w == 256 for (level, idx), w in widths.items() if level == 0 and idx < 257)
    assert await tile_store.read_entries(pool, 257, 66_000 % 256) == [entry(i) for i in range(65_792, 66_000)]


async def test_a_proof_reads_a_few_tiles_in_one_query(pool: asyncpg.Pool) -> None:
    await add_leaves(pool, 0, 70_000)
    queries: list[str] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: queries.append(record.query))
        proof, root = await tile_store.inclusion(conn, 12_345, 70_000)
        consistency, old_root, _ = await tile_store.consistency(conn, 1_000, 70_000)
    # One query each, whatever the size: the tiles a proof needs are found by a dry run.
    ours = [q for q in queries if "ledger_" in q]
    assert len(ours) == 2 and all("ledger_tiles" in q and "ledger_leaves" not in q for q in ours)
    # And a few tiles per level (3 levels here), not the 274 that exist.
    needed = tiles_needed(lambda nodes: merkle.inclusion_path(nodes, 12_345, 70_000))
    assert len(needed) <= 3 * 3, needed
    assert tlog.verify_inclusion(12_345, 70_000, leaf(12_345), root, proof)
    assert tlog.verify_consistency(1_000, 70_000, old_root, root, consistency)


async def test_tiles_that_disagree_with_the_leaves_are_found(pool: asyncpg.Pool) -> None:
    await add_leaves(pool, 0, 300)
    honest = await tile_store.tree_root(pool, 300)
    # Someone with the owner's rights rewrites a hash the root is made of: the
    # level-1 hash that stands for the full level-0 tile (the trigger is off).
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE ledger_tiles DISABLE TRIGGER ledger_tiles_only_grow")
        await conn.execute("UPDATE ledger_tiles SET hashes = overlay(hashes PLACING $1 FROM 1) "
                           "WHERE level = 1 AND idx = 0", bytes(32))
        await conn.execute("ALTER TABLE ledger_tiles ENABLE TRIGGER ledger_tiles_only_grow")
    # The root the tiles give now is another: the sealer compares before it signs.
    async with pool.acquire() as conn, conn.transaction():
        assert await tile_store.catch_up(conn, 300) != honest
    # More tiles than leaves: refused.
    with pytest.raises(TileError):
        await tile_store.catch_up(pool, 299)
    assert TileKey(0, 0) in await tile_store.read_tiles(pool, [TileKey(0, 0), TileKey(5, 5)])


async def test_audit_verify_finds_a_rewritten_tile_the_root_does_not_show(
    pool: asyncpg.Pool, writer: Writer
) -> None:
    """A full level-0 tile is not part of the root once level 1 stands for it, so the
    sealer's root check cannot see it rewritten; `/audit/verify` rebuilds every tile
    from the stored leaves and names it (public proofs read it)."""
    key = LedgerKey(Ed25519PrivateKey.generate(), "parley.test/log")
    await writer.write(300)
    await Sealer(pool, key).seal_once(wait=True)
    store = EventStore(pool)
    assert (await verify_store(store, key.verifier)).ok
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE ledger_tiles DISABLE TRIGGER ledger_tiles_only_grow")
        await conn.execute("UPDATE ledger_tiles SET hashes = overlay(hashes PLACING $1 FROM 33) "
                           "WHERE level = 0 AND idx = 0", bytes(32))
        await conn.execute("ALTER TABLE ledger_tiles ENABLE TRIGGER ledger_tiles_only_grow")
    report = await verify_store(store, key.verifier)
    assert not report.ok
    assert [(m.kind, m.detail) for m in report.mismatches] == [
        ("tile_mismatch", "tile/0/000 does not hold the hashes of the stored leaves")
    ]
    # A log whose tiles are not written yet (upgraded, no round since) is not a finding.
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE ledger_tiles DISABLE TRIGGER ledger_tiles_no_truncate")
        await conn.execute("TRUNCATE ledger_tiles")
        await conn.execute("ALTER TABLE ledger_tiles ENABLE TRIGGER ledger_tiles_no_truncate")
    assert (await verify_store(store, key.verifier)).ok
