"""RFC 9162 Merkle trees: the published Certificate Transparency vectors, then
properties over every shape of tree (every proof verifies; tampered ones fail)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# RFC 6962 reference leaves and tree heads (also used by transparency-dev/merkle).
ENTRIES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]
LEAVES = [leaf_hash(e) for e in ENTRIES]
ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_roots_match_the_reference_tree_heads() -> None:
    assert EMPTY_ROOT == ROOTS[0]
    for size in range(len(LEAVES) + 1):
        assert root(LEAVES[:size]) == ROOTS[size], size


def test_compact_range_gives_the_same_roots_as_the_full_tree() -> None:
    compact = CompactRange()
    assert compact.root() == ROOTS[0]
    for size, leaf in enumerate(LEAVES, start=1):
        compact.append(leaf)
        assert compact.size == size
        assert compact.root() == ROOTS[size]


@pytest.mark.parametrize(
    ("index", "proof"),
    [
        (0, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
        (5, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    ],
)
def test_inclusion_proofs_match_the_reference(index: int, proof: list[str]) -> None:
    assert inclusion_proof(LEAVES, index) == [h(p) for p in proof]
    verify_inclusion(index, 8, LEAVES[index], ROOTS[8], [h(p) for p in proof])


@pytest.mark.parametrize(
    ("old", "new", "proof"),
    [
        (2, 8, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
        (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
        (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    ],
)
def test_consistency_proofs_match_the_reference(old: int, new: int, proof: list[str]) -> None:
    assert consistency_proof(LEAVES[:new], old) == [h(p) for p in proof]
    verify_consistency(old, new, ROOTS[old], ROOTS[new], [h(p) for p in proof])


def test_trivial_consistency_cases() -> None:
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [])
    verify_consistency(5, 5, ROOTS[5], ROOTS[5], [])
    with pytest.raises(ProofError):
        verify_consistency(5, 5, ROOTS[5], ROOTS[6], [])
    with pytest.raises(ProofError):
        verify_consistency(6, 5, ROOTS[6], ROOTS[5], [])
    with pytest.raises(ProofError):
        inclusion_proof(LEAVES[:3], 3)


# -- properties -----------------------------------------------------------------

trees = st.lists(st.binary(min_size=0, max_size=8), min_size=1, max_size=70).map(
    lambda entries: [leaf_hash(e) for e in entries]
)


def flip_bit(value: bytes, bit: int) -> bytes:
    i = bit % (len(value) * 8)
    return value[: i // 8] + bytes([value[i // 8] ^ (1 << (i % 8))]) + value[i // 8 + 1 :]


@settings(max_examples=150, deadline=None)
@given(trees, st.data())
def test_every_inclusion_proof_verifies_and_tampering_fails(leaves: list[bytes], data: st.DataObject) -> None:
    size = len(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(leaves, index)
    tree_root = root(leaves)
    verify_inclusion(index, size, leaves[index], tree_root, proof)

    with pytest.raises(ProofError):
        verify_inclusion(index, size, flip_bit(leaves[index], data.draw(st.integers(0, 255))), tree_root, proof)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[which] = flip_bit(bad[which], data.draw(st.integers(0, 255)))
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaves[index], tree_root, bad)
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaves[index], tree_root, proof[:-1])
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaves[index], tree_root, [*proof, leaves[0]])
    other = data.draw(st.integers(0, size - 1))
    if leaves[other] != leaves[index]:
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaves[other], tree_root, proof)


@settings(max_examples=150, deadline=None)
@given(trees, st.data())
def test_every_consistency_proof_verifies_and_a_rewritten_log_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    new_size = len(leaves)
    old_size = data.draw(st.integers(0, new_size))
    old_root, new_root = root(leaves[:old_size]), root(leaves)
    proof = consistency_proof(leaves, old_size)
    verify_consistency(old_size, new_size, old_root, new_root, proof)

    if 0 < old_size:
        # Rewrite one leaf of the old part: the new root no longer extends the old one.
        changed = data.draw(st.integers(0, old_size - 1))
        rewritten = list(leaves)
        rewritten[changed] = flip_bit(rewritten[changed], data.draw(st.integers(0, 255)))
        with pytest.raises(ProofError):
            verify_consistency(old_size, new_size, old_root, root(rewritten), consistency_proof(rewritten, old_size))
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[which] = flip_bit(bad[which], data.draw(st.integers(0, 255)))
        with pytest.raises(ProofError):
            verify_consistency(old_size, new_size, old_root, new_root, bad)


@settings(max_examples=100, deadline=None)
@given(trees)
def test_compact_range_agrees_with_the_recursive_root(leaves: list[bytes]) -> None:
    compact = CompactRange()
    for size, leaf in enumerate(leaves, start=1):
        compact.append(leaf)
        assert compact.root() == root(leaves[:size])
