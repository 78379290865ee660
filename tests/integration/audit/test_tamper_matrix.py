"""The tamper matrix (issue 14): each way of rewriting history, done by someone with
the database owner's rights (triggers off) and, where a row says so, the log's
signing key; and which verifier catches it. The table in docs/auditor-guide.md
is this test's CATCHES, row for row.

Verifiers:
- `db`: `/audit/verify` (service.audit.verify.verify_store with the configured key,
  as the route calls it): chains, every served field, heads, leaves, every stored
  checkpoint's root and signature.
- `offline`: `parley audit verify EXPORT --checkpoint LATEST --older-checkpoint
  SAVED --public-key VKEY`, the auditor having saved a checkpoint before the
  tampering and fetching the latest one after it.
- `witness`: the witness-backed record-time check (service.audit.record_time, what
  `/audit/verify` adds with PARLEY_WITNESSES): both checkpoints were cosigned by a
  witness (the real `parley witness` app, over HTTP in process) before the
  tampering; it names an event recorded before a checkpoint cosigned without it,
  and a stored checkpoint that no longer carries the root the witness cosigned.
- `offline witness`: the same record-time check offline, `parley audit verify
  EXPORT --public-key VKEY --cosigned SAVED --cosigned SAVED2 --witness-key WITNESS`,
  with the two cosigned checkpoint notes (as /ledger/checkpoint served them) the
  auditor saved before the tampering: its record-time findings only
  (`recorded_too_early`, `recorded_too_late`) count here, at each line's leaf_index.
- `import`: `parley import` itself, for the row of bad import lines: it refuses
  each (naming line 1 and the reason) and writes nothing, so no checker after it
  has anything to find. The lines the domain's rules refuse (a second
  `negotiation.concluded`, data no command has) are tests/api/test_import.py's.

One module over 300 lines: the rows, the tamperings and the checkers read together.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.audit import log as audit_log
from service.audit import merkle, tile_store
from service.audit.cosigning import Cosigner, WitnessEndpoint
from service.audit.witness import StateFile, Witness, create_witness_app
from service.audit.ledger import Ledger, LedgerKey, Sealer, ledger_key, trusted_verifier
from service.audit.signed_note import CosignatureVerifier, TreeHead
from service.audit.tiles import TreeTiles
from service.cli.parley import main
from service.config import Settings
from service.store.canonical import ZERO_HASH, canonical_encoder, chain_hash, timestamp_text
from service.store.envelope import exported
from service.store.event_store import EventStore, StoredEvent

from .conftest import Writer

# Which verifiers catch each row (and no other verifier: the test fails both ways).
CATCHES: dict[str, set[str]] = {
    "edit body": {"db", "offline"},
    "edit + re-chain": {"db", "offline"},
    "edit + re-chain + rewrite leaves": {"db", "offline"},
    "edit + re-chain + rewrite leaves + re-sign with the key": {"offline", "witness"},
    "delete a middle event": {"db", "offline"},
    "delete + renumber + re-chain": {"db", "offline"},
    "swap two events' order": {"db", "offline"},
    "column recorded_at": {"db", "offline"},
    "column recorded_by": {"db", "offline"},
    "column occurred_on": {"db", "offline"},
    "column claimed_by": {"db", "offline"},
    "column note": {"db", "offline"},
    "column type": {"db", "offline"},
    "column stream_type": {"db", "offline"},
    "column source": {"db", "offline"},
    "column correlation_id": {"db", "offline"},
    "column causation_id": {"db", "offline"},
    "column negotiation_id": {"db", "offline"},
    "column schema_version": {"db", "offline"},
    "column id": {"db", "offline"},
    "column stream_id": {"db", "offline"},
    "column version": {"db", "offline"},
    "backdated chained insert": {"witness", "offline witness"},
    "forged checkpoint row": {"db", "offline"},
    "bad import lines": {"import"},
}


class Scene:
    """Twelve events in three streams, sealed in two checkpoints; the auditor saved
    the first. `victim` is stream 1's version 2 (its version 3 follows it)."""

    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, events: list[StoredEvent], directory: Path | None = None
    ) -> None:
        self.pool, self.settings, self.events, self.directory = pool, settings, events, directory
        self.key = ledger_key(settings)
        self.victim = events[4] if len(events) > 4 else None

    async def owner(self, sql: str, *args: object) -> None:
        """As the owner, every trigger off (append-only, record time)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(sql, *args)

    async def stream(self, stream_id) -> list[StoredEvent]:  # noqa: ANN001
        return await EventStore(self.pool).read_stream(stream_id)

    async def rewrite_stream(self, stream_id, bodies: list[tuple[StoredEvent, bytes]]) -> None:  # noqa: ANN001
        """Give these events new bodies and re-chain the stream from the zero hash."""
        previous = ZERO_HASH
        new_bodies = {event.id: body for event, body in bodies}
        for event in await self.stream(stream_id):
            body = new_bodies.get(event.id, event.body)
            digest = chain_hash(previous, body)
            await self.owner("UPDATE events SET body = $2, hash = $3 WHERE id = $1", event.id, body, digest)
            previous = digest
        await self.owner("UPDATE streams SET head_hash = $2 WHERE stream_id = $1", stream_id, previous)

    async def rewrite_leaves(self) -> None:
        """Every leaf again from the events' present hashes."""
        for row in await self.pool.fetch('SELECT "index", event_id FROM ledger_leaves'):
            digest = await self.pool.fetchval("SELECT hash FROM events WHERE id = $1", row["event_id"])
            await self.owner(
                'UPDATE ledger_leaves SET leaf_hash = $2, entry = $3 WHERE "index" = $1',
                row["index"], merkle.leaf_hash(digest), digest,
            )

    async def resign(self) -> None:
        """Every checkpoint again, over the rewritten leaves, with the log's key."""
        leaves = [r["leaf_hash"] for r in await self.pool.fetch('SELECT leaf_hash FROM ledger_leaves ORDER BY "index"')]
        for row in await self.pool.fetch("SELECT tree_size FROM ledger_checkpoints"):
            head = TreeHead(origin=self.key.origin, tree_size=row["tree_size"], root=merkle.root(leaves[: row["tree_size"]]))
            await self.owner(
                "UPDATE ledger_checkpoints SET root = $2, signature = $3 WHERE tree_size = $1",
                head.tree_size, head.root, self.key.sign(head),
            )
        # And the public tiles, rebuilt from the rewritten leaves: a forger with the
        # key leaves nothing that disagrees with itself in the database.
        tiles = TreeTiles(0, {})
        tiles.extend(leaves)
        for tile, hashes in tiles.changed.items():
            await self.owner("UPDATE ledger_tiles SET hashes = $3 WHERE level = $1 AND idx = $2",
                             tile.level, tile.index, hashes)


