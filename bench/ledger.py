"""bench.ledger — proofs from stored tiles at a million leaves, sealing rounds, and the
throughput of verification and replay, each beside its peer or limit in the same run.

1. Proofs. A ledger of N leaves (default 1,000,000; `--quick` 100,000) is written
   straight into `ledger_leaves` by one server-side INSERT (the tree does not look
   at events), then tiled by `service.audit.tile_store.catch_up` (what the first
   sealing round after an upgrade does). Then at tree size N:
   - inclusion and consistency proofs from tiles (`tile_store.inclusion` /
     `consistency`: one query, the nodes hashed out of the tiles), wall time;
   - the CPU part alone (the same computations over tiles already fetched): the
     time a proof holds the event loop;
   - the peer, proofs as they were computed before tiles: every leaf hash read,
     then `merkle.inclusion_proof` / `consistency_proof` over them.
2. Sealing. Real events appended on top of that ledger, then `Sealer.seal_once`:
   a cold round (a restarted sealer rebuilds its compact range from every stored
   leaf), then warm rounds of 1, 100 and 1,000 new events. An event waits at most
   the sealing interval (1 s) plus a round for the checkpoint that covers it.
3. Verify and replay. A log of M events (default 200,000; `--quick` 20,000) cloned
   from a template negotiation (bench._dataset) and sealed; then the limit, a
   sequential read of the events table, against `/audit/verify`'s
   `verify_store`, the offline `verify_export` of its export (`parley audit
   verify`) and `replay_export` (`parley audit replay`).

    uv run python -m bench.ledger [--quick] [--database-url URL] [--leaves N] [--events M]
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import uuid

import asyncpg

from bench._dataset import clone, record_template
from bench._harness import (
    Latencies,
    arguments,
    describe_machine,
    emit_json,
    fresh_database,
    now,
    postgres_server,
    print_table,
    progress,
    ratio,
    rounded,
    server_version,
    use_uvloop,
)
from service.audit import merkle, tile_store
from service.audit.ledger import LedgerKey, Sealer
from service.audit.tiles import TileNodes, tiles_needed
from service.db import create_pool
from service.store.event_store import EventStore
from service.store.events import PendingEvent

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Leaf i: SHA-256(0x00 || SHA-256(int8 i)); positions negative so that real events
# (positions from 1) sealed later never collide with them.
_SYNTHETIC_LEAVES_SQL = """
    INSERT INTO ledger_leaves ("index", event_id, position, txid, leaf_hash, entry)
    SELECT i, gen_random_uuid(), -(i + 1), '1'::xid8,
           sha256('\\x00'::bytea || sha256(int8send(i))), sha256(int8send(i))
    FROM generate_series($1::bigint, $2::bigint - 1) AS i
