"""`parley` command line. Configuration comes from the environment; flags override it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg

from service.config import Settings
from service.db import database_url
from service.migrate import migrate


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
    )


async def _migrate(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    with database_url(_settings(args)) as url:
        applied = asyncio.run(_migrate(url))
    print(f"applied migrations: {applied}" if applied else "schema is up to date", file=sys.stderr)
    return 0


class _Stopped(Exception):
    """SIGINT/SIGTERM after the server has shut down gracefully."""


def _stop_on_signal(signum: int, frame: object) -> None:
    raise _Stopped(signum)


async def _prepare(url: str, admin_key: str | None) -> str | None:
    """Migrate; ensure PARLEY_ADMIN_KEY; on a first start with no key at all, create
    an admin key and return it (to be printed once)."""
    from service.auth import Role, any_key, create_key, ensure_key

    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        if admin_key:
            await ensure_key(conn, admin_key, "admin", Role.ADMIN)
            return None
        if not await any_key(conn):
            return await create_key(conn, "admin", Role.ADMIN)
        return None
    finally:
        await conn.close()


def cmd_serve(args: argparse.Namespace, before_serving: Callable[[str, str], None] | None = None) -> int:
    """Serve; `before_serving(database_url, base_url)` runs once the schema is ready
    (`parley demo` records its example there)."""
    import uvicorn

    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal
    # to the handler it found at start: make that handler unwind the stack, so the
    # embedded PostgreSQL started below is stopped cleanly before the process exits.
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)

    settings = _settings(args)
    with database_url(settings) as url:
        # Migrate once before the workers start, so they never race on an empty database.
        first_key = asyncio.run(_prepare(url, settings.admin_key))
        if first_key:
            print(f"Created the first admin key (shown only now): {first_key}", file=sys.stderr, flush=True)
        os.environ["PARLEY_DATABASE_URL"] = url
        if settings.admin_key:
            os.environ["PARLEY_ADMIN_KEY"] = settings.admin_key
        if before_serving is not None:
            before_serving(url, f"http://{settings.host}:{settings.port}")
        print(f"Parley serving on http://{settings.host}:{settings.port}", file=sys.stderr, flush=True)
        try:
            uvicorn.run(
                "service.http.app:create_app_from_env",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=args.workers,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=10,
            )
        except _Stopped:
            pass
    print("Parley stopped", file=sys.stderr, flush=True)
    return 0


async def _keys(url: str, args: argparse.Namespace) -> int:
    from service.auth import KeyNameTaken, Role, create_key, list_keys, revoke_key

    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        if args.keys_command == "create":
            try:
                print(await create_key(conn, args.name, Role(args.role)))
            except KeyNameTaken as error:
                print(f"parley: {error}", file=sys.stderr)
                return 1
        elif args.keys_command == "list":
            for row in await list_keys(conn):
                state = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "active"
                print(f"{row['name']}\t{row['role']}\tpk_{row['key_id']}_…\t{state}")
        elif args.keys_command == "revoke":
            if not await revoke_key(conn, args.name):
                print(f"parley: no active key named {args.name!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.name}", file=sys.stderr)
        return 0
    finally:
        await conn.close()


def cmd_keys(args: argparse.Namespace) -> int:
    with database_url(_settings(args)) as url:
        return asyncio.run(_keys(url, args))


async def _project(url: str, names: list[str]) -> None:
    from service.projection.runner import Projector

    await _migrate(url)
    projector = Projector(url, names)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    runner = projector.start()
    print(f"projecting {', '.join(names)}; Ctrl-C stops", file=sys.stderr, flush=True)
    await asyncio.wait([runner, asyncio.create_task(stopped.wait())], return_when=asyncio.FIRST_COMPLETED)
    await projector.stop()


def cmd_project(args: argparse.Namespace) -> int:
    """Run the projection runner alone (API processes may run theirs too: one
    holds each projection, the others stand by)."""
    from projections import PROJECTION_NAMES

    with database_url(_settings(args)) as url:
        asyncio.run(_project(url, args.only or list(PROJECTION_NAMES)))
    return 0


async def _rebuild(url: str, names: list[str]) -> None:
    from service.projection.runner import rebuild

    await _migrate(url)
    for name in names:
        result = await rebuild(url, name)
        print(
            f"rebuilt {result.name}: {result.events} events in {result.seconds:.1f}s, swapped in at {result.checkpoint.token()}",
            file=sys.stderr,
            flush=True,
        )


def cmd_projections_rebuild(args: argparse.Namespace) -> int:
    from projections import PROJECTION_NAMES

    names = list(PROJECTION_NAMES) if args.name == "ALL" else [args.name]
    with database_url(_settings(args)) as url:
        asyncio.run(_rebuild(url, names))
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from service.http.openapi import print_document

    return print_document()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Parley: the record of negotiations.")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: $PARLEY_DATABASE_URL, else embedded)")
    parser.add_argument("--data-dir", help="embedded database and files (default: $PARLEY_DATA_DIR)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API (embedded PostgreSQL when no database URL)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1, help="API processes sharing the database")
    serve.set_defaults(run=cmd_serve)

    migrate_cmd = commands.add_parser("migrate", help="apply schema migrations")
    migrate_cmd.set_defaults(run=cmd_migrate)

    openapi_cmd = commands.add_parser("openapi", help="print the OpenAPI document (openapi/openapi.json)")
    openapi_cmd.set_defaults(run=cmd_openapi)

    keys = commands.add_parser("keys", help="API keys: create, list, revoke")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_commands.add_parser("create", help="create a key and print it alone on stdout")
    create.add_argument("--role", required=True, choices=["reader", "recorder", "auditor", "admin"])
    create.add_argument("--name", required=True, help="recorded as recorded_by on what the key writes")
    keys_commands.add_parser("list", help="list keys (never their secrets)")
    revoke = keys_commands.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    keys.set_defaults(run=cmd_keys)

    from projections import PROJECTION_NAMES

    project = commands.add_parser("project", help="run the projection runner as its own worker")
    project.add_argument("--only", nargs="+", choices=PROJECTION_NAMES, help="projections to hold (default: all)")
    project.set_defaults(run=cmd_project)

    projections_cmd = commands.add_parser("projections", help="read models: rebuild")
    projections_commands = projections_cmd.add_subparsers(dest="projections_command", required=True)
    rebuild_cmd = projections_commands.add_parser(
        "rebuild", help="replay the whole log into fresh tables and swap them in (reads go on)"
    )
    rebuild_cmd.add_argument("name", choices=[*PROJECTION_NAMES, "ALL"])
    rebuild_cmd.set_defaults(run=cmd_projections_rebuild)

    from service.cli.demo import add_demo_parser

    add_demo_parser(commands)

    from service.cli.importer import add_import_parser

    add_import_parser(commands)

    from service.cli.audit import add_audit_commands

    add_audit_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("PARLEY_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
