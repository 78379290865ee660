"""The Merkle tree as C2SP tlog-tiles: paths, widths, growth, and proofs from tiles.

Pure, no I/O. A tile at level L holds up to 256 consecutive hashes of height 8·L
(level 0: leaf hashes; level L ≥ 1: the roots of full tiles of level L-1). The
sealer stores the tiles as it appends leaves (`grow`), the public routes serve
them, and proofs are computed from them: a node of height h is one tile of level
h // 8 and at most 127 hashes inside it, so an inclusion or consistency proof
reads O(log n) tiles, never the leaves (`TileNodes`, `tiles_needed`).

    tile/<L>/<N>[.p/<W>]        <N> as zero-padded 3-digit elements, all but the last
    tile/entries/<N>[.p/<W>]    prefixed "x": 1234067 -> x001/x234/067
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec

from service.audit.merkle import NodeSource, perfect_root

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH_SIZE = 32
MAX_LEVEL = 63

T = TypeVar("T")


class TileError(ValueError):
    """A tile path that the format does not allow, or a tile that cannot exist."""


class TileKey(msgspec.Struct, frozen=True, order=True):
    level: int
    index: int


class TilePath(msgspec.Struct, frozen=True):
    level: int | None  # None: an entry bundle
    index: int
    width: int | None  # None: a full tile (256)


def _encode_index(index: int) -> str:
    elements = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        elements.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(elements))


def tile_path(level: int | None, index: int, width: int | None = None) -> str:
    """The path of a tile (level None: an entry bundle) below the log's prefix."""
    suffix = "" if width is None or width == TILE_WIDTH else f".p/{width}"
    return f"tile/{'entries' if level is None else level}/{_encode_index(index)}{suffix}"


_INDEX_ELEMENT = re.compile(r"x\d{3}")
_LAST_ELEMENT = re.compile(r"\d{3}")


def parse_tile_path(path: str) -> TilePath:
    """`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]` (what follows `tile/`), strictly."""
    parts = path.split("/")
    width = None
    if len(parts) >= 3 and parts[-2].endswith(".p"):
        width_text = parts[-1]
        if not width_text.isascii() or not width_text.isdigit() or width_text.startswith("0"):
            raise TileError("a partial tile's width is a decimal with no leading zeroes")
        width = int(width_text)
        if not 1 <= width < TILE_WIDTH:
            raise TileError("a partial tile is 1 to 255 hashes wide")
        parts = parts[:-2] + [parts[-2].removesuffix(".p")]
    if len(parts) < 2:
        raise TileError("a tile path is tile/<L>/<N>")
    level_text, elements = parts[0], parts[1:]
    if level_text == "entries":
        level = None
    elif level_text.isascii() and level_text.isdigit() and (level_text == "0" or not level_text.startswith("0")):
        level = int(level_text)
        if level > MAX_LEVEL:
            raise TileError("a tile level is 0 to 63")
    else:
        raise TileError("a tile level is a decimal, or 'entries'")
    if not all(_INDEX_ELEMENT.fullmatch(e) for e in elements[:-1]) or not _LAST_ELEMENT.fullmatch(elements[-1]):
        raise TileError("a tile index is 3-digit elements, all but the last prefixed with 'x'")
    if len(elements) > 1 and elements[0] == "x000":
        raise TileError("a tile index has no leading zero elements")
    index = int("".join(e.removeprefix("x") for e in elements))
    return TilePath(level=level, index=index, width=width)


def hashes_at(size: int, level: int) -> int:
    """How many hashes of height 8·level a tree of `size` leaves has complete."""
    return size >> (TILE_HEIGHT * level)


def tile_width(size: int, level: int, index: int) -> int:
    """The width of tile (level, index) in the tree of `size` leaves (0: not there)."""
    return max(0, min(TILE_WIDTH, hashes_at(size, level) - index * TILE_WIDTH))


