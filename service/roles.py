"""The database roles (DESIGN "Security (v2)").

- The **owner** owns the schema: it runs the migrations (`parley migrate`), the
  grants below and the swaps of `parley projections rebuild`. It can switch the
  append-only triggers off, so the service does not run as it.
- The **application role** (`parley_app` in the embedded default) owns nothing. It
  reads everything and writes what normal operation writes, but history is
  appended to, never changed: no UPDATE or DELETE on the events, the slugs and
  the ledger's leaves, checkpoints and cosignatures, no TRUNCATE anywhere, no DDL
  (so it cannot disable a trigger), and the migrations table is read-only.

APP_GRANTS is the one statement list for both: the embedded server applies it
after every migration run, `parley migrate --app-role ROLE` applies it to a
deployment's role, and docs/operations.md shows exactly this text (a test holds
them equal and runs `parley serve` as a role with exactly these grants). It is
written table-agnostically (ALL TABLES, then what history forbids), so a table
added by a later migration is usable by the service without editing this list.
"""

from __future__ import annotations

import asyncpg

APP_ROLE = "parley_app"

# Tables whose rows are history: the application role may append, never change.
APPEND_ONLY = ("events", "negotiation_slugs", "ledger_leaves", "ledger_checkpoints", "ledger_cosignatures")

APP_GRANTS = """\
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
REVOKE UPDATE, DELETE ON events, negotiation_slugs, ledger_leaves, ledger_checkpoints,
    ledger_cosignatures FROM {role};
REVOKE DELETE ON streams FROM {role};
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM {role};
"""


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def grant_app_role(conn: asyncpg.Connection, role: str) -> None:
    """Give `role` exactly the application grants (run as the owner, after migrating)."""
    await conn.execute(APP_GRANTS.format(role=quote_identifier(role)))


async def copy_grants(conn: asyncpg.Connection, source: str, target: str) -> None:
    """Grant on `target` what every role but the owner holds on `source` (a rebuild's
    fresh table replacing a live one keeps the application role's grants)."""
    rows = await conn.fetch(
        """
        SELECT a.grantee::regrole::text AS grantee, a.privilege_type, a.is_grantable
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = $1::regclass AND a.grantee <> c.relowner AND a.grantee <> 0
        """,
        source,
    )
    for row in rows:
        option = " WITH GRANT OPTION" if row["is_grantable"] else ""
        await conn.execute(f"GRANT {row['privilege_type']} ON {target} TO {row['grantee']}{option}")
    public = await conn.fetch(
        "SELECT a.privilege_type FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1::regclass AND a.grantee = 0",
        source,
    )
    for row in public:
        await conn.execute(f"GRANT {row['privilege_type']} ON {target} TO PUBLIC")
