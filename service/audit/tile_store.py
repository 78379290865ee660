"""The stored tree: tiles (C2SP tlog-tiles, service/audit/tiles.py) in `ledger_tiles`,
written by the sealer, read by the proofs and the public tile routes.

- **Writing.** `catch_up` runs inside each sealing round, after the round's leaves
  are inserted: it tiles every stored leaf beyond the tiled size (the leaves of
  this round; on the first round after an upgrade, every leaf sealed before tiles
  existed), starting from the stored right edge (at most one partial tile per
  level), and writes the tiles that changed. The sealer reads that edge before
  its round's first write and grows it with the round's leaves in memory
  (`read_edge`, then `catch_up(..., grown)`), so the round's transaction id, which
  holds back the gap-free reading of the log, is not held across those reads. It
  returns the root the tiles give, which the sealer compares with its own before
  it signs: a sealer never signs on top of tiles that disagree with the leaves.
- **Reading.** A proof or a root needs one node per subtree of RFC 9162's
  recursion; each node is a tile and at most 128 hashes of it (service/audit/tiles.py).
  Which tiles depends only on the sizes, so they are found by a dry run and read
  in ONE query: O(log n) tiles of 8 KiB at most, never the leaves, never the tree
  recomputed. Hashing the nodes out of those tiles costs a few thousand SHA-256
  calls at a million leaves (bench/proofs.py: about a millisecond), cheap enough to
  run on the event loop: handing it to a thread would cost about as much as it
  saves, and hashlib holds the GIL for inputs this small anyway.

Tiles are derived data: `ledger_leaves` stays the record, and `/audit/verify`
recomputes checkpoints from the leaves. A tile only grows (a trigger refuses any
other change, migration 0020), so a full tile never changes once written.

Plain SQL with $1 parameters; `db` is a pool or a connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, TypeVar

from service.audit import merkle
from service.audit.signed_note import signature_line
from service.audit.tiles import (
    HASH_SIZE,
    TILE_WIDTH,
    TileError,
    TileKey,
    TileNodes,
    TreeTiles,
    right_edge,
    tile_path,
    tile_width,
    tiles_needed,
)

if TYPE_CHECKING:
    from service.audit.ledger import SignedCheckpoint

T = TypeVar("T")

# Leaves tiled per statement when catching up (a backfill of a large log).
CATCH_UP_BATCH = 50_000


class Db(Protocol):
    async def fetch(self, query: str, *args: object) -> list: ...
    async def fetchrow(self, query: str, *args: object) -> object: ...
    async def fetchval(self, query: str, *args: object) -> object: ...
    async def execute(self, query: str, *args: object) -> str: ...


_TILED_SIZE_SQL = """
    SELECT idx, length(hashes) / 32 AS width FROM ledger_tiles WHERE level = 0 ORDER BY idx DESC LIMIT 1
"""
_READ_SQL = """
    SELECT level, idx, hashes FROM ledger_tiles
    WHERE (level, idx) IN (SELECT * FROM unnest($1::smallint[], $2::bigint[]))
"""
_ONE_SQL = "SELECT hashes FROM ledger_tiles WHERE level = $1 AND idx = $2"
_LEAVES_SQL = """
    SELECT leaf_hash FROM ledger_leaves WHERE "index" >= $1 AND "index" < $2 ORDER BY "index"
"""
# A partial tile is replaced by a longer one; the trigger lets only growth through.
_WRITE_SQL = """
    INSERT INTO ledger_tiles (level, idx, hashes)
    SELECT level, idx, hashes FROM unnest($1::smallint[], $2::bigint[], $3::bytea[]) AS t(level, idx, hashes)
    ON CONFLICT (level, idx) DO UPDATE SET hashes = EXCLUDED.hashes
"""
_ENTRIES_SQL = """
    SELECT entry FROM ledger_leaves WHERE "index" >= $1 AND "index" < $2 ORDER BY "index"