"""


async def build_ledger(url: str, leaves: int) -> tuple[float, float]:
    conn = await asyncpg.connect(url)
    try:
        started = now()
        for start in range(0, leaves, 250_000):
            await conn.execute(_SYNTHETIC_LEAVES_SQL, start, min(leaves, start + 250_000))
        written = now() - started
        started = now()
        async with conn.transaction():
            await tile_store.catch_up(conn, leaves)
        return written, now() - started
    finally:
        await conn.close()


async def proofs(url: str, size: int, samples: int, peer_samples: int) -> dict[str, dict[str, float]]:
    rng = random.Random(7)
    pool = await create_pool(url, min_size=1, max_size=2)
    figures: dict[str, dict[str, float]] = {}
    try:
        root = await tile_store.tree_root(pool, size)
        kinds = {
            "inclusion": lambda: rng.randrange(size),
            "consistency": lambda: rng.randrange(1, size),
        }
        for kind, pick in kinds.items():
            wall, cpu = Latencies(), Latencies()
            for _ in range(samples):
                at = pick()
                started = now()
                if kind == "inclusion":
                    proof, got = await tile_store.inclusion(pool, at, size)
                else:
                    proof, old_root, got = await tile_store.consistency(pool, at, size)
                wall.record(now() - started)
                assert got == root
                if kind == "inclusion":
                    leaf = merkle.leaf_hash(await pool.fetchval("SELECT entry FROM ledger_leaves WHERE \"index\" = $1", at))
                    merkle.verify_inclusion(at, size, leaf, root, proof)

                    def computation(nodes, at=at):  # noqa: ANN001
                        return merkle.inclusion_path(nodes, at, size), merkle.tree_root(nodes, size)
                else:
                    merkle.verify_consistency(at, size, old_root, root, proof)

                    def computation(nodes, at=at):  # noqa: ANN001
                        return (merkle.consistency_path(nodes, at, size), merkle.tree_root(nodes, at),
                                merkle.tree_root(nodes, size))
                keys = tiles_needed(computation)
                tiles = await tile_store.read_tiles(pool, keys)
                started = now()
                computation(TileNodes(tiles))
                cpu.record(now() - started)
            figures[f"{kind} from tiles"] = {"p50_ms": wall.p50_ms, "p99_ms": wall.p99_ms, "samples": samples,
                                             "tiles": len(keys)}
            figures[f"{kind}, CPU only (event loop held)"] = {"p50_ms": cpu.p50_ms, "p99_ms": cpu.p99_ms,
                                                              "samples": samples}
            peer = Latencies()
            for _ in range(peer_samples):
                at = pick()
                started = now()
                rows = await pool.fetch('SELECT leaf_hash FROM ledger_leaves WHERE "index" < $1 ORDER BY "index"', size)
                leaves = [r["leaf_hash"] for r in rows]
                if kind == "inclusion":
                    merkle.inclusion_proof(leaves, at)
                else:
                    merkle.consistency_proof(leaves, at)
                merkle.root(leaves)
                peer.record(now() - started)
            figures[f"{kind} from every leaf (before)"] = {"p50_ms": peer.p50_ms, "p99_ms": peer.p99_ms,
                                                           "samples": peer_samples}
    finally:
        await pool.close()
    return figures


def _pending(stream: uuid.UUID, n: int) -> PendingEvent:
    import msgspec

    return PendingEvent(
        id=uuid.uuid4(), stream_id=stream, stream_type="issue", type="issue.discussed", schema_version=1,
        data=msgspec.json.encode({"n": n}), occurred_on="2022-03-10", recorded_by="bench",
    )


async def sealing(url: str) -> list[tuple[str, int, float]]:
    pool = await create_pool(url, min_size=1, max_size=4)
    store = EventStore(pool)
    key = LedgerKey(Ed25519PrivateKey.generate(), "bench.test/log")
    rows = []
    try:
        streams = [uuid.uuid4() for _ in range(10)]
        written = 0

        async def write(count: int) -> None:
            nonlocal written
            for start in range(0, count, 100):
                batch = []
                for n in range(start, min(count, start + 100)):
                    batch.append(_pending(streams[(written + n) % 10], written + n))
                await store.append(batch)
            written += count

        await write(1)
        sealer = Sealer(pool, key)
        started = now()
        published = await sealer.seal_once(wait=True)
        rows.append(("cold round (compact range rebuilt from every leaf)", 1, now() - started))
        assert published is not None
        for count in (1, 100, 1_000):
            await write(count)
            started = now()
            await sealer.seal_once(wait=True)
            rows.append((f"warm round, {count:,} new events", count, now() - started))
    finally:
        await pool.close()
    return rows


async def verify_and_replay(server: str, events: int) -> dict[str, tuple[int, float]]:
    from service.audit.log import export_lines
    from service.audit.offline import replay_export, verify_export
    from service.audit.verify import verify_store

    results: dict[str, tuple[int, float]] = {}
    async with fresh_database(server, "ledger_verify", migrated=True) as url:
        progress("ledger: recording the template negotiation")
        template_id, template = await record_template(url)
        copies = max(1, round((events - len(template)) / len(template)))
        progress(f"ledger: cloning it {copies} times")
        total = len(template) + await clone(url, template_id, template, copies, progress)
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            sealer = Sealer(pool, LedgerKey(Ed25519PrivateKey.generate(), "bench.test/log"), batch_size=5000)
            progress("ledger: sealing the whole log in one round")
            started = now()
            await sealer.seal_once(wait=True)
            results["sealing (one round, every event a leaf, tiled)"] = (total, now() - started)
            conn = await asyncpg.connect(url)
            try:
                started = now()
                count = 0
                async with conn.transaction():
                    async for _ in conn.cursor("SELECT * FROM events ORDER BY txid, position", prefetch=5000):
                        count += 1
                results["sequential read (limit)"] = (count, now() - started)
            finally:
                await conn.close()
            progress("ledger: verify_store (GET /audit/verify)")
            started = now()
            report = await verify_store(EventStore(pool), sealer.key.verifier)
            results["/audit/verify (verify_store)"] = (report.events, now() - started)
            assert report.ok, report.first_mismatch
            with tempfile.TemporaryDirectory(prefix="bench-ledger-") as directory:
                path = os.path.join(directory, "export.ndjson")
                with open(path, "wb") as out:
                    async for chunk in export_lines(EventStore(pool), page_size=5000):
                        out.write(chunk)
                progress("ledger: offline verify and replay of the export")
                started = now()
                with open(path, "rb") as lines:
                    exported = verify_export(lines)
                results["parley audit verify (offline)"] = (exported.events, now() - started)
                assert exported.ok
                started = now()
                with open(path, "rb") as lines:
                    replay_export(lines)
                results["parley audit replay (offline)"] = (total, now() - started)
        finally:
            await pool.close()
    return results


async def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--leaves", type=int, help="ledger size for proofs (default 1,000,000; --quick 100,000)")
    parser.add_argument("--events", type=int, help="log size for verify/replay (default 200,000; --quick 20,000)")
    args = parser.parse_args()
    leaves = args.leaves or (100_000 if args.quick else 1_000_000)
    events = args.events or (20_000 if args.quick else 200_000)
    samples = 50 if args.quick else 300
    with postgres_server(args.database_url) as server:
        version = await server_version(server)
        async with fresh_database(server, "ledger", migrated=True) as url:
            progress(f"ledger: {leaves:,} leaves")
            written, tiled = await build_ledger(url, leaves)
            progress("ledger: proofs")
            proof_figures = await proofs(url, leaves, samples, 3)
            progress("ledger: sealing rounds")
            rounds = await sealing(url)
        throughput = await verify_and_replay(server, events)

    print_table(
        f"bench.ledger proofs at {leaves:,} leaves (PostgreSQL {version}; leaves written in {written:.1f} s, "
        f"tiled in {tiled:.1f} s)",
        ["what", "p50 ms", "p99 ms", "samples", "x tiles p50"],
        [[k, v["p50_ms"], v["p99_ms"], int(v["samples"]),
          ratio(v["p50_ms"], proof_figures[f"{k.split(' ')[0].rstrip(',')} from tiles"]["p50_ms"])]
         for k, v in proof_figures.items()],
    )
    print_table("bench.ledger sealing rounds on top of that ledger", ["round", "events", "seconds"],
                [list(r) for r in rounds])
    limit = throughput["sequential read (limit)"]
    limit_rate = limit[0] / limit[1]
    print_table(
        f"bench.ledger verify and replay ({limit[0]:,} events)",
        ["what", "events", "seconds", "events/s", "% limit"],
        [[k, n, s, n / s, ratio(n / s, limit_rate) * 100] for k, (n, s) in throughput.items()],
    )
    emit_json(
        {
            "benchmark": "ledger",
            "quick": args.quick,
            "postgres": version,
            "machine": describe_machine(),
            "leaves": leaves,
            "tiled_seconds": rounded(tiled),
            "proofs_ms": {k: {m: rounded(x, 3) for m, x in v.items()} for k, v in proof_figures.items()},
            "seal_rounds_s": {name: rounded(s, 3) for name, _, s in rounds},
            "throughput_events_per_s": {k: round(n / s) for k, (n, s) in throughput.items()},
            "of_limit": {k: rounded(ratio(n / s, limit_rate)) for k, (n, s) in throughput.items()},
        }
    )


if __name__ == "__main__":
    use_uvloop()
    asyncio.run(main())