def edited(event: StoredEvent) -> bytes:
    body = msgspec.json.decode(event.body)
    body["data"]["n"] = 99
    return canonical_encoder.encode(body)


async def edit_body(s: Scene) -> None:
    await s.owner("UPDATE events SET body = $2 WHERE id = $1", s.victim.id, edited(s.victim))


async def edit_rechain(s: Scene) -> None:
    await s.rewrite_stream(s.victim.stream_id, [(s.victim, edited(s.victim))])


async def edit_rechain_leaves(s: Scene) -> None:
    await edit_rechain(s)
    await s.rewrite_leaves()


async def edit_rechain_leaves_resign(s: Scene) -> None:
    await edit_rechain_leaves(s)
    await s.resign()


async def delete_middle(s: Scene) -> None:
    await s.owner("DELETE FROM events WHERE id = $1", s.victim.id)


async def delete_renumber(s: Scene) -> None:
    later = [e for e in await s.stream(s.victim.stream_id) if e.version > s.victim.version]
    await s.owner("DELETE FROM events WHERE id = $1", s.victim.id)
    rewritten = []
    for event in later:
        body = msgspec.json.decode(event.body)
        body["version"] = event.version - 1
        await s.owner("UPDATE events SET version = version - 1 WHERE id = $1", event.id)
        rewritten.append((event, canonical_encoder.encode(body)))
    await s.owner("UPDATE streams SET version = version - 1 WHERE stream_id = $1", s.victim.stream_id)
    await s.rewrite_stream(s.victim.stream_id, rewritten)


