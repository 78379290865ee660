"""The ledger: a Merkle tree over the global log, sealed by one runner at a time,
with signed checkpoints and the proofs an auditor checks against them.

Over 300 lines on purpose: the sealing round (its advisory lock, the leaves, the
tiles and the checkpoint it writes in one transaction) and the proofs read back
from those same tables keep one invariant, that what a checkpoint signs is the
stored tree, and are read together when it is checked.

- Leaves are appended in the gap-free commit order of the log (`(txid, position)`),
  one per event: `SHA-256(0x00 || event hash)` (see service/audit/merkle.py). They are
  stored (`ledger_leaves`), so a later change to the events table cannot move the
  tree, and so is the tree itself as C2SP tiles (`ledger_tiles`, written in the
  same round: service/audit/tile_store.py), from which every proof is computed in
  O(log n) reads.
- Sealing runs in rounds. A round takes a transaction-level advisory lock with
  `pg_try_advisory_xact_lock`: whichever process gets it seals, the others skip
  the round, so there is never more than one sealer and a dead one is replaced
  by the next round of any other process. A round appends every new event as a
  leaf and, when the tree grew, signs and stores a checkpoint, all in one
  transaction.
- The signing key is Ed25519, generated on first start as
  `<PARLEY_DATA_DIR>/ledger-ed25519.pem` (mode 0600), or read from
  `PARLEY_LEDGER_KEY_FILE`. Every process sharing a database must use the same key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import uuid
from pathlib import Path

import asyncpg
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service import tracing
from service.audit import merkle, tile_store
from service.audit import tiles as tiles_module
from service.config import Settings
from service.audit.signed_note import (
    NoteVerifier,
    TreeHead,
    assemble_note,
    checkpoint_body,
    raw_public_key,
)
from service.keyfiles import read_private_file, write_private_file
from service.store.event_store import START, Checkpoint, EventStore

log = logging.getLogger("parley.ledger")

# Any fixed number, different from the migration lock: the same in every process.
SEAL_LOCK = 0x7061726C6579_5EA1
KEY_FILE_NAME = "ledger-ed25519.pem"


# -- the signing key -------------------------------------------------------------


class LedgerKey:
    def __init__(self, private_key: Ed25519PrivateKey, origin: str | None = None) -> None:
        self.private_key = private_key
        self.public_key = raw_public_key(private_key.public_key())
        # A log's origin names it in every checkpoint; derived from the key when not
        # configured, so two Parley logs never share a name by accident.
        self.origin = origin or f"parley/{hashlib.sha256(self.public_key).hexdigest()[:16]}"
        self.verifier = NoteVerifier(self.origin, self.public_key)

    def sign(self, head: TreeHead) -> bytes:
        return self.private_key.sign(checkpoint_body(head).encode())


def key_path(settings: Settings) -> Path:
    return settings.ledger_key_file or settings.data_dir / KEY_FILE_NAME


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The key in `path`; a new one written there (O_EXCL, 0600) if there is none.
    Several processes starting at once agree on one key: the file appears
    atomically (hard link of a complete temporary file) and the losers read the
    winner's. A key file that is a link, not this user's, or open to group or
    others is refused (service.keyfiles.UnsafeKeyFile), never used."""
    if not path.exists() and not path.is_symlink():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            write_private_file(path, pem)
            log.warning("generated the ledger signing key %s", path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    key = serialization.load_pem_private_key(read_private_file(path), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


_loaded: dict[tuple[Path, str | None], LedgerKey] = {}


def ledger_key(settings: Settings) -> LedgerKey:
    """This deployment's key, read (or made) once per process."""
    path = key_path(settings).absolute()
    if (path, settings.ledger_origin) not in _loaded:
        _loaded[(path, settings.ledger_origin)] = LedgerKey(load_or_create_key(path), settings.ledger_origin)
    return _loaded[(path, settings.ledger_origin)]


def trusted_verifier(settings: Settings) -> NoteVerifier:
    """The public key verifiers trust: configuration (the key file), never a table row."""
    return ledger_key(settings).verifier


# -- what the ledger publishes ---------------------------------------------------


class SignedCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    origin: str
    tree_size: int
    root: bytes
    signed_at: dt.datetime
    signature: bytes  # Ed25519 over the checkpoint body
    public_key: bytes  # raw 32 bytes of the key that signed

    @property
    def head(self) -> TreeHead:
        return TreeHead(origin=self.origin, tree_size=self.tree_size, root=self.root)

    def note(self) -> str:
        """The C2SP signed note: what an auditor saves and verifies offline."""
        return assemble_note(checkpoint_body(self.head), self.origin, self.public_key, self.signature)


class InclusionProof(msgspec.Struct, frozen=True, kw_only=True):
    event_id: uuid.UUID
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    proof: list[bytes]
    root: bytes


class ConsistencyProof(msgspec.Struct, frozen=True, kw_only=True):
    first: int
    second: int
    proof: list[bytes]
    first_root: bytes
    second_root: bytes


class LedgerError(Exception):
    """A proof asked for that the ledger cannot give (unknown size, unsealed event)."""


_CHECKPOINT_COLUMNS = "origin, tree_size, root, signed_at, signature, public_key"


def _checkpoint(row: asyncpg.Record) -> SignedCheckpoint:
    return SignedCheckpoint(
        origin=row["origin"],
        tree_size=row["tree_size"],
        root=row["root"],
        signed_at=row["signed_at"],
        signature=row["signature"],
        public_key=row["public_key"],
    )


class Ledger:
    """Reading the ledger: checkpoints and proofs, for the routes."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def latest_checkpoint(self) -> SignedCheckpoint | None:
        row = await self.pool.fetchrow(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1"
        )
        return _checkpoint(row) if row else None

    async def checkpoint(self, tree_size: int) -> SignedCheckpoint | None:
        row = await self.pool.fetchrow(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE tree_size = $1", tree_size
        )
        return _checkpoint(row) if row else None

    async def checkpoints_after(self, tree_size: int, limit: int) -> list[SignedCheckpoint]:
        rows = await self.pool.fetch(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE tree_size > $1 ORDER BY tree_size LIMIT $2",
            tree_size,
            limit,
        )
        return [_checkpoint(r) for r in rows]

    async def sealed_size(self) -> int:
        return await self.pool.fetchval('SELECT coalesce(max("index") + 1, 0) FROM ledger_leaves')

    async def leaf_hashes(self, tree_size: int) -> list[bytes]:
        # Every leaf: O(tree size). Proofs never use it (they read tiles).
        rows = await self.pool.fetch(
            'SELECT leaf_hash FROM ledger_leaves WHERE "index" < $1 ORDER BY "index"', tree_size
        )
        leaves = [r["leaf_hash"] for r in rows]
        if len(leaves) != tree_size:
            raise LedgerError(f"the ledger has {len(leaves)} leaves, not {tree_size}")
        return leaves

    async def _resolve_size(self, tree_size: int | None) -> int:
        if tree_size is None:
            latest = await self.latest_checkpoint()
            if latest is None:
                raise LedgerError("no checkpoint has been published yet")
            return latest.tree_size
        sealed = await self.sealed_size()
        if not 0 <= tree_size <= sealed:
            raise LedgerError(f"tree size {tree_size} is not sealed (the ledger has {sealed} leaves)")
        return tree_size

    async def inclusion(self, event_id: uuid.UUID, tree_size: int | None = None) -> InclusionProof:
        size = await self._resolve_size(tree_size)
        row = await self.pool.fetchrow(
            'SELECT "index", leaf_hash FROM ledger_leaves WHERE event_id = $1', event_id
        )
        if row is None:
            raise LedgerError(f"event {event_id} is not sealed in the ledger (yet)")
        if row["index"] >= size:
            raise LedgerError(f"event {event_id} is leaf {row['index']}, not in a tree of size {size}")
        # From the stored tiles: O(log n) of them in one query (service/audit/tile_store.py).
        proof, root = await tile_store.inclusion(self.pool, row["index"], size)
        return InclusionProof(
            event_id=event_id,
            leaf_index=row["index"],
            tree_size=size,
            leaf_hash=row["leaf_hash"],
            proof=proof,
            root=root,
        )

    async def consistency(self, first: int, second: int | None = None) -> ConsistencyProof:
        size = await self._resolve_size(second)
        if not 0 <= first <= size:
            raise LedgerError(f"cannot prove size {first} against size {size}")
        proof, first_root, second_root = await tile_store.consistency(self.pool, first, size)
        return ConsistencyProof(
            first=first, second=size, proof=proof, first_root=first_root, second_root=second_root
        )


# -- sealing ---------------------------------------------------------------------


class LedgerTampered(Exception):
    """The stored leaves no longer give the root of a published checkpoint."""


class Sealer:
    """Appends new events to the tree and publishes signed checkpoints.

    The compact range (O(log n) hashes) is kept between rounds; it is rebuilt
    from the stored leaves whenever another process sealed in between."""

    def __init__(self, pool: asyncpg.Pool, key: LedgerKey, *, interval: float = 1.0, batch_size: int = 5000) -> None:
        self.pool = pool
        self.store = EventStore(pool)
        self.key = key
        self.interval = interval
        self.batch_size = batch_size
        self._tree: merkle.CompactRange | None = None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Seal a round every `interval` seconds until cancelled (or `stop` is set)."""
        while stop is None or not stop.is_set():
            try:
                with tracing.span("parley.seal"):
                    await self.seal_once()
            except asyncio.CancelledError:
                raise
            except LedgerTampered:
                log.exception("the ledger does not match its own checkpoints; sealing stopped")
                return
            except Exception:  # a lost connection, a restarting database: try next round
                log.exception("sealing round failed")
                self._tree = None
            await asyncio.sleep(self.interval)

    async def seal_once(self, *, wait: bool = False) -> SignedCheckpoint | None:
        """One round: every event readable now becomes a leaf, and a checkpoint is
        signed if the tree grew (or none exists yet). None when another process
        holds the sealing lock or there was nothing new. With `wait`, a round
        another process is sealing is waited for instead of skipped, so every event
        readable when this was called is sealed when it returns."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                if wait:
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", SEAL_LOCK)
                elif not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SEAL_LOCK):
                    return None
                last = await conn.fetchrow(
                    'SELECT "index", txid::text::bigint AS txid, position FROM ledger_leaves '
                    'ORDER BY "index" DESC LIMIT 1'
                )
                size = last["index"] + 1 if last else 0
                latest = await conn.fetchrow(
                    f"SELECT {_CHECKPOINT_COLUMNS} FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1"
                )
                tree = self._tree
                if tree is None or tree.size != size:
                    tree = await _rebuild(conn, _checkpoint(latest) if latest else None)
                after = Checkpoint(last["txid"], last["position"]) if last else START
                grown = tree.copy()  # kept only if the round commits
                # The tiles' edge, read with the first page before the first write and
                # grown in memory with the leaves (None: the tiles are not at the
                # stored leaves, as after an upgrade; catch_up then reads them back).
                tiles: tiles_module.TreeTiles | None = None
                more = True
                while more:
                    # The store's gap-free reader: a leaf is never appended ahead of an
                    # event that could still commit with an earlier place in the log.
                    events = await self.store.read_log(after, self.batch_size, conn=conn)
                    if not events:
                        break
                    # A short page was all there was: no read for an empty one. The
                    # round's transaction id is taken at its first write, and every
                    # statement from there to the commit holds back the gap-free
                    # reading of the log for every follower (the projections' lag).
                    more = len(events) == self.batch_size
                    if grown.size == size:  # the first page: nothing written yet
                        edge = await tile_store.read_edge(conn)
                        tiles = edge if edge.size == size else None
                    leaves = [merkle.leaf_hash(e.hash) for e in events]
                    await conn.execute(
                        _INSERT_LEAVES_SQL,
                        list(range(grown.size, grown.size + len(events))),
                        [e.id for e in events],
                        [e.position for e in events],
                        [str(e.txid) for e in events],
                        leaves,
                        [e.hash for e in events],
                    )
                    for leaf in leaves:
                        grown.append(leaf)
                    if tiles is not None:
                        tiles.extend(leaves)
                    after = events[-1].checkpoint
                # The tree as tiles, in the same transaction as its leaves; the
                # tiles must give the root about to be signed.
                if await tile_store.catch_up(conn, grown.size, tiles) != grown.root():
                    raise LedgerTampered("the stored tiles do not give the root of the stored leaves")
                published = None
                if latest is None or grown.size > latest["tree_size"]:
                    head = TreeHead(origin=self.key.origin, tree_size=grown.size, root=grown.root())
                    published = SignedCheckpoint(
                        origin=head.origin,
                        tree_size=head.tree_size,
                        root=head.root,
                        signed_at=dt.datetime.now(dt.timezone.utc),
                        signature=self.key.sign(head),
                        public_key=self.key.public_key,
                    )
                    await conn.execute(
                        f"INSERT INTO ledger_checkpoints ({_CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)",
                        published.origin,
                        published.tree_size,
                        published.root,
                        published.signed_at,
                        published.signature,
                        published.public_key,
                    )
        # Only a committed round moves the kept tree forward.
        self._tree = grown
        if published:
            log.info("sealed the ledger at tree size %d", published.tree_size)
        return published


async def _rebuild(conn: asyncpg.Connection, latest: SignedCheckpoint | None) -> merkle.CompactRange:
    """The compact range of the stored leaves, checked against the latest checkpoint
    on the way: a sealer never signs on top of leaves that were altered."""
    tree = merkle.CompactRange()
    if latest is not None and latest.tree_size == 0 and latest.root != merkle.EMPTY_ROOT:
        raise LedgerTampered("the checkpoint of the empty tree has another root")
    async for row in conn.cursor('SELECT leaf_hash FROM ledger_leaves ORDER BY "index"', prefetch=10_000):
        tree.append(row["leaf_hash"])
        if latest is not None and tree.size == latest.tree_size and tree.root() != latest.root:
            raise LedgerTampered(f"the stored leaves do not give the root of checkpoint {latest.tree_size}")
    if latest is not None and tree.size < latest.tree_size:
        raise LedgerTampered(f"the ledger has {tree.size} leaves, fewer than checkpoint {latest.tree_size}")
    return tree


_INSERT_LEAVES_SQL = """
    INSERT INTO ledger_leaves ("index", event_id, position, txid, leaf_hash, entry)
    SELECT "index", event_id, position, txid::xid8, leaf_hash, entry
    FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::text[], $5::bytea[], $6::bytea[])
        AS batch("index", event_id, position, txid, leaf_hash, entry)
"""
