"""Schema migrations: projections carry their DDL, and databases migrated before
that (when migration 0002 was one file holding every projection's tables) keep
upgrading to exactly the schema a fresh database gets."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg

from projections import PROJECTIONS
from service.db import with_database
from service.migrate import MIGRATION_LOCK, available_migrations, migrate

OLD_0002 = (Path(__file__).parent / "fixtures" / "0002_projections_v1.sql").read_text()

_SCHEMA = """
SELECT 'column' AS kind, table_name || '.' || column_name AS name,
       concat_ws(' ', data_type, udt_name, is_nullable, column_default, ordinal_position::text) AS definition
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index', tablename || '.' || indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger', tgrelid::regclass::text || '.' || tgname, pg_get_triggerdef(oid)
FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'function', p.proname, pg_get_functiondef(p.oid)
FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'checkpoint', name, txid::text || '.' || position::text FROM projection_checkpoints
ORDER BY 1, 2
"""


async def _schema(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in await conn.fetch(_SCHEMA)]


async def _migrate_the_old_way(conn: asyncpg.Connection, up_to: int) -> None:
    """What the migrator did before projections carried their DDL: every file in
    order, with 0002 the single file of every projection's tables."""
    await conn.execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for migration in available_migrations():
        if migration.version > up_to:
            break
        await conn.execute(OLD_0002 if migration.version == 2 else migration.sql)
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name)


def test_every_projection_carries_its_tables_ddl():
    migrations = {m.version: m for m in available_migrations()}
    files = (Path(__file__).parents[2] / "service" / "migrations").glob("*.sql")
    service_files = "\n".join(path.read_text() for path in files)
    for projection in PROJECTIONS.values():
        ddl = "\n".join(step.sql for step in projection.schema)
        for table in projection.tables:
            assert f"CREATE TABLE {table} (" in ddl, (projection.name, table)
            # ...applied by the migration of its step (0002 for the first tables;
            # issue_snapshots came with 0050), and nowhere but beside the
            # projection: the service's files hold no projection table.
            [step] = [s for s in projection.schema if f"CREATE TABLE {table} (" in s.sql]
            assert f"CREATE TABLE {table} (" in migrations[step.version].sql
            assert f"CREATE TABLE {table} (" not in service_files, table
    assert "CREATE TABLE issue_status" not in service_files


async def test_a_fresh_database_has_the_schema_of_one_migrated_by_the_old_0002(empty_database_url, pg_server_url):
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await migrate(conn) == [m.version for m in available_migrations()]
        fresh = await _schema(conn)
    finally:
        await conn.close()

    admin = await asyncpg.connect(pg_server_url)
    name = f"parley_old_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        old = await asyncpg.connect(with_database(pg_server_url, name))
        try:
            # Migrated by the old code up to 0006, then upgraded by this one.
            await _migrate_the_old_way(old, up_to=6)
            applied = await migrate(old)
            assert applied == [m.version for m in available_migrations() if m.version > 6]
            assert await migrate(old) == []
            upgraded = await _schema(old)
        finally:
            await old.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    assert any(kind == "index" and name.startswith("issue_status.") for kind, name, _ in fresh)
    assert upgraded == fresh


def test_a_projection_step_with_a_new_number_is_its_own_migration(monkeypatch):
    from projections.projection import SchemaStep
    from projections.timeline import TimelineProjection

    step = SchemaStep(8, "timeline_example", "ALTER TABLE timeline ADD COLUMN example text;")
    monkeypatch.setattr(TimelineProjection, "schema", (*TimelineProjection.schema, step))
    migrations = {m.version: m for m in available_migrations()}
    assert migrations[8].name == "timeline_example"
    assert migrations[8].sql == step.sql
    assert "CREATE TABLE timeline (" in migrations[2].sql
    assert MIGRATION_LOCK