def right_edge(size: int) -> list[tuple[TileKey, int]]:
    """The partial tile at every level of a tree of `size` leaves, with its width
    (0: that level's next tile is still empty), up to the highest level in use."""
    edge = []
    level = 0
    while hashes_at(size, level) > 0:
        count = hashes_at(size, level)
        edge.append((TileKey(level, count // TILE_WIDTH), count % TILE_WIDTH))
        level += 1
    return edge


def split_hashes(data: bytes) -> list[bytes]:
    if len(data) % HASH_SIZE:
        raise TileError("a tile is a whole number of 32-byte hashes")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


class TileNodes:
    """A merkle.NodeSource over tiles already fetched: {(level, index): bytes}."""

    def __init__(self, tiles: dict[TileKey, bytes]) -> None:
        self.tiles = tiles

    def node(self, height: int, index: int) -> bytes:
        level, within = divmod(height, TILE_HEIGHT)
        first = index << within
        key = TileKey(level, first >> TILE_HEIGHT)
        data = self.tiles.get(key)
        offset = (first & (TILE_WIDTH - 1)) * HASH_SIZE
        end = offset + (HASH_SIZE << within)
        if data is None or len(data) < end:
            raise TileError(f"tile {tile_path(level, key.index)} does not hold node ({height}, {index})")
        return perfect_root(split_hashes(data[offset:end]))


class _Recorder:
    """A NodeSource that answers zeros and notes which tiles were asked for."""

    def __init__(self) -> None:
        self.keys: set[TileKey] = set()

    def node(self, height: int, index: int) -> bytes:
        level, within = divmod(height, TILE_HEIGHT)
        self.keys.add(TileKey(level, (index << within) >> TILE_HEIGHT))
        return bytes(HASH_SIZE)


def tiles_needed(compute: Callable[[NodeSource], object]) -> set[TileKey]:
    """The tiles `compute` will read. Which nodes a proof or root needs depends only
    on sizes and indices, never on hash values, so a dry run with zeros finds them
    all and the caller fetches them in one query before the real run."""
    recorder = _Recorder()
    compute(recorder)
    return recorder.keys


def from_tiles(fetch: Callable[[set[TileKey]], dict[TileKey, bytes]], compute: Callable[[NodeSource], T]) -> T:
    """Run `compute` over the tiles `fetch` returns for the keys it needs."""
    return compute(TileNodes(fetch(tiles_needed(compute))))


class TreeTiles:
    """The right edge of the tree as tiles, grown leaf by leaf (the sealer's state).

    `edge[L]` is the content of the partial tile at level L. Appending a leaf fills
    level 0; a level-0 tile that reaches 256 hashes is full, and its root goes into
    level 1, and so on. `changed` collects every tile written since it was cleared.
    """

    def __init__(self, size: int, edge: dict[int, bytes]) -> None:
        self.size = size
        self.edge: dict[int, bytes] = {}
        for key, width in right_edge(size):
            data = edge.get(key.level, b"")
            if len(data) != width * HASH_SIZE:
                raise TileError(
                    f"tile {tile_path(key.level, key.index)} holds {len(data) // HASH_SIZE} hashes, "
                    f"a tree of {size} leaves has {width} there"
                )
            self.edge[key.level] = data
        self.changed: dict[TileKey, bytes] = {}

    def _append(self, level: int, node: bytes) -> None:
        count = hashes_at(self.size, level)  # hashes at this level before this one
        data = self.edge.get(level, b"") + node
        key = TileKey(level, count // TILE_WIDTH)
        self.changed[key] = data
        if len(data) == TILE_WIDTH * HASH_SIZE:
            self.edge[level] = b""
            # The tile's root is the next hash one level up; the size is updated
            # by the caller once the whole cascade is written.
            self._append(level + 1, perfect_root(split_hashes(data)))
        else:
            self.edge[level] = data

    def append(self, leaf: bytes) -> None:
        if len(leaf) != HASH_SIZE:
            raise TileError("a leaf hash is 32 bytes")
        self._append(0, leaf)
        self.size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def edge_tiles(self) -> dict[TileKey, bytes]:
        """The tiles a root of the current size needs beyond full ones below it."""
        return {key: self.edge.get(key.level, b"") for key, _ in right_edge(self.size)}
