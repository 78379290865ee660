"""bench.round_trips — the database round trips of one command, counted exactly.

CommandService (with the aggregate cache, as the server runs it) on a fresh
database of an embedded PostgreSQL: one negotiation with 8 short issues, one
warm-up `position.stated` on each, then `--commands` more, one request each (the
requests bench.http sends), with and without an Idempotency-Key. Every statement
the pool's connections send is counted (asyncpg's query logger), the pool's reset
on release included; the figure is statements per command and what they were.

    uv run python -m bench.round_trips [--database-url URL] [--commands N]
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import uuid

import asyncpg
import msgspec

from bench._harness import (
    arguments,
    fresh_database,
    postgres_server,
    print_table,
    progress,
)
from domain.commands import OpenNegotiation, parse_command
from service.store.event_store import EventStore
from service.write.aggregate_cache import AggregateCache
from service.write.commands import CommandService
from service.write.requests import Idempotency, OpenRequest, RecordRequest

ISSUES = 8


def _command(body: dict):
    return parse_command(json.dumps(body))


def _position(key: str, n: int) -> dict:
    return {"type": "position.stated", "occurred_on": "2022-03-16", "issue": key, "party": "RU",
            "stance": "supports", "summary": f"statement {n}"}  # fmt: skip


def _shape(query: str) -> str:
    first = re.sub(r"__asyncpg_savepoint_\w+__", "<savepoint>", " ".join(query.split()))
    return first if len(first) <= 70 else first[:67] + "..."


async def _count(url: str, commands: int) -> list[list[object]]:
    seen: collections.Counter[str] = collections.Counter()
    counting = False

    def logged(record: asyncpg.connection.LoggedQuery) -> None:
        if counting:
            seen[_shape(record.query)] += 1

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(logged)

    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, init=init)
    try:
        service = CommandService(EventStore(pool), AggregateCache())
        opening = msgspec.convert(
            {"title": "Talks", "slug": f"talks-{uuid.uuid4().hex[:6]}", "occurred_on": "2022-03-01",
             "parties": [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}]},
            OpenNegotiation,
        )  # fmt: skip
        outcome = await service.open(OpenRequest(opening, "bench"))
        negotiation_id = uuid.UUID(msgspec.json.decode(outcome.body)["negotiation_id"])
        keys = [f"issue-{i}" for i in range(ISSUES)]
        for key in keys:
            raised = {"type": "issue.raised", "occurred_on": "2022-03-01", "issue": key, "title": key,
                      "category": "humanitarian"}  # fmt: skip
            await service.record(RecordRequest(negotiation_id, [_command(raised)], "bench"))
            await service.record(RecordRequest(negotiation_id, [_command(_position(key, 0))], "bench"))
        rows: list[list[object]] = []
        for keyed in (False, True):
            seen.clear()
            counting = True
            for n in range(1, commands + 1):
                body = _position(keys[n % ISSUES], n)
                key = Idempotency("bench", uuid.uuid4().hex, uuid.uuid4().bytes) if keyed else None
                await service.record(RecordRequest(negotiation_id, [_command(body)], "bench", idempotency=key))
            counting = False
            label = "with Idempotency-Key" if keyed else "no Idempotency-Key"
            rows.append([label, "all statements", round(sum(seen.values()) / commands, 2)])
            rows += [[label, shape, round(count / commands, 2)] for shape, count in seen.most_common()]
        return rows
    finally:
        await pool.close()


async def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=64, help="commands counted (default 64)")
    args = parser.parse_args()
    with postgres_server(args.database_url) as server:
        async with fresh_database(server, "round_trips", migrated=True) as url:
            progress("round_trips: counting the statements of each command")
            rows = await _count(url, args.commands)
    print_table("round trips per command", ["request", "statement", "per command"], rows)


if __name__ == "__main__":
    asyncio.run(main())