"""


async def tiled_size(db: Db) -> int:
    """How many leaves the stored level-0 tiles hold."""
    row = await db.fetchrow(_TILED_SIZE_SQL)
    return 0 if row is None else row["idx"] * TILE_WIDTH + row["width"]


async def read_tiles(db: Db, keys: Iterable[TileKey]) -> dict[TileKey, bytes]:
    keys = sorted(set(keys))
    if not keys:
        return {}
    rows = await db.fetch(_READ_SQL, [k.level for k in keys], [k.index for k in keys])
    return {TileKey(r["level"], r["idx"]): r["hashes"] for r in rows}


async def read_tile(db: Db, level: int, index: int) -> bytes | None:
    """One stored tile as it is now (a partial one may have grown past a checkpoint)."""
    return await db.fetchval(_ONE_SQL, level, index)


async def read_entries(db: Db, index: int, width: int) -> list[bytes | None]:
    """The entries (event hashes) of entry bundle `index`, its first `width` of them."""
    start = index * TILE_WIDTH
    rows = await db.fetch(_ENTRIES_SQL, start, start + width)
    return [r["entry"] for r in rows]


async def compute(db: Db, computation: Callable[[merkle.NodeSource], T]) -> T:
    """Run `computation` (a root, a proof) over the stored tiles it needs, read in one query."""
    tiles = await read_tiles(db, tiles_needed(computation))
    return computation(TileNodes(tiles))


async def tree_root(db: Db, size: int) -> bytes:
    return await compute(db, lambda nodes: merkle.tree_root(nodes, size))


async def inclusion(db: Db, index: int, size: int) -> tuple[list[bytes], bytes]:
    """(the audit path of leaf `index` in the tree of `size`, that tree's root)."""
    return await compute(db, lambda nodes: (merkle.inclusion_path(nodes, index, size), merkle.tree_root(nodes, size)))


async def consistency(db: Db, first: int, second: int) -> tuple[list[bytes], bytes, bytes]:
    """(the consistency proof from `first` to `second`, the root at `first`, the root at `second`)."""
    return await compute(
        db,
        lambda nodes: (
            merkle.consistency_path(nodes, first, second),
            merkle.tree_root(nodes, first),
            merkle.tree_root(nodes, second),
        ),
    )


async def _write(db: Db, changed: dict[TileKey, bytes]) -> None:
    if changed:
        keys = sorted(changed)
        await db.execute(_WRITE_SQL, [k.level for k in keys], [k.index for k in keys], [changed[k] for k in keys])
        changed.clear()


async def _edge(db: Db, size: int) -> TreeTiles:
    stored = await read_tiles(db, [key for key, width in right_edge(size) if width])
    return TreeTiles(size, {key.level: stored.get(key, b"") for key, width in right_edge(size) if width})


async def read_edge(db: Db) -> TreeTiles:
    """The stored tiles' right edge (at most one partial tile per level), to grow in
    memory; TileError if an edge tile has a width no tree of the tiled size has."""
    return await _edge(db, await tiled_size(db))


async def catch_up(db: Db, leaves: int, grown: TreeTiles | None = None) -> bytes:
    """Tile the stored leaves [tiled size, `leaves`) and return the root the tiles
    give at `leaves`. Raises TileError if the stored tiles hold more leaves than
    that, or an edge tile has a width no tree of the tiled size has.

    `grown`: the edge read earlier in this transaction (`read_edge`) and already
    grown in memory by leaves the caller holds (the sealer's round, which so reads
    nothing between its first write and its commit but the root): only the leaves
    past it are read back, and the tiles it changed are written."""
    tree = grown
    if tree is None:
        size = await tiled_size(db)
        if size > leaves:
            raise TileError(f"the tiles hold {size} leaves, the ledger {leaves}")
        if size < leaves:
            tree = await _edge(db, size)
    elif tree.size > leaves:
        raise TileError(f"the tiles hold {tree.size} leaves, the ledger {leaves}")
    if tree is not None:
        while tree.size < leaves:
            end = min(leaves, tree.size + CATCH_UP_BATCH)
            rows = await db.fetch(_LEAVES_SQL, tree.size, end)
            if len(rows) != end - tree.size:
                raise TileError(f"leaves {tree.size} to {end} are not all stored")
            tree.extend([r["leaf_hash"] for r in rows])
            await _write(db, tree.changed)
        await _write(db, tree.changed)
    return await tree_root(db, leaves)


_COSIGNATURES_SQL = """
    SELECT signer, key_id, signature FROM ledger_cosignatures WHERE tree_size = $1 ORDER BY signer, signed_at, key_id
"""


async def cosigned_note(db: Db, checkpoint: SignedCheckpoint) -> str:
    """The checkpoint's signed note with a line for every stored cosignature (the
    log's own signed time and the witnesses'), in the C2SP signed-note form."""
    rows = await db.fetch(_COSIGNATURES_SQL, checkpoint.tree_size)
    return checkpoint.note() + "".join(signature_line(r["signer"], r["key_id"], r["signature"]) for r in rows)


def tile_bytes(stored: bytes | None, width: int) -> bytes | None:
    """The first `width` hashes of a stored tile, or None if it holds fewer."""
    if stored is None or len(stored) < width * HASH_SIZE:
        return None
    return stored[: width * HASH_SIZE]


class TileCheck:
    """`/audit/verify`'s check of the stored tiles against the stored leaves: the
    tiles rebuilt in memory from the leaves, fed in index order, each compared with
    the stored one as soon as it is complete (partial ones at the end). Only what
    the stored tiles should hold by now is required (the tiled size: a log upgraded
    before its first sealing round has no tiles yet)."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.tree = TreeTiles(0, {})
        self.tiled: int | None = None
        self.problems: list[str] = []

    async def feed(self, leaves: list[bytes]) -> None:
        if self.tiled is None:
            self.tiled = await tiled_size(self.db)
        self.tree.extend(leaves)
        full = {k: v for k, v in self.tree.changed.items() if len(v) == TILE_WIDTH * HASH_SIZE}
        for key in full:
            del self.tree.changed[key]
        await self._compare(full)

    async def finish(self) -> list[str]:
        await self.feed([])
        await self._compare(dict(self.tree.changed))
        if self.tiled is not None and self.tiled > self.tree.size:
            self.problems.append(f"the tiles hold {self.tiled} leaves, the ledger {self.tree.size}")
        return self.problems

    async def _compare(self, computed: dict[TileKey, bytes]) -> None:
        assert self.tiled is not None
        stored = await read_tiles(self.db, computed)
        for key, data in sorted(computed.items()):
            width = min(tile_width(self.tiled, key.level, key.index), len(data) // HASH_SIZE)
            if width == 0:
                continue
            have = stored.get(key, b"")
            if have[: width * HASH_SIZE] != data[: width * HASH_SIZE]:
                self.problems.append(f"{tile_path(key.level, key.index)} does not hold the hashes of the stored leaves")
