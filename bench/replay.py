"""bench.replay — rebuilding every projection, and the offline replay of an export,
against a plain sequential read of the events table.

A template negotiation (~1,000 events) is recorded through the command service and
cloned to 1,000,000 events (`--quick`: 50,000; bench._dataset). Then, on that log:

- limit:   `SELECT * FROM events ORDER BY txid, position` through an asyncpg cursor;
- rebuild: `service.projection.rebuild.rebuild_all` (what `parley projections
  rebuild ALL` runs): every projection in one pass over the log;
- ceiling: what a rebuild could reach with this domain if its writes were free:
  the log read as a rebuild reads it (`EventStore.read_log`), every event decoded
  once (`fact_from_stored`) and every projection folded in memory with the
  rebuild's own fold (`projections.bulk.BulkFold`), every row built, none
  written; and, below it, the read and the decoding alone;
- export:  `service.audit.log.export_lines` to an NDJSON file (`parley audit export`);
- replay:  `service.audit.offline.replay_export` of that file (`parley audit replay`).

    uv run python -m bench.replay [--quick] [--database-url URL] [--events N]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile

import asyncpg

from bench._dataset import clone, record_template
from bench._harness import (
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
from service.db import create_pool
from service.store.event_store import EventStore


async def settle(url: str) -> None:
    """Vacuum the freshly loaded log and checkpoint, so that no row pays for it:
    otherwise autovacuum starts on the new events (and the first reader sets
    their hint bits) while the rows after the limit are being timed."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM (ANALYZE) events")
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):  # a server given by URL
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def sequential_read(url: str) -> tuple[int, float]:
    conn = await asyncpg.connect(url)
    try:
        started = now()
        count = 0
        async with conn.transaction():
            async for _ in conn.cursor("SELECT * FROM events ORDER BY txid, position", prefetch=5000):
                count += 1
        return count, now() - started
    finally:
        await conn.close()


async def rebuild_all(url: str) -> tuple[dict[str, float], int]:
    """`parley projections rebuild ALL`: every projection in one pass over the log."""
    from service.projection.rebuild import rebuild_all as rebuild_every_projection

    pool = await create_pool(url, min_size=2, max_size=2)
    try:
        progress("replay: rebuilding every projection in one pass")
        results = await rebuild_every_projection(pool, progress=None)
    finally:
        await pool.close()
    return {"all (one pass)": results[0].seconds}, results[0].events


async def fold_in_memory(url: str, *, fold: bool) -> tuple[int, float]:
    """The rebuild's read, decoding and (with `fold`) in-memory fold of every
    projection, rows built and dropped: the bound of any rebuild of this domain."""
    from projections import PROJECTION_NAMES
    from projections.bulk import BulkFold
    from projections.records import fact_from_stored
    from service.projection.checkpoints import stream_history
    from service.projection.rebuild import rare_collections
    from service.store.event_store import START

    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        store = EventStore(pool)
        async with pool.acquire() as conn:
            history = stream_history(store, conn)
            folding = BulkFold(PROJECTION_NAMES)
            started = now()
            checkpoint, count = START, 0
            with rare_collections():  # as the rebuild, without its occasional gc.collect()
                while batch := await store.read_log(checkpoint, 2000, conn=conn):
                    facts = [fact_from_stored(e) for e in batch]
                    if fold:
                        await folding.add(facts, history)
                    checkpoint, count = batch[-1].checkpoint, count + len(batch)
                if fold:
                    await folding.finish(history)
            return count, now() - started
    finally:
        await pool.close()


async def export(url: str, path: str) -> tuple[int, float]:
    from service.audit.log import export_lines

    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        started = now()
        lines = 0
        with open(path, "wb") as out:
            async for chunk in export_lines(EventStore(pool), page_size=5000):
                out.write(chunk)
                lines += chunk.count(b"\n")
        return lines, now() - started
    finally:
        await pool.close()


def replay(path: str) -> tuple[int, float]:
    from service.audit.offline import replay_export

    started = now()
    with open(path, "rb") as lines:
        issues = replay_export(lines)
    return len(issues), now() - started


