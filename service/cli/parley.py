"""`parley` command line. Configuration comes from the environment; flags override it.

Every command that runs the service starts from the composition root
(service.bootstrap); this module only parses arguments and prints.
"""

from __future__ import annotations

import argparse
import sys

from projections import PROJECTION_NAMES
from service import bootstrap
from service.cli.audit import add_audit_commands
from service.cli.background import run_until_stopped
from service.cli.demo import add_demo_parser
from service.cli.errors import Parser, run_reporting_errors
from service.cli.importer import add_import_parser
from service.cli.options import run_on_database
from service.cli.serve import add_server_options, cmd_serve
from service.config import Settings
from service.db import connect
from service.migrate import migrate


def cmd_migrate(args: argparse.Namespace) -> int:
    """As the owner of the schema; `--app-role` (or PARLEY_APP_ROLE) then gives that
    role exactly the application grants (service.roles.APP_GRANTS), `--sealer-role`
    (or PARLEY_SEALER_ROLE) that role the sealer's (SEALER_GRANTS)."""
    from service.roles import grant_app_role, grant_sealer_role

    async def apply(settings: Settings) -> None:
        conn = await connect(settings.migration_url or "")
        role = args.app_role or settings.app_role
        sealer = args.sealer_role or settings.sealer_role
        try:
            applied = await migrate(conn)
            if role:
                await grant_app_role(conn, role)
            if sealer:
                await grant_sealer_role(conn, sealer)
        finally:
            await conn.close()
        print(f"applied migrations: {applied}" if applied else "schema is up to date", file=sys.stderr)
        if role:
            print(f"granted the application grants to {role}", file=sys.stderr)
        if sealer:
            print(f"granted the sealer grants to {sealer}", file=sys.stderr)

    return run_on_database(args, apply)


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from service.auth import KeyNameTaken, Role, create_key, list_keys, revoke_key

    async with bootstrap.running(settings, pool_size=1) as runtime:
        if args.keys_command == "create":
            try:
                print(await create_key(runtime.pool, args.name, Role(args.role)))
            except KeyNameTaken as error:
                print(f"parley: {error}", file=sys.stderr)
                return 1
        elif args.keys_command == "list":
            for row in await list_keys(runtime.pool):
                state = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "active"
                print(f"{row['name']}\t{row['role']}\tpk_{row['key_id']}_…\t{state}")
        elif args.keys_command == "revoke":
            if not await revoke_key(runtime.pool, args.name):
                print(f"parley: no active key named {args.name!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.name}", file=sys.stderr)
        return 0


def cmd_keys(args: argparse.Namespace) -> int:
    return run_on_database(args, lambda settings: _keys(settings, args))


async def _project(settings: Settings, names: list[str]) -> None:
    async with bootstrap.running(settings, pool_size=2, projections=names) as runtime:
        await run_until_stopped(runtime, f"projecting {', '.join(names)}")


def cmd_project(args: argparse.Namespace) -> int:
    """Run the projection runner alone (API processes may run theirs too: one
    holds each projection, the others stand by)."""
    return run_on_database(args, lambda settings: _project(settings, args.only or list(PROJECTION_NAMES)))


async def _seal(settings: Settings) -> None:
    from service.http.metrics import count_witness_asks

    async with bootstrap.running(settings, pool_size=2, seal=True) as runtime:
        # Started by `serve --workers N`, this process shares the workers'
        # PROMETHEUS_MULTIPROC_DIR: their /metrics add its witness counters up.
        count_witness_asks(runtime)
        await run_until_stopped(runtime, "sealing the ledger")


def cmd_seal(args: argparse.Namespace) -> int:
    """Run the ledger sealer alone (every process that seals takes turns: a round's
    advisory lock lets one seal at a time)."""
    return run_on_database(args, _seal)


async def _rebuild(settings: Settings, names: list[str]) -> None:
    from service.projection.rebuild import rebuild_all

    # The swap drops and replaces tables: the owner's work (the new tables keep
    # the grants the old ones had, service.roles.copy_grants).
    owner = settings.with_overrides(database_url=settings.migration_url)
    async with bootstrap.running(owner, pool_size=2) as runtime:
        # ALL is one pass over the log for every projection (one bar).
        for result in await rebuild_all(runtime.pool, names):
            print(
                f"rebuilt {result.name}: {result.events} events in {result.seconds:.1f}s, "
                f"swapped in at {result.checkpoint.token()}",
                file=sys.stderr,
                flush=True,
            )


def cmd_projections_rebuild(args: argparse.Namespace) -> int:
    names = list(PROJECTION_NAMES) if args.name == "ALL" else [args.name]
    return run_on_database(args, lambda settings: _rebuild(settings, names))


def cmd_openapi(args: argparse.Namespace) -> int:
    """The document as committed in openapi/openapi.json (no database needed)."""
    from service.http import openapi
    from service.http.app import create_app

    # The app is only built, never started: the URL is not connected to.
    app = create_app(Settings.from_env({}).with_overrides(database_url="postgresql://openapi.invalid/parley"))
    sys.stdout.buffer.write(openapi.encode(openapi.document(app)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="parley", description="Parley: the record of negotiations.")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: $PARLEY_DATABASE_URL, else embedded)")
    parser.add_argument("--data-dir", help="embedded database and files (default: $PARLEY_DATA_DIR)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API (embedded PostgreSQL when no database URL)")
    add_server_options(serve)
    serve.set_defaults(run=cmd_serve)

    migrate_cmd = commands.add_parser("migrate", help="apply schema migrations (as the owner of the schema)")
    migrate_cmd.add_argument("--app-role", help="then give this role the application grants (docs/operations.md)")
    migrate_cmd.add_argument("--sealer-role", help="then give this role the sealer grants (docs/operations.md)")
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

    project = commands.add_parser("project", help="run the projection runner as its own worker")
    project.add_argument("--only", nargs="+", choices=PROJECTION_NAMES, help="projections to hold (default: all)")
    project.set_defaults(run=cmd_project)

    seal = commands.add_parser("seal", help="run the ledger sealer as its own worker")
    seal.set_defaults(run=cmd_seal)

    projections_cmd = commands.add_parser("projections", help="read models: rebuild")
    projections_commands = projections_cmd.add_subparsers(dest="projections_command", required=True)
    rebuild_cmd = projections_commands.add_parser(
        "rebuild", help="replay the whole log into fresh tables and swap them in (reads go on)"
    )
    rebuild_cmd.add_argument("name", choices=[*PROJECTION_NAMES, "ALL"])
    rebuild_cmd.set_defaults(run=cmd_projections_rebuild)

    add_demo_parser(commands)
    add_import_parser(commands)
    add_audit_commands(commands)

    from service.cli.witness import add_witness_parser

    add_witness_parser(commands)

    from service.cli.dev_cluster import add_dev_parser

    add_dev_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from service import logs

    try:
        logs.configure()
    except logs.InvalidLogSetting as error:
        print(f"parley: {error}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    return run_reporting_errors(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from service.auth import InvalidAdminKey
    from service.keyfiles import UnsafeKeyFile
    from service.migrate import MigrationsPending

    try:
        return int(args.run(args) or 0)
    except (MigrationsPending, UnsafeKeyFile, InvalidAdminKey) as error:
        # A refusal an operator acts on: one line, no traceback (anything else:
        # service.cli.errors).
        print(f"parley: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