async def swap_order(s: Scene) -> None:
    a, b = s.events[3], s.events[4]  # other streams, next to each other in the log
    await s.owner("UPDATE events SET position = -1 WHERE id = $1", a.id)
    await s.owner("UPDATE events SET position = $2, txid = $3::text::xid8 WHERE id = $1", b.id, a.position, str(a.txid))
    await s.owner("UPDATE events SET position = $2, txid = $3::text::xid8 WHERE id = $1", a.id, b.position, str(b.txid))


def column(name: str, value: object) -> Callable[[Scene], Awaitable[None]]:
    async def change(s: Scene) -> None:
        await s.owner(f"UPDATE events SET {name} = $2 WHERE id = $1", s.victim.id, value)

    return change


async def backdated_insert(s: Scene) -> None:
    """A new event, correctly chained at the head of its stream, recorded "an hour ago"."""
    head = (await s.stream(s.victim.stream_id))[-1]
    then = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    body = msgspec.json.decode(head.body)
    import uuid

    body.update(id=str(uuid.uuid4()), version=head.version + 1, recorded_at=timestamp_text(then))
    raw = canonical_encoder.encode(body)
    digest = chain_hash(head.hash, raw)
    await s.owner(
        """
        INSERT INTO events (id, stream_id, stream_type, negotiation_id, version, type, schema_version, body, data,
                            occurred_on, recorded_at, recorded_by, claimed_by, hash, content_digest)
        SELECT $1, stream_id, stream_type, negotiation_id, $2, type, schema_version, $3, data,
               occurred_on, $4, recorded_by, claimed_by, $5, content_digest FROM events WHERE id = $6
        """,
        uuid.UUID(body["id"]), head.version + 1, raw, then, digest, head.id,
    )
    await s.owner("UPDATE streams SET version = $2, head_hash = $3 WHERE stream_id = $1",
                  s.victim.stream_id, head.version + 1, digest)
    await Sealer(s.pool, s.key).seal_once()  # the running sealer seals it, as any event


async def forged_checkpoint(s: Scene) -> None:
    other = LedgerKey(Ed25519PrivateKey.generate(), s.key.origin)
    size = await s.pool.fetchval("SELECT coalesce(max(tree_size), 0) + 1000 FROM ledger_checkpoints")
    head = TreeHead(origin=other.origin, tree_size=size, root=bytes(32))
    await s.owner(
        "INSERT INTO ledger_checkpoints (origin, tree_size, root, signed_at, signature, public_key) "
        "VALUES ($1, $2, $3, now(), $4, $5)",
        head.origin, size, head.root, other.sign(head), other.public_key,
    )


async def bad_import_lines(s: Scene) -> str | None:
    """`parley import` of an exported event (a stream new to this log, like the
    victim's in all but its ids), once with a served field that is not its body,
    once with its body altered under its hash: "import" if it refuses both at line 1,
    for that reason, and the log is unchanged."""
    served = msgspec.json.decode(msgspec.json.encode(exported(s.events[0])))
    body = msgspec.json.decode(s.events[0].body)
    body.update(id=str(uuid.uuid4()), stream_id=str(uuid.uuid4()))
    raw = canonical_encoder.encode(body)
    served.update(id=body["id"], stream_id=body["stream_id"], body=raw.decode(), hash=chain_hash(ZERO_HASH, raw).hex())
    altered_body = served["body"].replace('"n":', '"n":1')  # and its served data with it
    altered = {**served, "body": altered_body, "data": msgspec.json.decode(altered_body)["data"]}
    before = await s.pool.fetchval("SELECT count(*) FROM events")
    refused = []
    for bad, reason in (({**served, "recorded_by": "un-secretary-general"}, "recorded_by"), (altered, "altered")):
        path = s.directory / "bad-import.ndjson"
        path.write_bytes(msgspec.json.encode(bad) + b"\n")
        err = io.StringIO()

        def run() -> int:
            with contextlib.redirect_stderr(err):
                return main(["--database-url", s.settings.database_url, "import", str(path)])

        status = await asyncio.to_thread(run)
        refused.append(status == 1 and "line 1:" in err.getvalue() and reason in err.getvalue())
        assert refused[-1], (status, err.getvalue()[-2000:])
    unchanged = await s.pool.fetchval("SELECT count(*) FROM events") == before
    return "import" if all(refused) and unchanged else None


