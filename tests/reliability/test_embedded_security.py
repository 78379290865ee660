"""The embedded PostgreSQL and the database roles (DESIGN "Security (v2)", issue 15
finding 1, issue 19 item 4).

- another local user (`nobody`) is refused on the embedded server's socket, with a
  short data dir path and with one too long for a socket;
- nobody connects without the generated password (no trust), kept 0600;
- starting changes no parent directory of the data dir;
- the service connects as a role that cannot UPDATE, DELETE or TRUNCATE events;
- the grants docs/operations.md shows are service/roles.py's (tests/docs runs that
  procedure: serve, project and seal as those roles);
- a role that may not migrate, on a schema that is behind, gets one clear line.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import asyncpg
import pytest

from service import embedded
from tests.reliability.conftest import ROOT, parley_env

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs psql as another Unix user (needs root)")


def _socket_dir(url: str) -> str:
    return parse_qs(urlsplit(url).query)["host"][0]


def _psql() -> str:
    return embedded._bin("psql")


def _as_nobody(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import pwd

    nobody = pwd.getpwnam("nobody")
    # What `runuser -u nobody` does: drop to that user (and its group, no others).
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, env=env or {"PATH": "/usr/bin:/bin"},
                          cwd="/", user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])


@pytest.fixture
def private_parent() -> Iterator[Path]:
    """A 0700 directory owned by root (like /root or pytest's base dir) to hold data dirs."""
    parent = Path(tempfile.mkdtemp(prefix="parley-sec-"))
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.parametrize("long_path", [False, True], ids=["short-path", "path-too-long-for-a-socket"])
def test_another_local_user_is_refused_on_the_embedded_socket(private_parent: Path, long_path: bool):
    data_dir = private_parent / ("d" * 90 if long_path else "data")
    server = embedded.start(data_dir, delete_on_stop=True)
    try:
        socket_dir = _socket_dir(server.url)
        password = urlsplit(server.url).password or ""
        # Even with the superuser's password, `nobody` cannot reach the socket.
        for user in ("postgres", "parley_app"):
            refused = _as_nobody(_psql(), "-X", "-w", "-h", socket_dir, "-U", user, "-d", "postgres", "-c",
                                 "INSERT INTO pg_catalog.pg_description VALUES (0, 0, 0, 'planted')",
                                 env={"PATH": "/usr/bin:/bin", "PGPASSWORD": password})
            assert refused.returncode != 0, refused.stdout
            assert "Permission denied" in refused.stderr or "No such file" in refused.stderr, refused.stderr
        # A raw connect on the socket as `nobody` (what any client library does first).
        if os.path.exists("/usr/bin/python3"):
            script = f"import socket; socket.socket(socket.AF_UNIX).connect({socket_dir + '/.s.PGSQL.5432'!r})"
            refused = _as_nobody("/usr/bin/python3", "-c", script)
            assert refused.returncode != 0 and "PermissionError" in refused.stderr, refused.stderr
        # The socket dir and the credentials are this user's (and the server's) alone.
        info = os.stat(socket_dir)
        assert stat.S_IMODE(info.st_mode) == 0o700, oct(info.st_mode)
        credentials = data_dir / "pg-credentials.json"
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        assert _as_nobody("cat", str(credentials)).returncode != 0
        # No trust: without the password, even root on the socket is refused.
        no_password = subprocess.run([_psql(), "-X", "-w", "-h", socket_dir, "-U", "postgres", "-d", "postgres",
                                      "-c", "SELECT 1"], capture_output=True, text=True, timeout=60,
                                     env={k: v for k, v in os.environ.items() if not k.startswith("PG")})
        assert no_password.returncode != 0, no_password.stdout
        assert "password" in no_password.stderr, no_password.stderr
    finally:
        server.stop()


def test_starting_changes_no_parent_of_the_data_dir(private_parent: Path):
    nested = private_parent / "a" / "b"
    nested.mkdir(parents=True)
    for directory in (private_parent, private_parent / "a", nested):
        directory.chmod(0o700)
    before = {p: stat.S_IMODE(p.stat().st_mode) for p in (private_parent, private_parent / "a", nested)}
    server = embedded.start(nested / "data", delete_on_stop=True)
    try:
        after = {p: stat.S_IMODE(p.stat().st_mode) for p in before}
        assert after == before, {str(p): (oct(before[p]), oct(after[p])) for p in before}
    finally:
        server.stop()


async def test_the_service_role_of_the_embedded_server_cannot_rewrite_history(private_parent: Path):
    server = embedded.start(private_parent / "data", delete_on_stop=True)
    try:
        from service import bootstrap
        from service.config import Settings

        settings = Settings.from_env({}).with_overrides(
            database_url=server.app_url, owner_database_url=server.url, app_role="parley_app",
            sealer_database_url=server.sealer_url, sealer_role="parley_sealer", data_dir=private_parent / "data",
        )
        await bootstrap.prepare(settings)
        app = await asyncpg.connect(server.app_url)
        try:
            assert await app.fetchval("SELECT current_user") == "parley_app"
            assert not await app.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            for statement in ("UPDATE events SET type = 'forged'", "DELETE FROM events", "TRUNCATE events",
                              "ALTER TABLE events DISABLE TRIGGER ALL", "UPDATE ledger_checkpoints SET origin = 'x'",
                              "DELETE FROM ledger_checkpoints", "SET session_replication_role = replica",
                              "CREATE TABLE planted (x int)",
                              "INSERT INTO ledger_checkpoints (origin, tree_size, root, signed_at, signature, public_key)"
                              " SELECT 'x', 9, root, now(), signature, public_key FROM ledger_checkpoints"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await app.execute(statement)
        finally:
            await app.close()
        sealer = await asyncpg.connect(server.sealer_url)
        try:
            assert await sealer.fetchval("SELECT current_user") == "parley_sealer"
            assert await sealer.fetchval("SELECT has_table_privilege('ledger_checkpoints', 'INSERT')")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await sealer.execute("DELETE FROM events")
        finally:
            await sealer.close()
    finally:
        server.stop()


# -- the documented grants --------------------------------------------------------------
# docs/operations.md's deployment procedure itself (the roles with exactly these
# grants running serve, project and seal) is run by tests/docs.


def documented_grants() -> dict[str, str]:
    """The grant lists of docs/operations.md's deployment procedure (the psql script
    an operator runs), by the psql variable that names the role."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text[text.index("## Deployment"):]
    scripts = re.findall(r"<<'SQL'\n(.*?)^SQL$", section, re.DOTALL | re.MULTILINE)
    assert scripts, "docs/operations.md shows no psql script in its deployment section"
    app, sealer = scripts[0].split("-- The sealer grants\n")
    grants = {}
    for variable, block in (("app_role", app), ("sealer_role", sealer)):
        lines = [line for line in block.splitlines() if not line.startswith(("CREATE ROLE", "--"))]
        grants[variable] = "\n".join(lines).strip()
    return grants


def test_the_documented_grants_are_the_ones_the_embedded_server_applies():
    from service.roles import APP_GRANTS, SEALER_GRANTS

    documented = documented_grants()
    for variable, grants in (("app_role", APP_GRANTS), ("sealer_role", SEALER_GRANTS)):
        assert documented[variable] == grants.format(role=f':"{variable}"').strip()


def _as_role(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(role)}:{quote(password)}@{host}"))


def test_a_role_that_may_not_migrate_gets_one_clear_line(database_url, empty_database_url, tmp_path):
    """On a schema that is behind, the application role does not try DDL blindly: one
    line says to run `parley migrate` as the owner, and the exit code is non-zero."""

    async def make_role() -> tuple[str, str]:
        conn = await asyncpg.connect(empty_database_url)
        try:
            role, password = f"parley_app_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
            await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
            await conn.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO {role}")
            return role, password
        finally:
            await conn.close()

    role, password = asyncio.run(make_role())
    try:
        done = subprocess.run([sys.executable, "-m", "service.cli", "keys", "list"],
                              env=parley_env(_as_role(empty_database_url, role, password)), cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0
        assert "parley migrate" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    finally:
        async def drop() -> None:
            conn = await asyncpg.connect(empty_database_url)
            try:
                await conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
            finally:
                await conn.close()

        asyncio.run(drop())

