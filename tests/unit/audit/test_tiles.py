"""Tiles (C2SP tlog-tiles): paths and widths as the spec's examples give them, and
proofs computed from tiles equal to the ones computed from every leaf."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.audit import merkle
from service.audit.tiles import (
    TileError,
    TileKey,
    TileNodes,
    TilePath,
    TreeTiles,
    from_tiles,
    parse_tile_path,
    right_edge,
    tile_path,
    tile_width,
    tiles_needed,
)


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(n)]


def grown(n: int) -> tuple[TreeTiles, dict[TileKey, bytes]]:
    """Every tile of a tree of n leaves, grown in uneven rounds as the sealer does."""
    tree = TreeTiles(0, {})
    stored: dict[TileKey, bytes] = {}
    all_leaves = leaves(n)
    at = 0
    for step in (1, 2, 255, 3, 256, 700):
        if at >= n:
            break
        tree.extend(all_leaves[at : at + step])
        at += step
        stored.update(tree.changed)
        tree.changed.clear()
        # A new round starts from the stored edge only, as a restarted sealer does.
        edge = {key.level: stored.get(key, b"") for key, _ in right_edge(tree.size)}
        tree = TreeTiles(tree.size, edge)
    tree.extend(all_leaves[at:])
    stored.update(tree.changed)
    return tree, stored


def test_index_paths_follow_the_spec() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(2, 5, 17) == "tile/2/005.p/17"
    assert tile_path(None, 0, 3) == "tile/entries/000.p/3"
    assert tile_path(1, 1000) == "tile/1/x001/000"
    assert parse_tile_path("0/x001/x234/067") == TilePath(0, 1234067, None)
    assert parse_tile_path("entries/x001/000.p/255") == TilePath(None, 1000, 255)
    for bad in ("0/1", "0/x001", "01/000", "0/000.p/0", "0/000.p/256", "0/000.p/07", "64/000",
                "0/x000/001", "0/001/002", "x/000", "0"):
        with pytest.raises(TileError):
            parse_tile_path(bad)


def test_widths_of_the_spec_example_tree_of_70000() -> None:
    assert [(k.level, k.index, w) for k, w in right_edge(70_000)] == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]
    assert tile_width(70_000, 0, 272) == 256 and tile_width(70_000, 0, 274) == 0
    assert [(k.level, w) for k, w in right_edge(256)] == [(0, 0), (1, 1)]


@pytest.mark.parametrize("n", [1, 2, 255, 256, 257, 511, 512, 1000, 65536, 65537, 70_000])
def test_roots_and_proofs_from_tiles_equal_those_from_the_leaves(n: int) -> None:
    tree, stored = grown(n)
    everything = leaves(n)
    source = merkle.LeafList(everything)
    assert merkle.tree_root(TileNodes(tree.edge_tiles()), n) == merkle.root(everything)
    tiles = TileNodes(stored)
    for index in {0, n // 3, n - 1}:
        assert merkle.inclusion_path(tiles, index, n) == merkle.inclusion_path(source, index, n)
    for old in {1, n // 2, n - 1}:
        if 0 < old < n:
            assert merkle.consistency_path(tiles, old, n) == merkle.consistency_path(source, old, n)


def test_a_proof_reads_a_few_tiles_only() -> None:
    n = 1_000_000
    needed = tiles_needed(lambda source: merkle.inclusion_path(source, 123_456, n))
    assert 1 <= len(needed) <= 8, needed
    needed = tiles_needed(lambda source: merkle.consistency_path(source, 777_777, n))
    assert len(needed) <= 12, needed


def test_from_tiles_fetches_once_and_computes() -> None:
    tree, stored = grown(3000)
    asked: list[set[TileKey]] = []

    def fetch(keys: set[TileKey]) -> dict[TileKey, bytes]:
        asked.append(keys)
        return {k: stored[k] for k in keys}

    root = from_tiles(fetch, lambda source: merkle.tree_root(source, 2999))
    assert root == merkle.root(leaves(2999)) and len(asked) == 1


def test_a_stored_edge_that_disagrees_with_the_size_is_refused() -> None:
    tree, stored = grown(300)
    with pytest.raises(TileError):
        TreeTiles(301, {0: stored[TileKey(0, 1)], 1: stored[TileKey(1, 0)]})


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=3000), st.data())
def test_any_tree_proves_from_tiles(n: int, data: st.DataObject) -> None:
    tree, stored = grown(n)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    size = data.draw(st.integers(min_value=index + 1, max_value=n))
    path = merkle.inclusion_path(TileNodes(stored), index, size)
    expected_root = merkle.root(leaves(size))
    merkle.verify_inclusion(index, size, leaves(size)[index], expected_root, path)
