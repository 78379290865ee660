"""The public log: checkpoints and the tree as C2SP tlog-tiles under `/ledger`, no key.

- `GET /ledger/checkpoint`: the latest checkpoint as its signed note, with every
  cosignature stored for it (`text/plain; charset=utf-8`). Mutable: cacheable for
  a second only (tlog-tiles: "SHOULD prevent caching beyond a few seconds").
- `GET /ledger/tile/<L>/<N>[.p/<W>]` and `GET /ledger/tile/entries/<N>[.p/<W>]`:
  hash tiles and entry bundles (`application/octet-stream`). A full tile never
  changes: `Cache-Control: public, max-age=31536000, immutable`. A partial tile's
  bytes never change either, but a log MAY stop serving it once the full tile
  exists (tlog-tiles), so caches keep it a minute only.
- `GET /ledger/checkpoints` (every published size, oldest first, paged) and
  `GET /ledger/checkpoints/{tree_size}` / `latest`: the same checkpoints as JSON.

Leaves are event hashes, not contents, so nothing confidential is served here.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from service.audit import tile_store
from service.audit.ledger import Ledger, SignedCheckpoint
from service.audit.signed_note import NoteVerifier
from service.audit.tiles import TILE_WIDTH, TileError, parse_tile_path
from service.http.problems import ProblemError, problem_responses

IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=60"
CHECKPOINT = "public, max-age=1"
OCTETS = "application/octet-stream"


class CheckpointView(msgspec.Struct, kw_only=True):
    origin: str
    tree_size: int
    root: bytes  # base64
    signed_at: dt.datetime
    signature: bytes  # base64 Ed25519 signature over the checkpoint text
    key_id: str  # hex, as in the note's signature line
    # The C2SP signed note: "<origin>\n<tree_size>\n<base64 root>\n\n— <origin> <base64 key id + signature>\n",
    # followed by a line for every cosignature stored for this checkpoint.
    note: str


class CheckpointPage(msgspec.Struct, kw_only=True):
    items: list[CheckpointView]
    # The `after` of the next page, or null on the last one.
    next: int | None


async def _view(ledger: Ledger, found: SignedCheckpoint) -> CheckpointView:
    return CheckpointView(
        origin=found.origin,
        tree_size=found.tree_size,
        root=found.root,
        signed_at=found.signed_at,
        signature=found.signature,
        key_id=NoteVerifier(found.origin, found.public_key).key_id.hex(),
        note=await tile_store.cosigned_note(ledger.pool, found),
    )


def _no_checkpoint(tree_size: int | None) -> ProblemError:
    detail = (
        "no checkpoint has been published yet"
        if tree_size is None
        else f"no checkpoint was published at tree size {tree_size}"
    )
    return ProblemError(404, "no-checkpoint", "No such checkpoint", detail)


def _no_tile(path: str, detail: str) -> ProblemError:
    return ProblemError(404, "no-such-tile", "No such tile", f"tile/{path}: {detail}")


class PublicLedgerController(Controller):
    path = "/ledger"
    tags = ["ledger"]

    @get(
        "/checkpoint",
        operation_id="getCheckpointNote",
        summary="The latest signed checkpoint, as a C2SP signed note with its cosignatures (public)",
        description="`text/plain; charset=utf-8`, exactly the bytes to save and verify (docs/audit-format.md §6). "
        "Cacheable for one second.",
        media_type="text/plain",
        response_headers=[ResponseHeader(name="Cache-Control", description="`public, max-age=1`",
                                         documentation_only=True)],
        responses=problem_responses(404),
    )
    async def checkpoint(self, ledger: NamedDependency[Ledger]) -> Response[str]:
        found = await ledger.latest_checkpoint()
        if found is None:
            raise _no_checkpoint(None)
        note = await tile_store.cosigned_note(ledger.pool, found)
        return Response(note, media_type="text/plain", headers={"Cache-Control": CHECKPOINT})

    @get(
        "/checkpoints",
        operation_id="listCheckpoints",
        summary="Every published checkpoint, oldest first (public)",
        description="Pages of checkpoints in tree-size order; pass a page's `next` as `after` for the next page.",
        responses=problem_responses(400),
    )
    async def checkpoints(
        self,
        ledger: NamedDependency[Ledger],
        after: Annotated[
            int,
            QueryParameter(name="after", required=False, ge=-1, le=2**63 - 1,
                           description="Checkpoints of a larger tree size than this (default: from the first)."),
        ] = -1,
        limit: Annotated[
            int, QueryParameter(name="limit", required=False, ge=1, le=1000, description="At most this many.")
        ] = 100,
    ) -> CheckpointPage:
        found = await ledger.checkpoints_after(after, limit + 1)
        items = [await _view(ledger, c) for c in found[:limit]]
        return CheckpointPage(items=items, next=items[-1].tree_size if len(found) > limit else None)

    @get(
        "/checkpoints/latest",
        operation_id="getLatestCheckpoint",
        summary="The latest signed checkpoint, as JSON (public)",
        responses=problem_responses(404),
    )
    async def latest(self, ledger: NamedDependency[Ledger]) -> CheckpointView:
        found = await ledger.latest_checkpoint()
        if found is None:
            raise _no_checkpoint(None)
        return await _view(ledger, found)

    @get(
        "/checkpoints/{tree_size:int}",
        operation_id="getCheckpoint",
        summary="The signed checkpoint of a tree size, as JSON (public)",
        responses=problem_responses(400, 404),
    )
    async def checkpoint_of(self, ledger: NamedDependency[Ledger], tree_size: FromPath[int]) -> CheckpointView:
        found = await ledger.checkpoint(tree_size) if 0 <= tree_size < 2**63 else None
        if found is None:
            raise _no_checkpoint(tree_size)
        return await _view(ledger, found)

    @get(
        "/tile/{tile:path}",
        operation_id="getTile",
        summary="A tile of the Merkle tree or an entry bundle, C2SP tlog-tiles (public)",
        description="`tile/<L>/<N>[.p/<W>]`: 32-byte hashes (docs/audit-format.md §10); "
        "`tile/entries/<N>[.p/<W>]`: the event hashes, each after its big-endian uint16 length. "
        "Full tiles are immutable; partial ones are cached for a minute.",
        media_type=OCTETS,
        response_headers=[ResponseHeader(name="Cache-Control", description=f"`{IMMUTABLE}` for a full tile, "
                                         f"`{PARTIAL}` for a partial one", documentation_only=True)],
        responses=problem_responses(400, 404),
    )
    async def tile(self, ledger: NamedDependency[Ledger], tile: FromPath[str]) -> Response[bytes]:
        text = tile.lstrip("/")
        try:
            wanted = parse_tile_path(text)
        except TileError as error:
            raise _no_tile(text, str(error)) from None
        width = wanted.width or TILE_WIDTH
        if wanted.index >= 2**63 // TILE_WIDTH:
            raise _no_tile(text, "beyond any tree")
        if wanted.level is None:
            entries = await tile_store.read_entries(ledger.pool, wanted.index, width)
            if len(entries) < width or any(e is None for e in entries):
                raise _no_tile(text, "those entries are not all sealed")
            body = b"".join(len(e).to_bytes(2, "big") + e for e in entries if e is not None)
        else:
            data = tile_store.tile_bytes(await tile_store.read_tile(ledger.pool, wanted.level, wanted.index), width)
            if data is None:
                raise _no_tile(text, "not that many hashes are sealed there")
            body = data
        cache = IMMUTABLE if wanted.width is None else PARTIAL
        return Response(body, media_type=OCTETS, headers={"Cache-Control": cache})
