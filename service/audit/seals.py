"""The ledger half of `/audit/verify`: leaves against events, checkpoints against
the tree recomputed from the leaves, signatures against the configured key.

One pass over the stored leaves in index order, a compact range (O(log n)
hashes) growing as it goes: whenever its size reaches a stored checkpoint's, the
recomputed root must be that checkpoint's root. A checkpoint row signed by any
key but the configured one, or whose signature does not verify, is named; so is
one beyond the stored leaves.
"""

from __future__ import annotations

from service.audit import merkle, tile_store
from service.audit.findings import Findings, Mismatch
from service.audit.signed_note import NoteVerifier, TreeHead, checkpoint_body
from service.store.event_store import EventStore

_LEAVES_SQL = """
    SELECT "index", event_id, leaf_hash FROM ledger_leaves WHERE "index" >= $1 ORDER BY "index" LIMIT $2
"""
_CHECKPOINTS_SQL = """
    SELECT tree_size, root, origin, signature, public_key FROM ledger_checkpoints
    WHERE tree_size > $1 ORDER BY tree_size LIMIT $2
"""


class _Checkpoints:
    """The stored checkpoints in size order, a page at a time."""

    def __init__(self, store: EventStore, page_size: int) -> None:
        self.store, self.page_size = store, page_size
        self.page: list = []
        self.at = 0
        self.after = -1
        self.done = False

    async def peek(self):  # -> asyncpg.Record | None
        if self.at == len(self.page) and not self.done:
            self.page = await self.store.pool.fetch(_CHECKPOINTS_SQL, self.after, self.page_size)
            self.at = 0
            self.done = len(self.page) < self.page_size
            if self.page:
                self.after = self.page[-1]["tree_size"]
        return self.page[self.at] if self.at < len(self.page) else None

    def pop(self) -> None:
        self.at += 1


def _check_signature(row, trusted: NoteVerifier | None, findings: Findings) -> None:
    if trusted is None:
        return
    size = row["tree_size"]
    if row["origin"] != trusted.name or row["public_key"] != trusted.public_key:
        findings.add(
            Mismatch(
                kind="checkpoint_key",
                detail=f"checkpoint {size} names {row['origin']!r} and a key that are not the configured ones",
                tree_size=size,
            )
        )
        return
    head = TreeHead(origin=row["origin"], tree_size=size, root=row["root"])
    if not trusted.verify(checkpoint_body(head), row["signature"]):
        findings.add(
            Mismatch(
                kind="checkpoint_signature",
                detail=f"the signature of checkpoint {size} does not verify with the configured key",
                tree_size=size,
            )
        )


async def verify_ledger(
    store: EventStore, findings: Findings, trusted: NoteVerifier | None, page_size: int
) -> tuple[int, int]:
    """(leaves checked, checkpoints checked)."""
    checkpoints = _Checkpoints(store, page_size)
    tree = merkle.CompactRange()
    checked = 0

    async def checkpoints_at_this_size() -> None:
        nonlocal checked
        while (row := await checkpoints.peek()) is not None and row["tree_size"] == tree.size:
            checked += 1
            _check_signature(row, trusted, findings)
            if tree.root() != row["root"]:
                findings.add(
                    Mismatch(
                        kind="checkpoint_root",
                        detail=f"the stored leaves do not give the root of checkpoint {row['tree_size']}",
                        tree_size=row["tree_size"],
                        expected_hash=row["root"].hex(),
                        stored_hash=tree.root().hex(),
                    )
                )
            checkpoints.pop()

    previous: tuple[int, int] | None = None
    next_index = 0
    # The public tiles (what proofs and tile clients read) against the leaves.
    tiles = tile_store.TileCheck(store.pool)
    await checkpoints_at_this_size()
    while True:
        leaves = await store.pool.fetch(_LEAVES_SQL, next_index, page_size)
        if not leaves:
            break
        places = await store.sealed_places([leaf["event_id"] for leaf in leaves])
        for leaf in leaves:
            if leaf["index"] != tree.size:
                findings.add(Mismatch(kind="ledger_order", detail=f"leaf {tree.size} is missing"))
            next_index = leaf["index"] + 1
            event = places.get(leaf["event_id"])
            tree.append(leaf["leaf_hash"])
            if event is None:
                findings.add(
                    Mismatch(
                        kind="missing_event",
                        detail=f"leaf {leaf['index']} of the ledger seals an event that is no longer stored",
                        event_id=leaf["event_id"],
                    )
                )
            else:
                where = dict(
                    event_id=leaf["event_id"], stream_id=event.stream_id, version=event.version, position=event.position
                )
                if merkle.leaf_hash(event.hash) != leaf["leaf_hash"]:
                    findings.add(
                        Mismatch(
                            kind="ledger_mismatch",
                            detail=f"the event's hash is not the one sealed in leaf {leaf['index']}",
                            **where,
                        )
                    )
                place = (event.txid, event.position)
                if previous is not None and place <= previous:
                    findings.add(
                        Mismatch(
                            kind="ledger_order",
                            detail=f"leaf {leaf['index']} is out of the log's commit order",
                            **where,
                        )
                    )
                previous = place
            await checkpoints_at_this_size()
        await tiles.feed([leaf["leaf_hash"] for leaf in leaves])
        if len(leaves) < page_size:
            break
    for problem in await tiles.finish():
        findings.add(Mismatch(kind="tile_mismatch", detail=problem))

    while (row := await checkpoints.peek()) is not None:
        checked += 1
        _check_signature(row, trusted, findings)
        findings.add(
            Mismatch(
                kind="checkpoint_beyond_ledger",
                detail=f"checkpoint {row['tree_size']} is larger than the {tree.size} stored leaves",
                tree_size=row["tree_size"],
            )
        )
        checkpoints.pop()
    return tree.size, checked
