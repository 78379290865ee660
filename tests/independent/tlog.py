"""An independent client of Parley's public tree, written from docs/audit-format.md
(sections 4, 10 and 12) and RFC 9162 alone: the standard library only, no Parley
code. It fetches tiles through any `get(path) -> bytes | None` (an HTTP client in
the tests), recomputes tree roots from them, and verifies inclusion and
consistency proofs.

    python tests/independent/tlog.py BASE_URL [VKEY]

fetches BASE_URL/ledger/checkpoint, recomputes its root from the tiles and prints
"ok <size> <root>" (exit 0), or the problem (exit 1). With VKEY, the checkpoint's
signature is checked first (tests/independent/verifier.py's note parser).
"""

from __future__ import annotations

import base64
import hashlib
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

Get = Callable[[str], "bytes | None"]


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return sha(b"\x01" + left + right)


# -- tile paths (section 10) ----------------------------------------------------


def index_text(n: int) -> str:
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def tile_path(level: int, n: int, width: int = 256) -> str:
    return f"tile/{level}/{index_text(n)}" + ("" if width == 256 else f".p/{width}")


def entries_path(n: int, width: int = 256) -> str:
    return f"tile/entries/{index_text(n)}" + ("" if width == 256 else f".p/{width}")


class Tiles:
    """The tiles of the tree of `size` leaves, fetched as needed and kept."""

    def __init__(self, get: Get, size: int) -> None:
        self.get, self.size = get, size
        self.fetched: dict[tuple[int, int], list[bytes]] = {}

    def tile(self, level: int, n: int) -> list[bytes]:
        if (level, n) not in self.fetched:
            # floor(size / 256^level) hashes exist at this level; tile n holds 256 of them or the rest.
            width = min(256, (self.size >> (8 * level)) - n * 256)
            if width <= 0:
                raise ValueError(f"tile {level}/{n} is not part of a tree of size {self.size}")
            data = self.get(tile_path(level, n, width))
            if data is None or len(data) != 32 * width:
                raise ValueError(f"tile {tile_path(level, n, width)}: expected {32 * width} bytes")
            self.fetched[(level, n)] = [data[i : i + 32] for i in range(0, len(data), 32)]
        return self.fetched[(level, n)]

    def perfect(self, height: int, i: int) -> bytes:
        """MTH of leaves [i·2^height, (i+1)·2^height): hashes of the tile at level
        height // 8, hashed up height % 8 times."""
        level, up = divmod(height, 8)
        first = i << up
        hashes = self.tile(level, first // 256)[first % 256 : first % 256 + (1 << up)]
        while len(hashes) > 1:
            hashes = [node(hashes[j], hashes[j + 1]) for j in range(0, len(hashes), 2)]
        return hashes[0]

    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) as RFC 9162 §2.1.1 defines it, perfect subtrees from the tiles."""
        n = end - start
        if n == 0:
            return sha(b"")
        if n & (n - 1) == 0:
            height = n.bit_length() - 1
            if start % n:
                raise ValueError("not a subtree of the tree")
            return self.perfect(height, start >> height)
        k = 1 << ((n - 1).bit_length() - 1)
        return node(self.mth(start, start + k), self.mth(start + k, end))

    def root(self) -> bytes:
        return self.mth(0, self.size)


def entries(get: Get, n: int, width: int = 256) -> list[bytes]:
    """An entry bundle: big-endian uint16 length, then the entry, repeated."""
    data = get(entries_path(n, width))
    if data is None:
        raise ValueError(f"entry bundle {n} is missing")
    found, at = [], 0
    while at < len(data):
        length = int.from_bytes(data[at : at + 2], "big")
        found.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    if len(found) != width:
        raise ValueError(f"entry bundle {n}: {len(found)} entries, not {width}")
    return found


# -- proofs (RFC 9162 §2.1.3.2 and §2.1.4.2) ----------------------------------------


def verify_inclusion(index: int, size: int, leaf: bytes, root: bytes, proof: list[bytes]) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = node(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]) -> bool:
    if first > second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root


def checkpoint_head(note: str) -> tuple[str, int, bytes]:
    origin, size, root = note.split("\n")[:3]
    return origin, int(size), base64.b64decode(root, validate=True)


def main() -> int:
    base = sys.argv[1].rstrip("/")

    def get(path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"{base}/ledger/{path}") as response:
                return response.read()
        except urllib.error.HTTPError:
            return None

    note = (get("checkpoint") or b"").decode()
    if len(sys.argv) > 2:
        from tests.independent.verifier import Key, open_note

        open_note(note, [Key(sys.argv[2])])
    _, size, root = checkpoint_head(note)
    computed = Tiles(get, size).root()
    if computed != root:
        print(f"the tiles give another root than checkpoint {size}")
        return 1
    print(f"ok {size} {base64.b64encode(root).decode()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