async def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, help="log size (default 1,000,000; --quick 50,000)")
    args = parser.parse_args()
    target = args.events or (50_000 if args.quick else 1_000_000)
    with postgres_server(args.database_url) as server:
        version = await server_version(server)
        async with fresh_database(server, "replay", migrated=True) as url:
            progress("replay: recording the template negotiation through the command service")
            template_id, template = await record_template(url)
            copies = max(1, round((target - len(template)) / len(template)))
            progress(f"replay: cloning it {copies} times ({len(template)} events each)")
            started = now()
            total = len(template) + await clone(url, template_id, template, copies, progress)
            generated = now() - started
            await settle(url)

            progress("replay: sequential read (limit)")
            read_events, read_seconds = await sequential_read(url)
            rebuild_seconds, rebuilt_events = await rebuild_all(url)
            progress("replay: the same read, decoding and fold in memory, nothing written (ceiling)")
            folded_events, fold_seconds = await fold_in_memory(url, fold=True)
            decoded_events, decode_seconds = await fold_in_memory(url, fold=False)
            with tempfile.TemporaryDirectory(prefix="bench-replay-") as directory:
                path = os.path.join(directory, "export.ndjson")
                progress("replay: exporting")
                exported, export_seconds = await export(url, path)
                size = os.path.getsize(path)
                progress("replay: offline replay of the export")
                issues, replay_seconds = replay(path)

    limit_rate = read_events / read_seconds
    rows = [["sequential read (limit)", read_events, read_seconds, limit_rate, 100.0]]
    all_seconds = sum(rebuild_seconds.values())
    rows.append(["rebuild all projections (one pass)", rebuilt_events, all_seconds, rebuilt_events / all_seconds,
                 ratio(rebuilt_events / all_seconds, limit_rate) * 100])  # fmt: skip
    rows.append(["ceiling: read, decode, fold in memory, no writes", folded_events, fold_seconds,
                 folded_events / fold_seconds, ratio(folded_events / fold_seconds, limit_rate) * 100])  # fmt: skip
    rows.append(["  of which read and decode", decoded_events, decode_seconds, decoded_events / decode_seconds,
                 ratio(decoded_events / decode_seconds, limit_rate) * 100])  # fmt: skip
    rows.append(["export NDJSON", exported, export_seconds, exported / export_seconds,
                 ratio(exported / export_seconds, limit_rate) * 100])  # fmt: skip
    rows.append(["offline replay of the export", exported, replay_seconds, exported / replay_seconds,
                 ratio(exported / replay_seconds, limit_rate) * 100])  # fmt: skip
    print_table(
        f"bench.replay on PostgreSQL {version} ({total:,} events, generated in {generated:.0f} s; "
        f"export {size / 2**20:,.0f} MiB, {issues:,} issues replayed)",
        ["what", "events", "seconds", "events/s", "% limit"],
        rows,
    )
    emit_json(
        {
            "benchmark": "replay",
            "quick": args.quick,
            "postgres": version,
            "machine": describe_machine(),
            "events": total,
            "limit_events_per_s": round(limit_rate),
            "rebuild_seconds": {k: rounded(v) for k, v in rebuild_seconds.items()},
            "rebuild_all_events_per_s": round(rebuilt_events / all_seconds),
            "rebuild_all_of_limit": rounded(ratio(rebuilt_events / all_seconds, limit_rate)),
            "slowest_rebuild_of_limit": rounded(
                ratio(rebuilt_events / max(rebuild_seconds.values()), limit_rate)
            ),
            "ceiling_events_per_s": round(folded_events / fold_seconds),
            "ceiling_of_limit": rounded(ratio(folded_events / fold_seconds, limit_rate)),
            "rebuild_of_ceiling": rounded(ratio(rebuilt_events / all_seconds, folded_events / fold_seconds)),
            "read_decode_of_limit": rounded(ratio(decoded_events / decode_seconds, limit_rate)),
            "export_events_per_s": round(exported / export_seconds),
            "replay_events_per_s": round(exported / replay_seconds),
            "replay_of_limit": rounded(ratio(exported / replay_seconds, limit_rate)),
            "export_mib": round(size / 2**20, 1),
        }
    )


if __name__ == "__main__":
    use_uvloop()
    asyncio.run(main())
