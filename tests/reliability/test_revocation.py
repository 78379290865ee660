"""Key lifecycle (issue 15 findings 2 and 5): revoking a key ends its open streams;
PARLEY_ADMIN_KEY never revives a revoked key, takes any strong secret (an
operator's `openssl rand -hex 32`), refuses weak values with one clear line, and
never crashes start-up on a name already taken."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys

import asyncpg
import httpx
import pytest

from service import bootstrap
from service.auth import Role, authenticate, create_key, revoke_key
from tests.reliability.conftest import PARTIES, ROOT, live_server, make_app, parley_env


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url)


@pytest.mark.timeout(120)
async def test_revoking_a_key_ends_its_open_event_stream(database_url, tmp_path, keys):
    app = make_app(database_url, tmp_path)
    async with live_server(app) as base, httpx.AsyncClient(base_url=base, timeout=60) as http:
        recorder = keys.headers("recorder")
        opened = await http.post("/negotiations", json={"title": "Revocation", "slug": "revocation",
                                                         "parties": PARTIES, "occurred_on": "2022-03-01"},
                                 headers=recorder)
        assert opened.status_code == 201, opened.text
        received: list[str] = []
        async with http.stream("GET", "/events/stream", headers=keys.headers("auditor")) as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()

            async def next_data() -> str:
                async for line in lines:
                    if line.startswith(("data:", "event:")):
                        return line
                return "<end>"

            first = await asyncio.wait_for(next_data(), 30)
            assert "negotiation.opened" in first
            conn = await _connect(database_url)
            try:
                assert await revoke_key(conn, "auditor")  # as `parley keys revoke` does, from any process
            finally:
                await conn.close()
            statement = await http.post("/negotiations/revocation/commands", headers=recorder, json={
                "type": "statement.made", "occurred_on": "2022-03-02", "speaker": "Lavrov", "party": "RU",
                "summary": "recorded after the revocation"})
            assert statement.status_code == 201, statement.text

            async def rest() -> None:
                async for line in lines:
                    if line.startswith(("data:", "event:")):
                        received.append(line)

            # The stream ends by itself; on main it went on delivering (the bound only
            # keeps a broken build from hanging).
            await asyncio.wait_for(rest(), 60)
        # It ended because of the revocation, within about a second of it (what was
        # recorded inside that second may still have come through), and says so last.
        assert received[-2:] == ["event: revoked", "data: the API key of this stream was revoked"], received
        # And the revoked key opens no new stream.
        again = await http.get("/events", headers=keys.headers("auditor"))
        assert again.status_code == 401


async def test_the_admin_key_from_the_environment_never_revives_a_revoked_key(database_url):
    key = f"pk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    await bootstrap.prepare_database(database_url, key)
    conn = await _connect(database_url)
    try:
        assert await authenticate(conn, key) is not None
        assert await revoke_key(conn, "admin")
        await bootstrap.prepare_database(database_url, key)  # a restart with the same environment
        assert await authenticate(conn, key) is None, "a restart revived a revoked admin key"
    finally:
        await conn.close()


async def test_any_strong_secret_serves_as_the_admin_key(database_url, tmp_path):
    key = secrets.token_hex(32)  # what `openssl rand -hex 32` prints
    await bootstrap.prepare_database(database_url, key)
    await bootstrap.prepare_database(database_url, key)  # every start: idempotent
    conn = await _connect(database_url)
    try:
        found = await authenticate(conn, key)
        assert found is not None and found.role is Role.ADMIN
        assert await authenticate(conn, key[:-1] + ("0" if key[-1] != "0" else "1")) is None
    finally:
        await conn.close()
    app = make_app(database_url, tmp_path)
    async with live_server(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await http.get("/negotiations", headers={"Authorization": f"Bearer {key}"})).status_code == 200


@pytest.mark.parametrize("weak", ["pk_a_b", "short", "pk_0123456789ab_" + "a" * 40, "x" * 31])
def test_a_weak_admin_key_is_refused_with_one_line(database_url, tmp_path, weak):
    done = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--port", "1"],
                          env=parley_env(database_url, PARLEY_ADMIN_KEY=weak, PARLEY_DATA_DIR=str(tmp_path)),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "PARLEY_ADMIN_KEY" in done.stderr and "openssl rand -hex 32" in done.stderr, done.stderr[-3000:]


async def test_the_admin_key_set_after_a_first_start_does_not_crash_start_up(database_url):
    # The first start made the key "admin" and printed it.
    first = await bootstrap.prepare_database(database_url, None, first_admin_key=True)
    assert first is not None
    later = f"pk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    await bootstrap.prepare_database(database_url, later, first_admin_key=True)
    conn = await _connect(database_url)
    try:
        assert await authenticate(conn, first) is not None
        assert await authenticate(conn, later) is not None
    finally:
        await conn.close()


async def test_a_restart_with_every_key_revoked_does_not_crash(database_url):
    conn = await _connect(database_url)
    try:
        await create_key(conn, "admin", Role.ADMIN)
        await revoke_key(conn, "admin")
    finally:
        await conn.close()
    new = await bootstrap.prepare_database(database_url, None, first_admin_key=True)
    assert new is not None
    conn = await _connect(database_url)
    try:
        found = await authenticate(conn, new)
        assert found is not None and found.role is Role.ADMIN
    finally:
        await conn.close()