TAMPERS: dict[str, Callable[[Scene], Awaitable[str | None]]] = {
    "edit body": edit_body,
    "edit + re-chain": edit_rechain,
    "edit + re-chain + rewrite leaves": edit_rechain_leaves,
    "edit + re-chain + rewrite leaves + re-sign with the key": edit_rechain_leaves_resign,
    "delete a middle event": delete_middle,
    "delete + renumber + re-chain": delete_renumber,
    "swap two events' order": swap_order,
    "column recorded_at": column("recorded_at", dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)),
    "column recorded_by": column("recorded_by", "un-secretary-general"),
    "column occurred_on": column("occurred_on", "1999-01-01"),
    "column claimed_by": column("claimed_by", ["UA"]),
    "column note": column("note", "it never happened"),
    "column type": column("type", "issue.dropped"),
    "column stream_type": column("stream_type", "negotiation"),
    "column source": column("source", '{"url": "https://example.org/forged"}'),
    "column correlation_id": column("correlation_id", __import__("uuid").uuid4()),
    "column causation_id": column("causation_id", __import__("uuid").uuid4()),
    "column negotiation_id": column("negotiation_id", __import__("uuid").uuid4()),
    "column schema_version": column("schema_version", 7),
    "column id": column("id", __import__("uuid").uuid4()),
    "column stream_id": column("stream_id", __import__("uuid").uuid4()),
    "column version": column("version", 99),
    "backdated chained insert": backdated_insert,
    "forged checkpoint row": forged_checkpoint,
    "bad import lines": bad_import_lines,
}


def test_the_matrix_names_every_row() -> None:
    assert set(TAMPERS) == set(CATCHES)


async def caught_by_db(s: Scene) -> bool:
    report = await audit_log.verify_store(EventStore(s.pool), trusted_verifier(s.settings))
    return not report.ok


WITNESS_KINDS = {"recorded_too_early", "recorded_too_late", "cosignature_signature"}


async def caught_by_witness(s: Scene, witness: CosignatureVerifier) -> bool:
    report = await audit_log.verify_store(EventStore(s.pool), trusted_verifier(s.settings), witnesses=[witness])
    return any(m.kind in WITNESS_KINDS for m in report.mismatches)


def in_process_witness(
    pool: asyncpg.Pool, settings: Settings, directory: Path
) -> tuple[Cosigner, CosignatureVerifier]:
    """A witness of this log (its own key and state), and a cosigner asking it over HTTP."""
    witness = Witness(Ed25519PrivateKey.generate(), StateFile(directory / "witness-state.json"),
                      [ledger_key(settings).verifier])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_witness_app(witness)))
    endpoint = WitnessEndpoint(url="http://witness", vkey=witness.verifier.vkey())
    return Cosigner(pool, [endpoint], client=client, refresh=3600), witness.verifier


async def served_note(pool: asyncpg.Pool) -> str:
    """The latest checkpoint as GET /ledger/checkpoint serves it: with its cosignatures."""
    latest = await Ledger(pool).latest_checkpoint()
    assert latest is not None
    return await tile_store.cosigned_note(pool, latest)


async def caught_offline_by_witness(s: Scene, cosigned: list[Path], witness_key: Path, tmp_path: Path) -> bool:
    export = tmp_path / "after.ndjson"
    export.write_bytes(b"".join([c async for c in audit_log.export_lines(EventStore(s.pool))]))
    (tmp_path / "log.vkey").write_text(s.key.verifier.vkey() + "\n")
    argv = ["audit", "verify", str(export), "--public-key", str(tmp_path / "log.vkey"), "--json",
            "--witness-key", str(witness_key)] + [arg for path in cosigned for arg in ("--cosigned", str(path))]
    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out):
            return main(argv)

    status = await asyncio.to_thread(run)
    report = msgspec.json.decode(out.getvalue())  # the saved notes always open: a report, whatever the export
    assert report["cosignatures"] == len(cosigned) and (status == 0) == report["ok"]
    return any(m["kind"] in {"recorded_too_early", "recorded_too_late"} for m in report["mismatches"])


