"""The database roles (DESIGN "Security (v2)").

- The **owner** owns the schema: it runs the migrations (`parley migrate`), the
  grants below and the swaps of `parley projections rebuild`. It can switch the
  append-only triggers off, so the service does not run as it.
- The **application role** (`parley_app` in the embedded default) owns nothing. It
  reads everything and writes what normal operation writes, but history is
  appended to, never changed: no UPDATE or DELETE on the events and the slugs, no
  TRUNCATE anywhere, no DDL (so it cannot disable a trigger), and the migrations
  table is read-only. It does not write the ledger at all (leaves, checkpoints,
  cosignatures, tiles, frontier: SELECT only), so a compromised application
  cannot plant a checkpoint or a cosignature (issue 15, DESIGN "Security (v2)").
- The **sealer role** (`parley_sealer` in the embedded default) owns nothing
  either. It reads the events and the ledger and appends to the ledger; it
  cannot write events or anything else. The sealer (service.audit.ledger.Sealer)
  and the witness client run on a pool of their own connected as this role
  (PARLEY_SEALER_DATABASE_URL; the embedded server makes the role and its
  password), see docs/operations.md.

APP_GRANTS and SEALER_GRANTS are the one statement lists for all of them: the
embedded server applies both after every migration run, `parley migrate
--app-role ROLE --sealer-role ROLE` applies them to a deployment's roles, and
docs/operations.md shows exactly this text (a test holds them equal and runs
`parley serve` as roles with exactly these grants). APP_GRANTS is written
table-agnostically (ALL TABLES, then what history forbids), so a table added by
a later migration is usable by the service without editing this list; a ledger
table added later goes into LEDGER_TABLES (a test checks that the application
role can write no `ledger_%` table).
"""

from __future__ import annotations

import asyncpg

APP_ROLE = "parley_app"
SEALER_ROLE = "parley_sealer"

# Tables whose rows are history: the application role may append, never change.
APPEND_ONLY = ("events", "negotiation_slugs")
# The ledger: written by the sealer role (or the owner) only.
LEDGER_TABLES = ("ledger_leaves", "ledger_checkpoints", "ledger_cosignatures", "ledger_tiles", "ledger_frontier")

APP_GRANTS = """\
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
REVOKE UPDATE, DELETE ON events, negotiation_slugs FROM {role};
REVOKE DELETE ON streams FROM {role};
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM {role};
REVOKE INSERT, UPDATE, DELETE ON ledger_leaves, ledger_checkpoints, ledger_cosignatures,
    ledger_tiles, ledger_frontier FROM {role};
"""

# The ledger's own append-only triggers still refuse UPDATE/DELETE of leaves,
# checkpoints and cosignatures; UPDATE is granted where a row grows or moves
# (a partial tile, the sealing frontier).
SEALER_GRANTS = """\
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT ON events, ledger_leaves, ledger_checkpoints, ledger_cosignatures,
    ledger_tiles, ledger_frontier TO {role};
GRANT INSERT ON ledger_leaves, ledger_checkpoints, ledger_cosignatures,
    ledger_tiles, ledger_frontier TO {role};
GRANT UPDATE ON ledger_tiles, ledger_frontier TO {role};
"""


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def grant_app_role(conn: asyncpg.Connection, role: str) -> None:
    """Give `role` exactly the application grants (run as the owner, after migrating)."""
    await conn.execute(APP_GRANTS.format(role=quote_identifier(role)))


async def grant_sealer_role(conn: asyncpg.Connection, role: str) -> None:
    """Give `role` exactly the sealer grants (run as the owner, after migrating)."""
    await conn.execute(SEALER_GRANTS.format(role=quote_identifier(role)))


async def may_seal(conn: asyncpg.Connection | asyncpg.Pool) -> bool:
    """Whether this connection's role may write the ledger (the sealer's or the owner's)."""
    return bool(await conn.fetchval("SELECT has_table_privilege('ledger_checkpoints', 'INSERT')"))


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
