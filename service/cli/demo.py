"""`parley demo`: DESIGN.md's example report, recorded and then served.

The facts go through the command service of the composition root (service.bootstrap), the one
behind `POST /negotiations` and `POST /negotiations/{ref}/commands`, so the demo
is checked by exactly the rules a client's commands are. Each command is its own
request (its own transaction and `recorded_at`), as a person entering the report
fact by fact would record it; that gives the dashboard's "as recorded at" slider
a record that grows step by step.

Running it again records nothing new:

* once the negotiation's slug exists and its log holds at least one event per
  command of the report, the report is taken as recorded and nothing is sent;
* otherwise (a first run, or one interrupted half-way) every command carries a
  fixed Idempotency-Key, so what was already recorded is replayed, not repeated.

API keys are stored hashed, so a key cannot be shown twice: each run gives the
demo's reader and auditor keys a fresh secret and prints them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import sys
import uuid
from dataclasses import dataclass

import asyncpg
import msgspec

from domain import errors
from domain.example import example
from service import bootstrap
from service.auth import Role, create_key, ensure_key, unused_name
from service.bootstrap import Runtime
from service.cli.options import run_on_database, settings_from
from service.cli.serve import add_server_options, announce_first_key, cmd_serve
from service.config import Settings
from service.write.requests import Idempotency, OpenRequest, RecordRequest

# recorded_by on every fact of the demo: the name a key would have.
DEMO_RECORDER = "demo"
# Idempotency keys are scoped to an API key's id; the demo's own scope cannot
# collide with one (key ids are hex).
IDEMPOTENCY_SCOPE = "parley-demo"
DEMO_KEYS = {"demo-reader": Role.READER, "demo-auditor": Role.AUDITOR}


@dataclass(frozen=True)
class DemoRecord:
    negotiation_id: uuid.UUID
    slug: str
    events_written: int
    already_recorded: bool


def _idempotency(step: str, command: object) -> Idempotency:
    body = msgspec.json.encode(command, order="sorted")
    return Idempotency(
        scope=IDEMPOTENCY_SCOPE,
        key=f"demo-{step}",
        request_digest=hashlib.sha256(body).digest(),
    )


async def _negotiation_by_slug(runtime: Runtime, slug: str) -> uuid.UUID | None:
    try:
        return await runtime.queries.resolve_negotiation(slug)
    except errors.UnknownNegotiation:
        return None


async def record_example(runtime: Runtime) -> DemoRecord:
    """Record the example report unless it is recorded already."""
    opened, commands = example()
    slug = opened.slug
    service = runtime.commands
    negotiation_id = await _negotiation_by_slug(runtime, slug)
    # Every command writes at least one event, plus the opening: fewer means a
    # first or interrupted run. Counting (rather than trusting idempotency keys
    # alone) keeps a rerun harmless after the keys' retention has passed.
    if negotiation_id is not None and await runtime.store.count_events(negotiation_id) >= 1 + len(commands):
        return DemoRecord(negotiation_id, slug, 0, already_recorded=True)

    written = 0
    if negotiation_id is None:
        outcome = await service.open(OpenRequest(opened, DEMO_RECORDER, _idempotency("open", opened)))
        negotiation_id = uuid.UUID(msgspec.json.decode(outcome.body)["negotiation_id"])
        written += outcome.events_written
    for index, command in enumerate(commands, start=1):
        outcome = await service.record(
            RecordRequest(negotiation_id, [command], DEMO_RECORDER, idempotency=_idempotency(f"{index:03d}", command))
        )
        written += outcome.events_written
    return DemoRecord(negotiation_id, slug, written, already_recorded=False)


async def issue_demo_key(conn: asyncpg.Connection | asyncpg.Pool, name: str, role: Role) -> str:
    """The key named `name` with a fresh secret (created on the first run)."""
    key_id = await conn.fetchval("SELECT key_id FROM api_keys WHERE name = $1", name)
    if key_id is None:
        return await create_key(conn, name, role)
    key = f"pk_{key_id}_{secrets.token_urlsafe(32)}"
    if not await ensure_key(conn, key, name, role):
        # Revoked by an operator: it stays revoked; the demo gets a key of a new name.
        return await create_key(conn, await unused_name(conn, name), role)
    return key


async def prepare_demo(settings: Settings) -> tuple[DemoRecord, dict[str, str]]:
    """Record the report and issue the demo's keys."""
    async with bootstrap.running(settings, pool_size=2) as runtime:
        record = await record_example(runtime)
        keys = {name: await issue_demo_key(runtime.pool, name, role) for name, role in DEMO_KEYS.items()}
        return record, keys


def describe(record: DemoRecord, keys: dict[str, str], base_url: str | None) -> str:
    lines = [
        f"The example report is already recorded ({record.slug}); nothing new was written."
        if record.already_recorded
        else f"Recorded the example report: {record.events_written} events in negotiation {record.slug}.",
    ]
    if base_url:
        lines.append(f"Dashboard: {base_url}/  (type one of these keys into the page)")
    lines += [f"  {name.removeprefix('demo-')} key: {key}" for name, key in keys.items()]
    lines.append("  (new secrets on every run of `parley demo`; `parley keys create` makes lasting keys)")
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    def record_then_announce(url: str, base_url: str | None) -> None:
        record, keys = asyncio.run(prepare_demo(settings_from(args).with_overrides(database_url=url)))
        print(describe(record, keys, base_url), file=sys.stderr, flush=True)

    if args.no_serve:

        async def record_only(settings: Settings) -> None:
            announce_first_key(await bootstrap.prepare(settings, first_admin_key=True))
            record, keys = await prepare_demo(settings)
            print(describe(record, keys, None), file=sys.stderr, flush=True)

        return run_on_database(args, record_only)
    return cmd_serve(args, before_serving=record_then_announce)


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="record DESIGN's example report (once), then serve like `serve`")
    add_server_options(demo)
    demo.add_argument("--no-serve", action="store_true", help="record the example and print the keys, then exit")
    demo.set_defaults(run=cmd_demo)
