"""RFC 9162 Merkle trees over the global log: roots, proofs and their verification.

Pure functions, no I/O: the sealing runner, the proof routes and the offline
`parley audit verify` all use this module, so an auditor checks proofs with the
same code that made them (or with any other RFC 9162 implementation).

Leaf data: the 32 raw bytes of an event's chain hash (`events.hash`). That hash
already covers the event's canonical body and, through the previous hash, the
whole history of its stream, so the leaf is small and still commits to content;
the tree adds what the per-stream chains cannot: the order of the global log and
that no event was dropped from it.

    leaf hash = SHA-256(0x00 || event hash)
    node hash = SHA-256(0x01 || left || right)
    root of the empty tree = SHA-256("")

Every function here takes *leaf hashes* (already hashed with the 0x00 prefix).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof does not verify, or was asked for sizes that make no sense."""


def leaf_hash(leaf_data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf_data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class NodeSource(Protocol):
    """Where proofs take their hashes from: the root of the perfect subtree of
    height `height` (2**height leaves) that is the `index`-th at that height, i.e.
    over leaves [index * 2**height, (index + 1) * 2**height). The sealer's stored
    tiles are one (service.tiles); a list of leaf hashes is another."""

    def node(self, height: int, index: int) -> bytes: ...


class LeafList:
    """A NodeSource over leaf hashes in memory: O(2**height) per node (tests, small trees)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves

    def node(self, height: int, index: int) -> bytes:
        return perfect_root(self.leaves[index << height : (index + 1) << height])


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """The root over a power-of-two number of hashes, pairwise level by level."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def subtree_root(source: NodeSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range RFC 9162's recursion produces (start is a
    multiple of the largest power of two not above end - start): a right-folded
    chain of at most log2(n) perfect subtrees, each one node of `source`."""
    if end - start < 1:
        raise ProofError("an empty range has no subtree root")
    pieces = []
    while end - start > 0:
        width = end - start
        k = width if width & (width - 1) == 0 else _split(width)
        height = k.bit_length() - 1
        pieces.append(source.node(height, start >> height))
        start += k
    node = pieces[-1]
    for piece in reversed(pieces[:-1]):
        node = node_hash(piece, node)
    return node


def tree_root(source: NodeSource, size: int) -> bytes:
    return subtree_root(source, 0, size) if size else EMPTY_ROOT


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1, from leaf hashes."""
    return tree_root(LeafList(leaves), len(leaves))


def inclusion_path(source: NodeSource, index: int, size: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, with O(log n) nodes of `source`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    # Walk down from the root, collecting the sibling of every subtree on the way;
    # the RFC lists them leaf-first, so the list is reversed at the end.
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree_root(source, start + k, end))
            end = start + k
        else:
            path.append(subtree_root(source, start, start + k))
            start = start + k
    path.reverse()
    return path


def consistency_path(source: NodeSource, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1, with O(log n) nodes of `source`.
    Empty when old_size is 0 or new_size."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"cannot prove size {old_size} against size {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    m, start, end, complete = old_size, 0, new_size, True
    # The RFC's SUBPROOF recursion, unrolled: each step appends one sibling.
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            proof.append(subtree_root(source, start + k, end))
            end = start + k
        else:
            proof.append(subtree_root(source, start, start + k))
            m, start, complete = m - k, start + k, False
    if not complete:
        proof.append(subtree_root(source, start, end))
    proof.reverse()
    return proof


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) over leaf hashes in memory."""
    return inclusion_path(LeafList(leaves), index, len(leaves))


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) over leaf hashes in memory: the first `old_size` leaves are a
    prefix of the tree of all `leaves`."""
    return consistency_path(LeafList(leaves), old_size, len(leaves))


# Both verifiers take their arguments in one order: the two positions (the leaf's
# index or the old size, then the tree size), the two hashes at those positions
# (the leaf hash or the old root, then the tree's root), then the proof.


def verify_inclusion(index: int, tree_size: int, leaf: bytes, expected_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.3.2. Raises ProofError unless `leaf` (a leaf hash) is at
    `index` in the tree of `tree_size` leaves whose root is `expected_root`."""
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != expected_root:
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2. Raises ProofError unless the tree (`old_size`, `old_root`)
    is a prefix of the tree (`new_size`, `new_root`)."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"size {old_size} cannot be a prefix of size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("same tree size, different roots: the log was rewritten")
        return
    if old_size == 0:
        # The empty tree is a prefix of every tree; there is nothing to prove.
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        if old_root != EMPTY_ROOT:
            raise ProofError("the root of an empty tree is SHA-256 of nothing")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root: the log was rewritten")


class CompactRange:
    """The right edge of a growing tree: the roots of its perfect subtrees, largest
    first (one per set bit of the size). Appending a leaf and computing the root
    cost O(log n), so the sealer never rehashes the whole log."""

    def __init__(self) -> None:
        self.size = 0
        self._peaks: list[tuple[int, bytes]] = []  # (subtree size, subtree root)

    def append(self, leaf: bytes) -> None:
        self.size += 1
        width, node = 1, leaf
        while self._peaks and self._peaks[-1][0] == width:
            left_width, left = self._peaks.pop()
            node = node_hash(left, node)
            width += left_width
        self._peaks.append((width, node))

    def copy(self) -> "CompactRange":
        twin = CompactRange()
        twin.size, twin._peaks = self.size, list(self._peaks)
        return twin

    def root(self) -> bytes:
        if not self._peaks:
            return EMPTY_ROOT
        # RFC 9162 splits at the largest power of two, so the tree is the peaks
        # joined from the right: H(p1, H(p2, ... H(pk-1, pk))).
        node = self._peaks[-1][1]
        for _, peak in reversed(self._peaks[:-1]):
            node = node_hash(peak, node)
        return node
