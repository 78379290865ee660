"""API keys: hashed at rest, constant-time check, revocation, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg

from service.auth import Permission, Role, authenticate, create_key, ensure_key, revoke_key


async def test_a_created_key_authenticates_with_its_role_and_is_stored_hashed(pool: asyncpg.Pool) -> None:
    key = await create_key(pool, "desk-1", Role.RECORDER)
    found = await authenticate(pool, key)
    assert found is not None and found.name == "desk-1" and found.role is Role.RECORDER
    assert found.may(Permission.RECORD) and not found.may(Permission.AUDIT)
    stored = await pool.fetch("SELECT * FROM api_keys")
    assert all(key.split("_", 2)[2].encode() not in bytes(row["secret_hash"]) for row in stored)
    assert key not in repr([dict(r) for r in stored])


async def test_wrong_unknown_malformed_and_revoked_keys_are_refused(pool: asyncpg.Pool) -> None:
    key = await create_key(pool, "desk-2", Role.READER)
    key_id = key.split("_")[1]
    for wrong in [key + "x", f"pk_{key_id}_not-the-secret", "pk_ffffffffffff_secret", "garbage", ""]:
        assert await authenticate(pool, wrong) is None, wrong
    assert await revoke_key(pool, "desk-2")
    assert await authenticate(pool, key) is None


async def test_the_configured_admin_key_is_ensured(pool: asyncpg.Pool) -> None:
    key = "pk_0123456789ab_configured-by-the-deployment-0123456789"
    await ensure_key(pool, key, "admin", Role.ADMIN)
    await ensure_key(pool, key, "admin", Role.ADMIN)  # every start: idempotent
    found = await authenticate(pool, key)
    assert found is not None and found.role is Role.ADMIN and found.may(Permission.MANAGE_KEYS)


def test_keys_create_prints_the_key_alone_on_stdout(database_url: str) -> None:
    env = {**os.environ, "PARLEY_DATABASE_URL": database_url}
    made = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--role", "auditor", "--name", "court"],
        env=env, capture_output=True, text=True, check=True,
    )
    key = made.stdout.strip()
    assert made.stdout == key + "\n" and key.startswith("pk_")
    listed = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "list"], env=env, capture_output=True, text=True, check=True
    )
    assert "court\tauditor" in listed.stdout and key.split("_", 2)[2] not in listed.stdout
    again = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--role", "reader", "--name", "court"],
        env=env, capture_output=True, text=True,
    )
    assert again.returncode == 1 and "exists already" in again.stderr
