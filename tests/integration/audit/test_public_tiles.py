"""The public log over real HTTP (uvicorn on a loopback port), with no API key: the
checkpoint note, its cosignatures, the tiles and entry bundles, the list of
checkpoint sizes and proofs, checked by the independent client
(tests/independent/tlog.py and verifier.py: no Parley code) against the signed
checkpoint."""

from __future__ import annotations

import base64
import hashlib

import asyncpg
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.audit.ledger import Ledger, Sealer, ledger_key
from service.audit.signed_note import cosign, raw_public_key
from service.config import Settings
from service.store.event_store import EventStore
from tests.sealing import seal_everything
from tests.independent import tlog
from tests.independent.verifier import Key, open_note

from .conftest import Writer


async def test_tiles_served_without_a_key_give_the_signed_root(
    base_url: str, settings: Settings, store: EventStore, writer: Writer, pool: asyncpg.Pool
) -> None:
    key = ledger_key(settings)
    sealer = Sealer(pool, key)
    ledger = Ledger(pool)
    total = 0
    for batch in (3, 250, 10, 300):  # rounds that fill level-0 tiles and start level 1
        await writer.write(batch)
        total += batch
        # (The app's own sealer may seal some of them first: whichever seals, a
        # checkpoint of exactly this size is published once this returns.)
        await seal_everything(sealer)
        assert (await ledger.latest_checkpoint()).tree_size == total
    sizes = [r["tree_size"] for r in await pool.fetch("SELECT tree_size FROM ledger_checkpoints ORDER BY 1")]
    assert {3, 253, 263, 563} <= set(sizes)
    log = await store.read_log()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        vkey = (await http.get("/ledger/public-key")).json()["vkey"]
        response = await http.get("/ledger/checkpoint")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["cache-control"] == "public, max-age=1"
        note = response.text
        open_note(note, [Key(vkey)])  # strictly parsed, signed by the log
        origin, size, root = tlog.checkpoint_head(note)
        assert (origin, size) == ("parley.test/log", 563)

        fetched: dict[str, httpx.Response] = {}

        def get(path: str) -> bytes | None:
            return fetched[path].content if fetched[path].status_code == 200 else None

        async def prefetch(tree: tlog.Tiles, compute) -> None:
            # The client is synchronous: ask it which paths it wants, fetch them, run again.
            while True:
                try:
                    return compute()
                except KeyError as missing:
                    path = missing.args[0]
                    fetched[path] = await http.get(f"/ledger/{path}")

        tiles = tlog.Tiles(get, size)
        assert await prefetch(tiles, tiles.root) == root
        # Every tile it read: full ones immutable, partial ones short-lived, no key anywhere.
        # (The root needs the right edge only: level 1 stands for the full level-0 tiles.)
        assert set(fetched) == {"tile/0/002.p/51", "tile/1/000.p/2"}
        # The full level-0 tiles hold the leaf hashes, and hash to what level 1 says of them.
        for n in (0, 1):
            fetched[f"tile/0/00{n}"] = await http.get(f"/ledger/tile/0/00{n}")
            hashes = tiles.tile(0, n)
            assert hashes == [hashlib.sha256(b"\x00" + e.hash).digest() for e in log[256 * n : 256 * (n + 1)]]
            assert tiles.perfect(8, n) == tiles.tile(1, 0)[n]
        for path, answer in fetched.items():
            assert answer.status_code == 200 and answer.headers["content-type"] == "application/octet-stream"
            partial = ".p/" in path
            assert answer.headers["cache-control"] == (
                "public, max-age=60" if partial else "public, max-age=31536000, immutable"
            ), path
        # The entries are the event hashes, in leaf order; they hash to the level-0 tile.
        fetched.clear()
        bundle = await prefetch(tiles, lambda: tlog.entries(get, 2, 51))
        assert bundle == [e.hash for e in log[512:563]]
        level0 = tiles.tile(0, 2)
        assert [hashlib.sha256(b"\x00" + e).digest() for e in bundle] == level0

        # An older checkpoint's partial tiles are still there, and give its root.
        older = (await http.get("/ledger/checkpoints/253")).json()
        fetched.clear()
        old_tiles = tlog.Tiles(get, 253)
        assert await prefetch(old_tiles, old_tiles.root) == base64.b64decode(older["root"])
        assert set(fetched) == {"tile/0/000.p/253"}

        # The published sizes, oldest first, page by page.
        listed, url, pages = [], "/ledger/checkpoints?limit=3", 0
        while url:
            page = (await http.get(url)).json()
            listed += [c["tree_size"] for c in page["items"]]
            pages += 1
            assert page["next"] == (listed[-1] if len(listed) < len(sizes) else None)
            url = f"/ledger/checkpoints?limit=3&after={page['next']}" if page["next"] is not None else ""
        assert listed == sizes and pages == -(-len(sizes) // 3)
        assert (await http.get("/ledger/checkpoints/latest")).json()["note"] == note

        # Proofs without a key, checked by the independent client against signed roots.
        for first in (3, 253, 263):
            proof = (await http.get(f"/ledger/proofs/consistency?first={first}&second=563")).json()
            old_root = base64.b64decode((await http.get(f"/ledger/checkpoints/{first}")).json()["root"])
            assert tlog.verify_consistency(first, 563, old_root, root, [base64.b64decode(p) for p in proof["proof"]])
        for event in (log[0], log[300], log[562]):
            proof = (await http.get(f"/ledger/proofs/inclusion?event_id={event.id}")).json()
            leaf = hashlib.sha256(b"\x00" + event.hash).digest()
            assert tlog.verify_inclusion(proof["leaf_index"], 563, leaf, root,
                                         [base64.b64decode(p) for p in proof["proof"]])

        # Tiles that do not exist, or paths the format forbids: 404 problems.
        for path in ("tile/0/003", "tile/0/002", "tile/0/002.p/52", "tile/1/000", "tile/2/000.p/1",
                     "tile/entries/002", "tile/0/2", "tile/0/000.p/256", "tile/x/000", "tile/0/x000/000"):
            answer = await http.get(f"/ledger/{path}")
            assert answer.status_code == 404, (path, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json"), path

        # A cosignature stored for the checkpoint is in its note, and verifies.
        witness = Ed25519PrivateKey.generate()
        witness_public = raw_public_key(witness.public_key())
        body = note[: note.index("\n\n") + 1]
        signed = cosign(body, "witness.test", witness, 1_700_000_000)
        await pool.execute(
            "INSERT INTO ledger_cosignatures (tree_size, signer, key_id, signed_at, signature) VALUES ($1, $2, $3, $4, $5)",
            563, "witness.test", _cosigner_id("witness.test", witness_public), 1_700_000_000, signed,
        )
        cosigned = (await http.get("/ledger/checkpoint")).text
        assert cosigned.startswith(note) and cosigned != note
        w_vkey = _cosigner_vkey("witness.test", witness_public)
        _, verified = open_note(cosigned, [Key(vkey), Key(w_vkey)])
        assert sorted(when or 0 for _, when in verified) == [0, 1_700_000_000]


def _cosigner_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n\x04" + public_key).digest()[:4]


def _cosigner_vkey(name: str, public_key: bytes) -> str:
    raw = b"\x04" + public_key
    return f"{name}+{_cosigner_id(name, public_key).hex()}+{base64.b64encode(raw).decode()}"
