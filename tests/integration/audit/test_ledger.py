"""The sealing runner, signed checkpoints and proofs against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import asyncpg
import pytest

from service.audit import merkle
from service.audit.ledger import Ledger, LedgerError, LedgerKey, LedgerTampered, Sealer, load_or_create_key
from service.audit.signed_note import open_checkpoint
from service.store.event_store import EventStore
from tests.late_commit import HOLD_MARKER, held_commits

from .conftest import Writer


@pytest.fixture
def key(tmp_path: Path) -> LedgerKey:
    return LedgerKey(load_or_create_key(tmp_path / "ledger-ed25519.pem"), "parley.test/log")


def test_the_key_is_made_once_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ledger-ed25519.pem"
    first = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_key(path)
    assert LedgerKey(first).public_key == LedgerKey(again).public_key
    assert LedgerKey(first).origin.startswith("parley/")


async def test_the_first_round_publishes_the_empty_tree(pool: asyncpg.Pool, key: LedgerKey) -> None:
    checkpoint = await Sealer(pool, key).seal_once()
    assert checkpoint is not None and checkpoint.tree_size == 0
    assert checkpoint.root == merkle.EMPTY_ROOT
    assert await Sealer(pool, key).seal_once() is None  # nothing new: nothing signed


async def test_checkpoints_prove_inclusion_and_consistency(
    pool: asyncpg.Pool, store: EventStore, writer: Writer, key: LedgerKey
) -> None:
    sealer = Sealer(pool, key)
    first_events = await writer.write(5)
    old = await sealer.seal_once()
    assert old is not None and old.tree_size == 5
    in_commit_order = await store.read_log()
    assert old.root == merkle.root([merkle.leaf_hash(e.hash) for e in in_commit_order])
    assert open_checkpoint(old.note(), key.verifier) == old.head

    await writer.write(4)
    new = await sealer.seal_once()
    assert new is not None and new.tree_size == 9
    ledger = Ledger(pool)
    assert (await ledger.latest_checkpoint()) == new
    assert (await ledger.checkpoint(5)) == old

    proof = await ledger.consistency(5, 9)
    merkle.verify_consistency(5, 9, old.root, new.root, proof.proof)
    for event in first_events:
        inclusion = await ledger.inclusion(event.id, 5)
        assert inclusion.leaf_hash == merkle.leaf_hash(event.hash)
        merkle.verify_inclusion(inclusion.leaf_index, 5, inclusion.leaf_hash, old.root, inclusion.proof)
    latest = await ledger.inclusion(first_events[0].id)
    assert latest.tree_size == 9
    merkle.verify_inclusion(latest.leaf_index, 9, latest.leaf_hash, new.root, latest.proof)


async def test_a_rewritten_log_fails_consistency_and_stops_the_sealer(
    pool: asyncpg.Pool, writer: Writer, key: LedgerKey
) -> None:
    await writer.write(5)
    old = await Sealer(pool, key).seal_once()
    await writer.write(3)
    assert await Sealer(pool, key).seal_once() is not None
    # Someone with the database's superuser rewrites the third leaf.
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE ledger_leaves DISABLE TRIGGER ledger_leaves_append_only")
        await conn.execute(
            """UPDATE ledger_leaves SET leaf_hash = sha256('forged'::bytea) WHERE "index" = 2"""
        )
        await conn.execute("ALTER TABLE ledger_leaves ENABLE TRIGGER ledger_leaves_append_only")
        # Proofs come from the stored tiles: a rewrite that is to show in them rewrites
        # the leaf there too (bytes 64-95 of level-0 tile 0).
        await conn.execute("ALTER TABLE ledger_tiles DISABLE TRIGGER ledger_tiles_only_grow")
        await conn.execute(
            "UPDATE ledger_tiles SET hashes = overlay(hashes PLACING sha256('forged'::bytea) FROM 65) "
            "WHERE level = 0 AND idx = 0"
        )
        await conn.execute("ALTER TABLE ledger_tiles ENABLE TRIGGER ledger_tiles_only_grow")
    ledger = Ledger(pool)
    rewritten = await ledger.consistency(5, 8)
    assert old is not None and rewritten.first_root != old.root
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(5, 8, old.root, rewritten.second_root, rewritten.proof)
    await writer.write(1)
    with pytest.raises(LedgerTampered):
        await Sealer(pool, key).seal_once()  # a fresh sealer rebuilds, checks and refuses to sign


async def test_concurrent_sealers_never_seal_an_event_twice(
    pool: asyncpg.Pool, store: EventStore, writer: Writer, key: LedgerKey
) -> None:
    sealers = [Sealer(pool, key, batch_size=3) for _ in range(4)]

    async def keep_writing() -> None:
        for _ in range(10):
            await writer.write(3)
            await asyncio.sleep(0)

    async def keep_sealing(sealer: Sealer) -> None:
        for _ in range(15):
            await sealer.seal_once()
            await asyncio.sleep(0.005)

    await asyncio.gather(keep_writing(), *(keep_sealing(s) for s in sealers))
    await sealers[0].seal_once()
    ledger = Ledger(pool)
    latest = await ledger.latest_checkpoint()
    log = await store.read_log()
    assert latest is not None and latest.tree_size == len(log) == 30
    assert latest.root == merkle.root([merkle.leaf_hash(e.hash) for e in log])
    rows = await pool.fetch('SELECT event_id FROM ledger_leaves ORDER BY "index"')
    assert [r["event_id"] for r in rows] == [e.id for e in log]


async def test_a_late_commit_is_sealed_after_the_running_transaction_never_before(
    pool: asyncpg.Pool, store: EventStore, writer: Writer, key: LedgerKey, database_url: str
) -> None:
    """The sealer reads the log as every reader must (gap-free): a leaf appended
    for a later commit while an earlier transaction still runs would put the
    earlier event after it in the tree, or leave it out for good."""
    sealer, ledger = Sealer(pool, key), Ledger(pool)
    await writer.write(2)
    assert (await sealer.seal_once()).tree_size == 2  # type: ignore[union-attr]
    async with held_commits(database_url) as hold:
        early = asyncio.create_task(writer.write(1, marker=HOLD_MARKER))
        await hold.until_waiting()
        [late] = await Writer(store).write(1)  # other streams: nothing waits on the held one
        assert await sealer.seal_once() is None, "nothing may be sealed past a running transaction"
        assert await ledger.sealed_size() == 2
        with pytest.raises(LedgerError):
            await ledger.inclusion(late.id)
        await hold.release()
        [early_event] = await asyncio.wait_for(early, 60)
    assert early_event.position < late.position and early_event.checkpoint < late.checkpoint
    sealed = await sealer.seal_once()
    assert sealed is not None and sealed.tree_size == 4
    log = await store.read_log()
    assert [e.id for e in log[2:]] == [early_event.id, late.id]
    rows = await pool.fetch('SELECT event_id FROM ledger_leaves ORDER BY "index"')
    assert [r["event_id"] for r in rows] == [e.id for e in log], "one leaf per event, in commit order"
    assert sealed.root == merkle.root([merkle.leaf_hash(e.hash) for e in log])
    assert [(await ledger.inclusion(e.id)).leaf_index for e in (early_event, late)] == [2, 3]