async def caught_offline(s: Scene, saved: Path, tmp_path: Path) -> bool:
    export = tmp_path / "after.ndjson"
    export.write_bytes(b"".join([c async for c in audit_log.export_lines(EventStore(s.pool))]))
    latest = await Ledger(s.pool).latest_checkpoint()
    assert latest is not None
    (tmp_path / "latest.checkpoint").write_text(latest.note())
    (tmp_path / "log.vkey").write_text(s.key.verifier.vkey() + "\n")
    argv = ["audit", "verify", str(export), "--public-key", str(tmp_path / "log.vkey"),
            "--checkpoint", str(tmp_path / "latest.checkpoint"), "--older-checkpoint", str(saved)]
    return await asyncio.to_thread(main, argv) != 0


@pytest.mark.parametrize("row", list(TAMPERS))
async def test_tamper_matrix(row: str, pool: asyncpg.Pool, settings: Settings, tmp_path: Path) -> None:
    writer = Writer(EventStore(pool))
    sealer = Sealer(pool, ledger_key(settings))
    cosigner, witness = in_process_witness(pool, settings, tmp_path)
    events = await writer.write(9)
    await sealer.seal_once()
    assert await cosigner.cosign_once() == {witness.name: 9}
    saved = tmp_path / "saved.checkpoint"
    first = await Ledger(pool).latest_checkpoint()
    assert first is not None and first.tree_size == 9
    saved.write_text(first.note())
    cosigned = [tmp_path / "cosigned-9.note", tmp_path / "cosigned-12.note"]
    cosigned[0].write_text(await served_note(pool))
    events += await writer.write(3)
    await sealer.seal_once()
    assert await cosigner.cosign_once() == {witness.name: 12}
    cosigned[1].write_text(await served_note(pool))
    witness_key = tmp_path / "witness.vkey"
    witness_key.write_text(witness.vkey() + "\n")
    scene = Scene(pool, settings, events, tmp_path)

    # Untouched, nobody complains: every catch below is the tampering's.
    assert not await caught_by_db(scene) and not await caught_offline(scene, saved, tmp_path)
    assert not await caught_by_witness(scene, witness)
    assert not await caught_offline_by_witness(scene, cosigned, witness_key, tmp_path)
    refused_by = await TAMPERS[row](scene)
    caught = {refused_by} if refused_by else set()
    if await caught_by_db(scene):
        caught.add("db")
    if await caught_offline(scene, saved, tmp_path):
        caught.add("offline")
    if await caught_by_witness(scene, witness):
        caught.add("witness")
    if await caught_offline_by_witness(scene, cosigned, witness_key, tmp_path):
        caught.add("offline witness")
    assert caught == CATCHES[row]


async def test_replay_reads_the_hashed_body_only(pool: asyncpg.Pool, runtime) -> None:  # noqa: ANN001
    from service.audit.offline import replay_export, replay_views
    from service.cli.demo import record_example

    await record_example(runtime)
    lines = b"".join([c async for c in audit_log.export_lines(EventStore(pool))]).splitlines()
    honest = msgspec.to_builtins(replay_export(lines))
    honest_views = [msgspec.to_builtins(replay_views(lines, **window))
                    for window in ({}, {"as_of": "2022-03-12"}, {"known_at": "2999-01-01"})]
    served = [msgspec.json.decode(line) for line in lines]
    for line in served:  # every served field beside the body changed, the body untouched
        line.update(type="issue.dropped", stream_type="negotiation", recorded_by="someone", note="forged",
                    data={"reason": "forged"})
    forged = [msgspec.json.encode(line) for line in served]
    assert msgspec.to_builtins(replay_export(forged)) == honest
    assert [msgspec.to_builtins(replay_views(forged, **window))
            for window in ({}, {"as_of": "2022-03-12"}, {"known_at": "2999-01-01"})] == honest_views
    assert honest_views[0] != honest_views[1] and honest_views[0][0]["timeline"]
    assert honest and any(issue["view"]["status"] != "dropped" for issue in honest)


async def test_a_forged_checkpoint_row_does_not_change_the_served_key(
    pool: asyncpg.Pool, settings: Settings, api, auditor: dict[str, str]  # noqa: ANN001
) -> None:
    before = (await api.get("/ledger/public-key", headers=auditor)).json()
    await forged_checkpoint(Scene(pool, settings, []))
    assert (await api.get("/ledger/public-key", headers=auditor)).json() == before
    assert before["vkey"] == trusted_verifier(settings).vkey()
    report = (await api.get("/audit/verify", headers=auditor)).json()
    assert not report["ok"] and report["first_mismatch"]["kind"] == "checkpoint_key"
