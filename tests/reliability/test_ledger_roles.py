"""Only the sealer role (or the owner) writes the ledger (issue 14 item 2, issue 15:
"the application connects as a non-owner role that cannot UPDATE/DELETE/TRUNCATE
events or write checkpoints").

Roles made with exactly service.roles' grants on a real database; the application
role is refused every write to the ledger, the sealer role seals through the real
Sealer, and the composition root gives the sealer its own pool as that role.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service import bootstrap
from service.audit.ledger import Ledger, LedgerKey, Sealer
from service.config import Settings
from service.db import create_pool
from service.roles import grant_app_role, grant_sealer_role
from service.store.event_store import EventStore
from tests.pending_events import pending


def as_role(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(role)}:{quote(password)}@{host}"))


@dataclass
class Roles:
    app: str
    app_url: str
    sealer: str
    sealer_url: str


@pytest.fixture
async def roles(database_url: str) -> AsyncIterator[Roles]:
    suffix = uuid.uuid4().hex[:8]
    app, sealer, password = f"parley_app_{suffix}", f"parley_sealer_{suffix}", uuid.uuid4().hex
    owner = await asyncpg.connect(database_url)
    try:
        for role in (app, sealer):
            await owner.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEDB NOCREATEROLE")
        await grant_app_role(owner, app)
        await grant_sealer_role(owner, sealer)
        yield Roles(app, as_role(database_url, app, password), sealer, as_role(database_url, sealer, password))
    finally:
        for role in (app, sealer):
            await owner.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
        await owner.close()


LEDGER_WRITES = (
    "INSERT INTO ledger_checkpoints (origin, tree_size, root, signed_at, signature, public_key) "
    "VALUES ('forged', 1000, decode(repeat('00', 32), 'hex'), now(), decode('00', 'hex'), decode(repeat('00', 32), 'hex'))",
    "INSERT INTO ledger_leaves (\"index\", event_id, position, txid, leaf_hash) "
    "VALUES (1000, gen_random_uuid(), 1000, '1'::xid8, decode(repeat('00', 32), 'hex'))",
    "INSERT INTO ledger_cosignatures (tree_size, signer, key_id, signed_at, signature) "
    "VALUES (0, 'w', decode('00000000', 'hex'), 0, decode(repeat('00', 72), 'hex'))",
    "INSERT INTO ledger_tiles (level, idx, hashes) VALUES (0, 1000, decode(repeat('00', 32), 'hex'))",
    "INSERT INTO ledger_frontier (txid, position) VALUES ('1'::xid8, 1)",
    "UPDATE ledger_frontier SET position = 0",
    "DELETE FROM ledger_tiles",
)
HISTORY_WRITES = ("UPDATE events SET type = 'forged'", "DELETE FROM events", "TRUNCATE events")


async def refused(conn: asyncpg.Connection, statement: str) -> bool:
    try:
        async with conn.transaction():
            await conn.execute(statement)
    except asyncpg.InsufficientPrivilegeError:
        return True
    return False


async def test_the_application_role_cannot_write_the_ledger_and_the_sealer_role_seals(roles: Roles) -> None:
    app = await create_pool(roles.app_url, min_size=1, max_size=2)
    sealer = await create_pool(roles.sealer_url, min_size=1, max_size=2)
    try:
        # The application appends events as ever...
        stream = uuid.uuid4()
        events = (await EventStore(app).append([pending(stream, 1), pending(stream, 2)])).events
        async with app.acquire() as conn:
            for statement in LEDGER_WRITES + HISTORY_WRITES:
                assert await refused(conn, statement), f"the application role could run {statement!r}"
            # ...and no ledger table, whoever added it, is writable by it.
            writable = await conn.fetch(
                "SELECT tablename, p FROM pg_tables, unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p "
                "WHERE schemaname = 'public' AND tablename LIKE 'ledger\\_%' AND has_table_privilege(tablename, p)"
            )
            assert writable == []
        # The sealer role seals them (the real Sealer on its own pool)...
        checkpoint = await Sealer(sealer, LedgerKey(Ed25519PrivateKey.generate())).seal_once()
        assert checkpoint is not None and checkpoint.tree_size == len(events) == 2
        assert (await Ledger(app).latest_checkpoint()) == checkpoint  # the application reads it
        # ...and may write nothing but the ledger.
        async with sealer.acquire() as conn:
            for statement in HISTORY_WRITES + (
                "INSERT INTO api_keys (key_id, name, role, secret_hash) VALUES ('x', 'x', 'admin', decode('00', 'hex'))",
                "DELETE FROM ledger_checkpoints",
            ):
                assert await refused(conn, statement), f"the sealer role could run {statement!r}"
    finally:
        await app.close()
        await sealer.close()


async def test_the_service_seals_on_its_own_pool_as_the_sealer_role(roles: Roles, tmp_path) -> None:  # noqa: ANN001
    settings = Settings.from_env({}).with_overrides(
        database_url=roles.app_url, sealer_database_url=roles.sealer_url, data_dir=tmp_path
    )
    async with bootstrap.running(settings, pool_size=2, seal=True) as runtime:
        assert runtime.sealer is not None and runtime.sealer.pool is not runtime.pool
        assert await runtime.sealer.pool.fetchval("SELECT current_user") == roles.sealer
        await runtime.store.append([pending(uuid.uuid4(), 1)])
        # The runtime's own sealing loop may take the event before this round does
        # (then this round finds nothing new and returns None): either way, once a
        # waiting round returns, a checkpoint signed through the sealer's pool covers it.
        await runtime.sealer.seal_once(wait=True)
        sealed = await Ledger(runtime.pool).latest_checkpoint()
        assert sealed is not None and sealed.tree_size == 1
    # Without a sealer URL, a process connected as the application role does not seal.
    alone = settings.with_overrides(sealer_database_url="")
    async with bootstrap.running(alone, pool_size=2, seal=True) as runtime:
        assert runtime.sealer is None
