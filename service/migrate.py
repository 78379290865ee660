"""Versioned schema migrations, applied in order.

A migration is `service/migrations/NNNN_name.sql`, followed (same number, same
transaction) by the `schema` steps of the projections that carry that number:
each projection keeps the DDL of its tables beside its module
(projections/<name>.py, `projections.projection.SchemaStep`). Migration 2 is the
checkpoints table (its file) and then every projection's tables; a database
migrated when all of it was one file has exactly the same schema, and its
recorded version 2 is not applied again.

Applied by `parley migrate` (as the owner of the schema) and at start-up. All
pending files run in one transaction under an advisory lock: several processes
starting at once apply each migration exactly once, and a failing migration leaves
the schema as it was. A start on an up-to-date schema only reads
`schema_migrations` (`pending`), so the application role, which may create
nothing, starts without any DDL; with migrations pending it gets a one-line error
saying to run `parley migrate` as the owner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger("parley.migrate")

# Any fixed number: the lock only has to be the same in every Parley process.
MIGRATION_LOCK = 0x7061726C6579  # "parley"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    from projections import PROJECTIONS

    files: dict[int, Migration] = {}
    for entry in resources.files("service.migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            migration = Migration(int(number), rest.removesuffix(".sql"), entry.read_text())
            if migration.version in files:
                raise RuntimeError(f"two migrations share the number {migration.version}")
            files[migration.version] = migration
    steps: dict[int, list[tuple[str, str]]] = {}
    for projection in PROJECTIONS.values():
        for step in projection.schema:
            steps.setdefault(step.version, []).append((step.name, step.sql))
    found = []
    for version in sorted(files.keys() | steps.keys()):
        parts = ([files[version].sql] if version in files else []) + [sql for _, sql in steps.get(version, [])]
        name = files[version].name if version in files else "+".join(dict.fromkeys(n for n, _ in steps[version]))
        found.append(Migration(version, name, "\n".join(parts)))
    return found


class MigrationsPending(RuntimeError):
    """The schema is behind and this role may not migrate it."""


async def pending(conn: asyncpg.Connection) -> list[Migration]:
    """The migrations not applied yet; a read that needs no privilege beyond SELECT
    on schema_migrations (none at all on an empty database)."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return available_migrations()
    done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [m for m in available_migrations() if m.version not in done]


async def ensure_migrated(conn: asyncpg.Connection) -> list[int]:
    """At start-up: nothing but a read when the schema is current; otherwise migrate,
    which only the owner may (MigrationsPending for any other role)."""
    if not await pending(conn):
        return []
    try:
        return await migrate(conn)
    except asyncpg.InsufficientPrivilegeError as error:
        missing = ", ".join(f"{m.version:04d}" for m in await pending(conn))
        user = await conn.fetchval("SELECT current_user")
        raise MigrationsPending(
            f"migrations {missing} are not applied and role {user!r} may not apply them ({error}); "
            "run `parley migrate` as the owner of the schema"
        ) from None


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply every migration not yet applied; returns the versions applied now."""
    applied_now = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
            await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in available_migrations():
            if migration.version in done:
                continue
            log.info("applying migration %04d %s", migration.version, migration.name)
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied_now.append(migration.version)
    return applied_now
